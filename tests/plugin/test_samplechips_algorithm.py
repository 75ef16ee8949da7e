"""patchwork:samplechips through Processing (what the Toolbox and the modeler run)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsFeature,
    QgsGeometry,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsVectorLayer,
)

from patchwork.core import read_index
from tests.conftest import files_under, read_all

EXPECTED_PARAMETERS = ["INPUT", "LABELS", "LABEL_FIELD", "ALL_TOUCHED", "BACKGROUND", "AOI", "SAMPLER", "LOCATIONS",
                       "SPACING", "CHIP_SIZE",
                       "STEP", "JITTER", "MIN_DISTANCE", "COUNT", "SEED", "BOUNDARY", "MAX_NODATA", "OVERWRITE",
                       "WORKERS", "OUTPUT_DIR", "OUTPUT"]


def run(params, feedback=None):
    import processing

    return processing.run("patchwork:samplechips", params, feedback=feedback or QgsProcessingFeedback())


def test_algorithm_is_registered_with_the_documented_parameters(patchwork_provider):
    alg = QgsApplication.processingRegistry().algorithmById("patchwork:samplechips")
    assert alg is not None and alg.displayName() == "Sample chips"
    assert [p.name() for p in alg.parameterDefinitions()] == EXPECTED_PARAMETERS
    assert alg.parameterDefinition("SAMPLER").options() == ["regular", "jittered", "poisson", "random", "points",
                                                            "lines", "balanced", "stratified"]
    assert alg.parameterDefinition("BOUNDARY").options() == ["shift", "pad", "drop"]
    assert {o.name() for o in alg.outputDefinitions()} >= {"OUTPUT", "OUTPUT_DIR", "CHIP_COUNT", "COVERAGE"}
    assert "Poisson-disk" in alg.shortHelpString()
    assert patchwork_provider.id() == "patchwork" and not patchwork_provider.icon().isNull()


def test_jittered_run_writes_a_loadable_index_and_exact_chips(patchwork_provider, tmp_path, naip_path):
    out = run({"INPUT": naip_path, "SAMPLER": 1, "CHIP_SIZE": 128, "STEP": 150, "JITTER": 0.3, "SEED": 8,
               "BOUNDARY": 0, "MAX_NODATA": 1.0, "OUTPUT_DIR": str(tmp_path / "chips"),
               "OUTPUT": str(tmp_path / "index.gpkg")})
    layer = QgsVectorLayer(out["OUTPUT"], "chips", "ogr")
    assert layer.isValid() and layer.featureCount() == out["CHIP_COUNT"] > 0
    assert layer.crs().authid() == "EPSG:26914"
    assert out["OUTPUT_DIR"] == str(tmp_path / "chips")
    source, gt, _, _ = read_all(naip_path)
    for rec in read_index(out["OUTPUT"]):
        chip = gdal.Open(rec["image_path"])
        r, c = rec["row_off"], rec["col_off"]
        assert chip.GetGeoTransform() == pytest.approx((gt[0] + c * gt[1], gt[1], 0, gt[3] + r * gt[5], 0, gt[5]))
        np.testing.assert_array_equal(chip.ReadAsArray(), source[:, r : r + 128, c : c + 128])
    feature = next(layer.getFeatures())
    assert QgsGeometry.fromWkt(read_index(out["OUTPUT"])[0]["footprint_wkt"]).equals(feature.geometry())


def test_aoi_layer_in_another_crs(patchwork_provider, tmp_path, naip_path):
    ds = gdal.Open(naip_path)
    gt = ds.GetGeoTransform()
    aoi = QgsVectorLayer("Polygon?crs=EPSG:26914", "aoi", "memory")
    x0, y0, x1, y1 = gt[0] + 500 * gt[1], gt[3] + 300 * gt[5], gt[0] + 900 * gt[1], gt[3] + 700 * gt[5]
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromWkt(f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"))
    aoi.dataProvider().addFeatures([feature])
    out = run({"INPUT": naip_path, "AOI": aoi, "SAMPLER": 3, "CHIP_SIZE": 64, "COUNT": 12, "SEED": 1,
               "MAX_NODATA": 0.0, "OUTPUT_DIR": str(tmp_path / "c"), "OUTPUT": str(tmp_path / "i.gpkg")})
    assert out["CHIP_COUNT"] == 12
    for rec in read_index(out["OUTPUT"]):
        assert 300 <= rec["row_off"] and rec["row_off"] + 64 <= 700
        assert 500 <= rec["col_off"] and rec["col_off"] + 64 <= 900


def test_bad_input_raises_a_clear_processing_error(patchwork_provider, tmp_path, s2_path):
    with pytest.raises(QgsProcessingException, match="larger than the raster"):
        run({"INPUT": s2_path, "CHIP_SIZE": 512, "OUTPUT_DIR": str(tmp_path / "c"), "OUTPUT": str(tmp_path / "i.gpkg")})
    assert files_under(str(tmp_path)) == []


def test_cancel_stops_the_run_and_writes_nothing(patchwork_provider, tmp_path, naip_path):
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda percent: percent > 10 and feedback.cancel())
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run({"INPUT": naip_path, "SAMPLER": 0, "CHIP_SIZE": 32, "STEP": 16, "MAX_NODATA": 1.0,
             "OUTPUT_DIR": str(tmp_path / "c"), "OUTPUT": str(tmp_path / "i.gpkg")}, feedback)
    assert feedback.isCanceled()
    assert files_under(str(tmp_path)) == []


def test_output_layer_is_styled_when_loaded(patchwork_provider, tmp_path, s2_path):
    from qgis.core import QgsProcessingUtils, QgsProject

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    index = str(tmp_path / "i.gpkg")
    details = QgsProcessingContext.LayerDetails("chips", QgsProject.instance(), "OUTPUT")
    context.addLayerToLoadOnCompletion(index, details)
    alg = QgsApplication.processingRegistry().createAlgorithmById("patchwork:samplechips")
    results, ok = alg.run({"INPUT": s2_path, "CHIP_SIZE": 64, "STEP": 64, "OUTPUT_DIR": str(tmp_path / "c"),
                           "OUTPUT": index}, context, QgsProcessingFeedback())
    assert ok and results["OUTPUT"] == index
    processor = context.layerToLoadOnCompletionDetails(index).postProcessor()
    assert processor is not None
    layer = QgsProcessingUtils.mapLayerFromString(index, context)
    processor.postProcessLayer(layer, context, QgsProcessingFeedback())
    assert layer.renderer().symbol().symbolLayer(0).strokeColor().name() == "#ffc800"


def test_label_polygons_with_a_categorized_style_give_named_coloured_label_chips(patchwork_provider, tmp_path,
                                                                                naip_path):
    """LABELS as a polygon layer in EPSG:4326 over the UTM NAIP scene: the chips equal the core's VectorLabels, and
    the layer's categorized style names and colours the classes."""
    from qgis.core import QgsCategorizedSymbolRenderer, QgsProject, QgsRendererCategory, QgsSymbol, QgsVectorLayer
    from qgis.PyQt.QtGui import QColor

    from patchwork.core import RegularSampler, VectorLabels, sample_chips
    from tests.core.test_vector_labels import polygons_in_wgs84

    gpkg = polygons_in_wgs84(naip_path, str(tmp_path / "labels.gpkg"))
    layer = QgsVectorLayer(gpkg, "survey", "ogr")
    categories = []
    for code, (name, colour) in enumerate([("open water", "#0000ff"), ("cropland", "#ffff00"), ("woods", "#008000")]):
        symbol = QgsSymbol.defaultSymbol(layer.geometryType())
        symbol.setColor(QColor(colour))
        categories.append(QgsRendererCategory(code, symbol, name))
    layer.setRenderer(QgsCategorizedSymbolRenderer("code", categories))
    QgsProject.instance().addMapLayer(layer)
    try:
        result = run({"INPUT": naip_path, "LABELS": layer.id(), "LABEL_FIELD": "code", "SAMPLER": 0, "STEP": 200,
                      "CHIP_SIZE": 64, "OUTPUT_DIR": str(tmp_path / "chips"), "OUTPUT": str(tmp_path / "i.gpkg")})
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
    core = sample_chips(naip_path, RegularSampler(step=200), 64, str(tmp_path / "core"),
                        labels=VectorLabels.from_file(gpkg, "code"))
    for mine, theirs in zip(read_index(result["OUTPUT"]), read_index(core.index_path)):
        np.testing.assert_array_equal(gdal.Open(mine["label_path"]).ReadAsArray(),
                                      gdal.Open(theirs["label_path"]).ReadAsArray())
    chip = gdal.Open(read_index(result["OUTPUT"])[0]["label_path"])
    band = chip.GetRasterBand(1)
    assert [band.GetMetadataItem(f"CLASS_{i}") for i in range(3)] == ["open water", "cropland", "woods"]
    assert band.GetColorTable().GetColorEntry(2)[:3] == (0, 128, 0)


