"""patchwork:accuracysample and patchwork:accuracy through Processing (#24): the sample opens in QGIS ready to label
(a drop-down of class names, the other fields locked), the labelled sample gives the figures, and bad input is
refused before anything runs."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback, QgsVectorLayer

from tests.conftest import REPO

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


def run(algorithm, params):
    import processing

    return processing.run(f"patchwork:{algorithm}", params, feedback=QgsProcessingFeedback())


def refusal(algorithm: str, params: dict) -> str:
    alg = QgsApplication.processingRegistry().algorithmById(f"patchwork:{algorithm}")
    ok, message = alg.checkParameterValues(params, QgsProcessingContext())
    assert not ok
    return message


@pytest.fixture()
def class_map(patchwork_provider, tmp_path, s2_path):
    return run("classify", {"INPUT": s2_path, "MODEL": RULES, "SCALE": 1e-4,
                            "OUTPUT": str(tmp_path / "map.tif")})["OUTPUT"]


def test_sample_opens_ready_to_label_and_the_labels_give_accuracy_and_area(class_map, tmp_path):
    drawn = run("accuracysample", {"INPUT": class_map, "EXPECTED_UA": "0.8, 0.85, 0.9", "TARGET_SE": 0.02,
                                   "OUTPUT": str(tmp_path / "sample.gpkg")})
    layer = QgsVectorLayer(drawn["OUTPUT"], "sample", "ogr")
    assert layer.isValid() and layer.featureCount() == drawn["POINTS"] > 50
    reference = layer.fields().indexOf("reference")
    setup = layer.editorWidgetSetup(reference)
    assert setup.type() == "ValueMap"
    choices = {k: v for entry in setup.config()["map"] for k, v in entry.items()}
    assert choices == {"water": "0", "bare land / scrub": "1", "vegetation": "2"}
    assert not layer.editFormConfig().readOnly(reference)
    assert layer.editFormConfig().readOnly(layer.fields().indexOf("map_class"))
    assert layer.renderer().type() == "categorizedSymbol" and layer.renderer().classAttribute() == "reference"
    hidden = {column.name for column in layer.attributeTableConfig().columns() if column.hidden and column.name}
    assert hidden == {"map_class", "map_name", "stratum", "inclusion_probability"}  # labelled blind to the map
    # label every point with the map's own class but one in ten moved to the next class, through QGIS's editing
    layer.startEditing()
    for number, feature in enumerate(layer.getFeatures()):
        layer.changeAttributeValue(feature.id(), reference, (feature["map_class"] + (number % 10 == 0)) % 3)
    assert layer.commitChanges()
    report = run("accuracy", {"INPUT": class_map, "SAMPLES": drawn["OUTPUT"], "REFERENCE_FIELD": "reference",
                              "OUTPUT_JSON": str(tmp_path / "a.json"), "OUTPUT_REPORT": str(tmp_path / "a.html")})
    figures = json.load(open(report["OUTPUT_JSON"]))
    assert report["POINTS_USED"] == drawn["POINTS"]
    assert report["OVERALL_ACCURACY"] == pytest.approx(figures["overall_accuracy"]) == pytest.approx(0.9, abs=0.02)
    assert 0 < report["OVERALL_ACCURACY_CI"] < 0.1
    assert os.path.getsize(report["OUTPUT_REPORT"]) > 2000


def test_bad_input_is_refused_before_anything_runs(class_map, tmp_path, s2_path):
    out = str(tmp_path / "s.gpkg")
    assert "EXPECTED_UA: 2 values for the map's 3 classes (0 water, 1 bare land / scrub, 2 vegetation)" in refusal(
        "accuracysample", {"INPUT": class_map, "EXPECTED_UA": "0.8, 0.9", "OUTPUT": out})
    assert "EXPECTED_UA" in refusal("accuracysample", {"INPUT": class_map, "EXPECTED_UA": "1.5", "OUTPUT": out})
    assert "not a class raster" in refusal("accuracysample", {"INPUT": s2_path, "OUTPUT": out})
    assert "needs a STRATA raster" in refusal("accuracysample", {"INPUT": class_map, "DESIGN": "strata",
                                                                  "OUTPUT": out})
    drawn = run("accuracysample", {"INPUT": class_map, "SAMPLE_SIZE": 30, "MIN_PER_CLASS": 5, "OUTPUT": out})
    layer = QgsVectorLayer(drawn["OUTPUT"], "sample", "ogr")
    layer.startEditing()
    for feature in layer.getFeatures():
        layer.changeAttributeValue(feature.id(), layer.fields().indexOf("reference"), 7)
    assert layer.commitChanges()
    message = refusal("accuracy", {"INPUT": class_map, "SAMPLES": out, "REFERENCE_FIELD": "reference",
                                   "OUTPUT_JSON": str(tmp_path / "a.json")})
    assert "reference classes the map does not have (7)" in message
    assert not os.path.exists(tmp_path / "a.json")


def test_a_map_in_a_crs_without_linear_units_is_refused(patchwork_provider, tmp_path):
    tif, path = str(tmp_path / "site.tif"), str(tmp_path / "site.vrt")
    ds = gdal.GetDriverByName("GTiff").Create(tif, 20, 20, 1, gdal.GDT_Byte)
    ds.SetGeoTransform((0, 1, 0, 20, 0, -1))
    ds.GetRasterBand(1).WriteArray(np.tile(np.arange(20) // 10, (20, 1)).astype(np.uint8))
    ds = None
    gdal.Translate(path, tif, format="VRT", outputSRS='ENGCRS["site grid",EDATUM["site"],CS[Cartesian,2],AXIS["x",'
                   'east,LENGTHUNIT["unknown",0]],AXIS["y",north,LENGTHUNIT["unknown",0]]]')  # (GeoTIFF says metre)
    points = str(tmp_path / "p.csv")
    with open(points, "w") as fh:
        fh.write("WKT,reference\n" + "".join(f'"POINT ({i}.5 {i}.5)",{int(i >= 10)}\n' for i in range(20)))
    message = refusal("accuracy", {"INPUT": path, "SAMPLES": points, "REFERENCE_FIELD": "reference"})
    assert "INPUT: the class map's CRS has no linear unit" in message


def test_suggest_labels_from_classifys_uncertainty_keeps_away_from_labels_in_another_crs(class_map, tmp_path,
                                                                                          s2_path):
    """#24 item 4 through Processing: uncertainty from classify (soft votes of a model unsure at tile seams), places
    away from earlier labels given in Web Mercator, balanced across classes, opened ready to label."""
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransform,
        QgsFeature,
        QgsGeometry,
        QgsPointXY,
        QgsProject,
    )

    from tests.onnx_models import tile_dependent_model

    weights = np.random.default_rng(7).normal(0, 25, (3, 4, 3, 3)).astype(np.float32)
    model = tile_dependent_model(str(tmp_path / "m.onnx"), weights, True, {})
    classified = run("classify", {"INPUT": s2_path, "MODEL": model, "SCALE": 1e-4, "TILE_SIZE": 64, "OVERLAP": 16,
                                  "AGGREGATION": "softvote", "OUTPUT": str(tmp_path / "c.tif"),
                                  "OUTPUT_UNCERTAINTY": str(tmp_path / "u.tif"), "UNCERTAINTY": "margin"})
    ds = gdal.Open(classified["OUTPUT_UNCERTAINTY"])
    gt, unsure = ds.GetGeoTransform(), ds.ReadAsArray()
    r, c = np.unravel_index(np.nanargmax(unsure), unsure.shape)  # the least sure pixel, labelled already
    labelled = QgsVectorLayer("Point?crs=EPSG:3857", "labelled", "memory")
    to_mercator = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"),
                                         QgsCoordinateReferenceSystem("EPSG:3857"), QgsProject.instance())
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromPointXY(to_mercator.transform(
        QgsPointXY(gt[0] + (c + 0.5) * gt[1], gt[3] + (r + 0.5) * gt[5]))))
    labelled.dataProvider().addFeatures([feature])
    QgsProject.instance().addMapLayer(labelled)
    done = run("suggestlabels", {"INPUT": classified["OUTPUT_UNCERTAINTY"], "CLASSES": classified["OUTPUT"],
                                 "LABELLED": labelled, "COUNT": 12, "MIN_DISTANCE": 8, "BALANCE": True,
                                 "OUTPUT": str(tmp_path / "next.gpkg")})
    assert done["PLACES"] == 12
    layer = QgsVectorLayer(done["OUTPUT"], "next", "ogr")
    assert layer.editorWidgetSetup(layer.fields().indexOf("label")).type() == "ValueMap"
    classes = [f["predicted_class"] for f in layer.getFeatures()]
    assert sorted(classes) == [0] * 4 + [1] * 4 + [2] * 4
    for f in layer.getFeatures():
        point = f.geometry().asPoint()
        row, col = int((point.y() - gt[3]) // gt[5]), int((point.x() - gt[0]) // gt[1])
        assert np.hypot(row - r, col - c) >= 8  # never at (or near) what is labelled
    QgsProject.instance().removeMapLayer(labelled.id())