def test_label_polygons_need_their_class_field(patchwork_provider, tmp_path, naip_path):
    from qgis.core import QgsProcessingException

    from tests.core.test_vector_labels import polygons_in_wgs84

    gpkg = polygons_in_wgs84(naip_path, str(tmp_path / "labels.gpkg"))
    with pytest.raises(QgsProcessingException, match="LABEL_FIELD: label polygons need the field"):
        run({"INPUT": naip_path, "LABELS": gpkg, "OUTPUT_DIR": str(tmp_path / "chips"),
             "OUTPUT": str(tmp_path / "i.gpkg")})
    assert files_under(str(tmp_path)) == ["labels.gpkg"]


def test_points_sampler_centres_chips_on_a_point_layer_in_another_crs(patchwork_provider, tmp_path, naip_path):
    """SAMPLER=points with LOCATIONS in EPSG:4326 over the UTM NAIP scene: each chip's centre pixel holds its
    point; a point outside the raster is reported."""
    from osgeo import ogr, osr

    from patchwork.core import RasterSource
    from tests.core.test_point_samplers import to_wgs84

    with RasterSource(naip_path) as src:
        gt = src.geotransform
        forward, _back = to_wgs84(src)
    pixels = [(100.5, 200.5), (400.2, 600.7), (700.1, 50.3), (-40, 10)]  # the last one north of the raster
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    path = str(tmp_path / "points.gpkg")
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    layer = ds.CreateLayer("points", wgs84, ogr.wkbPoint)
    for row, col in pixels:
        lon, lat = forward.TransformPoint(gt[0] + col * gt[1], gt[3] + row * gt[5])[:2]
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({lon!r} {lat!r})"))
        layer.CreateFeature(feature)
    ds = None
    log = []

    class Feedback(QgsProcessingFeedback):
        def pushInfo(self, info):  # noqa: N802 - QGIS API name
            log.append(info)

    result = run({"INPUT": naip_path, "SAMPLER": "points", "LOCATIONS": path, "CHIP_SIZE": 31, "MAX_NODATA": 1.0,
                  "OUTPUT_DIR": str(tmp_path / "chips"), "OUTPUT": str(tmp_path / "i.gpkg")}, Feedback())
    records = read_index(result["OUTPUT"])
    assert [(r["row_off"] + 15, r["col_off"] + 15) for r in records] == [(100, 200), (400, 600), (700, 50)]
    assert any("1 of 4 points lie outside the raster" in line for line in log), log


def test_balanced_sampler_from_processing_and_its_check(patchwork_provider, tmp_path, s2_path):
    from patchwork.core import classify
    from tests.conftest import REPO

    labels = classify(s2_path, f"{REPO}/resources/models/ndvi_ndwi_rules.json", str(tmp_path / "labels.tif"),
                      scale=1e-4).output
    result = run({"INPUT": s2_path, "LABELS": labels, "SAMPLER": "balanced", "COUNT": 7, "CHIP_SIZE": 16,
                  "MAX_NODATA": 1.0, "OUTPUT_DIR": str(tmp_path / "chips"), "OUTPUT": str(tmp_path / "i.gpkg")})
    assert json.loads(result["CLASS_COUNTS"])["chips_per_class"] == {"0": 7, "1": 7, "2": 7}
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("patchwork:samplechips")
    ok, message = algorithm.checkParameterValues(
        {"INPUT": s2_path, "SAMPLER": "balanced", "OUTPUT_DIR": str(tmp_path / "x"),
         "OUTPUT": str(tmp_path / "x.gpkg")}, QgsProcessingContext())
    assert not ok and "chooses chips by their label class: give LABELS" in message
