"""patchwork:classify, patchwork:stitchchips and patchwork:compare through Processing."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
)

from patchwork.core.engine.blocks import full_scene_prediction
from tests.conftest import REPO, SHARED_DATA, files_under

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")
CLASSIFY_PARAMETERS = ["INPUT", "MODEL", "BANDS", "SCALE", "OFFSET", "MASK", "EXTENT", "RESOLUTION", "OUTPUT_GRID",
                       "TILE_SIZE", "OVERLAP", "WINDOW", "WINDOW_PARAMETER", "AGGREGATION", "BATCH_SIZE",
                       "TRUST_MODEL", "MIN_SEGMENT", "MODEL_TYPE", "THRESHOLD",
                       "WORKERS", "DEVICE", "DASK_SCHEDULER", "RESUME", "OUTPUT_FORMAT", "OUTPUT",
                       "OUTPUT_PROBABILITIES", "OUTPUT_VECTOR", "OUTPUT_AREAS", "OUTPUT_UNCERTAINTY", "UNCERTAINTY",
                       "OUTPUT_AOA"]


def run(algorithm, params, feedback=None, context=None):
    import processing

    return processing.run(f"patchwork:{algorithm}", params, feedback=feedback or QgsProcessingFeedback(),
                          context=context)


def test_algorithms_are_registered_with_the_documented_parameters(patchwork_provider):
    registry = QgsApplication.processingRegistry()
    classify = registry.algorithmById("patchwork:classify")
    assert classify.displayName() == "Classify raster (tiled)"
    assert [p.name() for p in classify.parameterDefinitions()] == CLASSIFY_PARAMETERS
    assert classify.parameterDefinition("WINDOW").options() == ["boxcar", "hann", "triangular", "tukey", "gaussian"]
    assert classify.parameterDefinition("AGGREGATION").options() == ["hardvote", "softvote", "mean"]
    assert classify.parameterDefinition("DEVICE").options() == ["auto", "cpu", "cuda"]
    assert classify.parameterDefinition("OUTPUT_FORMAT").options()[1].startswith("Cloud-optimised GeoTIFF")
    assert classify.parameterDefinition("WORKERS").defaultValue() == 0
    assert classify.parameterDefinition("MODEL").defaultValue().endswith("ndvi_ndwi_rules.json")
    assert "Deepness" in classify.shortHelpString()
    stitch = registry.algorithmById("patchwork:stitchchips")
    assert stitch.displayName() == "Stitch chips"
    assert {"INPUT", "WINDOW", "AGGREGATION", "N_CLASSES", "REFERENCE", "OUTPUT"} <= \
        {p.name() for p in stitch.parameterDefinitions()}
    compare = registry.algorithmById("patchwork:compare")
    assert compare.displayName() == "Compare classifications"
    assert {"AGREEMENT", "KAPPA", "CONFUSION_MATRIX", "OUTPUT_HTML"} <= {o.name() for o in compare.outputDefinitions()}


def test_classify_sentinel2_tiled_with_overlap_equals_full_scene(patchwork_provider, tmp_path, s2_path):
    out = str(tmp_path / "classes.tif")
    result = run("classify", {"INPUT": s2_path, "MODEL": RULES, "SCALE": 0.0001, "TILE_SIZE": 128, "OVERLAP": 32,
                              "WINDOW": 1, "AGGREGATION": 1, "OUTPUT": out,
                              "OUTPUT_PROBABILITIES": str(tmp_path / "p.tif")})
    assert result["OUTPUT"] == out and result["TILES"] == 0 and result["BLOCKS"] == 1  # per-pixel: no tiles
    reference, _ = full_scene_prediction(s2_path, RULES, scale=1e-4)
    np.testing.assert_array_equal(gdal.Open(out).ReadAsArray(), reference)
    assert gdal.Open(result["OUTPUT_PROBABILITIES"]).RasterCount == 3


def test_classify_output_is_styled_with_class_names_when_loaded(patchwork_provider, tmp_path, ortho_path):
    model = os.path.join(SHARED_DATA, "models", "two_outputs_softmax_bsx2x512x512.onnx")
    out = str(tmp_path / "coffee_tea.tif")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    context.addLayerToLoadOnCompletion(out, QgsProcessingContext.LayerDetails("classes", QgsProject.instance(),
                                                                               "OUTPUT"))
    alg = QgsApplication.processingRegistry().createAlgorithmById("patchwork:classify")
    results, ok = alg.run({"INPUT": ortho_path, "MODEL": model, "BANDS": [1, 2, 3], "SCALE": 1 / 255,
                           "OUTPUT": out}, context, QgsProcessingFeedback())
    assert ok
    layer = QgsProcessingUtils.mapLayerFromString(out, context)
    context.layerToLoadOnCompletionDetails(out).postProcessor().postProcessLayer(layer, context,
                                                                                  QgsProcessingFeedback())
    renderer = layer.renderer()
    assert renderer.type() == "paletted"
    assert [c.label for c in renderer.classes()] == ["Coffee", "Tea"]
    # Opened by hand (drag and drop), the layer finds the same style beside the file.
    again = QgsRasterLayer(out, "again")
    assert again.renderer().type() == "paletted"
    assert [c.label for c in again.renderer().classes()] == ["Coffee", "Tea"]
    # The model's second output head is a map too, loaded and styled with its own classes.
    second = str(tmp_path / "coffee_tea_output2.tif")
    assert results["OTHER_HEADS"] == [second] and context.willLoadLayerOnCompletion(second)
    assert context.layerToLoadOnCompletionDetails(second).name.startswith("classes (output2) — ")  # #27 item 8
    head_layer = QgsProcessingUtils.mapLayerFromString(second, context)
    context.layerToLoadOnCompletionDetails(second).postProcessor().postProcessLayer(head_layer, context,
                                                                                     QgsProcessingFeedback())
    assert [c.label for c in head_layer.renderer().classes()] == ["Juice", "Beer"]


def test_classify_writes_class_polygons_styled_by_class_and_an_area_table(patchwork_provider, tmp_path, s2_path):
    from qgis.core import QgsVectorLayer

    out, polygons, areas = (str(tmp_path / name) for name in ("rules.tif", "rules.gpkg", "areas.csv"))
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    alg = QgsApplication.processingRegistry().createAlgorithmById("patchwork:classify")
    feedback = QgsProcessingFeedback()
    messages = []
    feedback.pushInfo = messages.append
    results, ok = alg.run({"INPUT": s2_path, "MODEL": RULES, "SCALE": 0.0001, "MIN_SEGMENT": 9, "OUTPUT": out,
                           "OUTPUT_VECTOR": polygons, "OUTPUT_AREAS": areas}, context, feedback)
    assert ok and results["OUTPUT_VECTOR"] == polygons and results["OUTPUT_AREAS"] == areas
    assert any(m.startswith("Area per class: ") and " ha, " in m for m in messages)
    layer = QgsVectorLayer(polygons, "polygons")  # opened as any user would: its default style comes with it
    assert layer.isValid() and layer.featureCount() > 10 and layer.fields().names()[-3:] == ["class", "name",
                                                                                            "area_m2"]
    renderer = layer.renderer()
    assert renderer.type() == "categorizedSymbol" and renderer.classAttribute() == "class"
    assert [c.label() for c in renderer.categories()] == ["water", "bare land / scrub", "vegetation"]
    class_map = QgsRasterLayer(out, "map")  # kept: its renderer lives only as long as it does
    assert class_map.renderer().type() == "paletted"  # the map's own .qml is untouched by the polygons' style
    assert [c.symbol().color().name() for c in renderer.categories()] == [c.color.name()
                                                                           for c in class_map.renderer().classes()]
    with open(areas, encoding="utf-8") as fh:
        assert fh.readline().strip() == "class,name,pixels,hectares,percent"


def test_classify_inside_a_mask_layer_in_another_crs(patchwork_provider, tmp_path, s2_path):
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    layer = QgsRasterLayer(s2_path, "s2")
    extent = layer.extent()  # EPSG:4326: the mask is drawn in Web Mercator
    box = QgsGeometry.fromWkt(f"POLYGON(({extent.xMinimum()} {extent.yMinimum()}, {extent.center().x()} "
                              f"{extent.yMinimum()}, {extent.center().x()} {extent.center().y()}, "
                              f"{extent.xMinimum()} {extent.yMinimum()}))")
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform

    box.transform(QgsCoordinateTransform(layer.crs(), QgsCoordinateReferenceSystem("EPSG:3857"),
                                         QgsProject.instance()))
    mask = QgsVectorLayer("Polygon?crs=EPSG:3857", "mask", "memory")
    feature = QgsFeature()
    feature.setGeometry(box)
    mask.dataProvider().addFeatures([feature])
    full = run("classify", {"INPUT": s2_path, "MODEL": RULES, "SCALE": 0.0001, "OUTPUT": str(tmp_path / "f.tif")})
    masked = run("classify", {"INPUT": s2_path, "MODEL": RULES, "SCALE": 0.0001, "MASK": mask,
                              "OUTPUT": str(tmp_path / "m.tif")})
    everywhere, inside_map = (gdal.Open(r["OUTPUT"]).ReadAsArray() for r in (full, masked))
    inside = inside_map != 255
    assert 0.115 < inside.mean() < 0.135  # the triangle is an eighth of the scene; the rest is nodata
    np.testing.assert_array_equal(inside_map[inside], everywhere[inside])


def test_detect_writes_boxes_styled_by_class(patchwork_provider, tmp_path, ortho_path):
    from qgis.core import QgsVectorLayer

    from patchwork.core import detect
    from tests.onnx_models import cell_detector

    model = cell_detector(str(tmp_path / "cells.onnx"), "v8")
    algorithm = QgsApplication.processingRegistry().algorithmById("patchwork:detect")
    assert algorithm.displayName() == "Detect objects (tiled)"
    found = run("detect", {"INPUT": ortho_path, "MODEL": model, "BANDS": "1,2,3", "SCALE": 1 / 255, "TILE_SIZE": 256,
                           "OVERLAP": 64, "OUTPUT": str(tmp_path / "boxes.gpkg")})
    reference = detect(ortho_path, model, str(tmp_path / "core.gpkg"), bands=[1, 2, 3], scale=1 / 255, tile_size=256,
                       overlap=64)
    assert found["DETECTIONS"] == len(reference.boxes) > 50
    layer = QgsVectorLayer(found["OUTPUT"], "boxes")  # its default style comes with it
    assert layer.isValid() and layer.featureCount() == len(reference.boxes)
    assert layer.renderer().type() == "categorizedSymbol"
    assert [c.label() for c in layer.renderer().categories()] == ["dark", "bright"]
    assert layer.renderer().categories()[0].symbol().symbolLayer(0).brushStyle() == 0  # outlines: imagery shows


def test_superresolve_through_processing(patchwork_provider, tmp_path, ortho_path):
    small = str(tmp_path / "small.tif")
    gdal.Translate(small, ortho_path, srcWin=[0, 0, 96, 80], bandList=[1, 2, 3])
    model = os.path.join(SHARED_DATA, "models-more", "dummy_superresolution_model.onnx")
    done = run("superresolve", {"INPUT": small, "MODEL": model, "SCALE": 1 / 255, "OVERLAP": 16,
                                "OUTPUT": str(tmp_path / "x2.tif")})
    assert done["SCALE_FACTOR"] == 2
    out = gdal.Open(done["OUTPUT"])
    assert (out.RasterXSize, out.RasterYSize, out.RasterCount) == (192, 160, 3)
    with pytest.raises(QgsProcessingException, match="super-resolution model"):
        run("classify", {"INPUT": small, "MODEL": model, "OUTPUT": str(tmp_path / "c.tif")})


def test_recognize_through_processing(patchwork_provider, tmp_path, ortho_path):
    query = str(tmp_path / "query.png")
    gdal.Translate(query, ortho_path, format="PNG", srcWin=[224, 224, 224, 224], bandList=[1, 2, 3])
    model = os.path.join(SHARED_DATA, "models-more", "dummy_recognition_model.onnx")
    done = run("recognize", {"INPUT": ortho_path, "MODEL": model, "QUERY": query, "BANDS": "1,2,3",
                             "SCALE": 1 / 255, "OVERLAP": 0, "WINDOW": "boxcar", "OUTPUT": str(tmp_path / "s.tif"),
                             "RESOLUTION": gdal.Open(ortho_path).GetGeoTransform()[1]})  # its grid, not 3 cm
    similarity = gdal.Open(done["OUTPUT"]).ReadAsArray()
    assert done["TILES"] == 24 and similarity[224:448, 224:448] == pytest.approx(1.0, abs=1e-5)
    assert similarity.max() == pytest.approx(1.0, abs=1e-5) and similarity.min() < 0.99


def test_classify_at_a_resolution_through_processing(patchwork_provider, tmp_path, s2_path):
    gt = gdal.Open(s2_path).GetGeoTransform()
    coarse = run("classify", {"INPUT": s2_path, "MODEL": RULES, "SCALE": 0.0001, "RESOLUTION": 3 * gt[1],
                              "OUTPUT": str(tmp_path / "coarse.tif")})
    back = run("classify", {"INPUT": s2_path, "MODEL": RULES, "SCALE": 0.0001, "RESOLUTION": 3 * gt[1],
                            "OUTPUT_GRID": "input", "OUTPUT": str(tmp_path / "back.tif")})
    assert gdal.Open(coarse["OUTPUT"]).RasterXSize == 114 and gdal.Open(back["OUTPUT"]).RasterXSize == 343


def test_classify_errors_are_processing_errors_and_write_nothing(patchwork_provider, tmp_path, ortho_path):
    model = os.path.join(SHARED_DATA, "models", "one_output_softmax_bsx2x512x512.onnx")
    out_dir = tmp_path / "out"
    with pytest.raises(QgsProcessingException, match="takes 3 bands but it would get 4"):
        run("classify", {"INPUT": ortho_path, "MODEL": model, "OUTPUT": str(out_dir / "c.tif")})
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(QgsProcessingException, match="Trust this model file"):
        run("classify", {"INPUT": ortho_path, "MODEL": str(pickled), "OUTPUT": str(out_dir / "c.tif")})
    assert files_under(str(out_dir)) == []


def test_classify_cancel_keeps_nothing(patchwork_provider, tmp_path, example_path):
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda percent: percent > 10 and feedback.cancel())
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run("classify", {"INPUT": example_path, "MODEL": RULES, "TILE_SIZE": 32, "BATCH_SIZE": 1,
                         "OUTPUT": str(tmp_path / "out" / "c.tif")}, feedback)
    assert files_under(str(tmp_path / "out")) == []


def test_stitch_and_compare_chain(patchwork_provider, tmp_path, example_path):
    chips = run("samplechips", {"INPUT": example_path, "CHIP_SIZE": 64, "STEP": 48, "MAX_NODATA": 1.0,
                                "OUTPUT_DIR": str(tmp_path / "chips"), "OUTPUT": str(tmp_path / "chips.gpkg")})
    predictions = tmp_path / "predictions"
    for name in sorted(os.listdir(tmp_path / "chips" / "images")):
        run("classify", {"INPUT": str(tmp_path / "chips" / "images" / name), "MODEL": RULES,
                         "OUTPUT": str(predictions / name)})
    mosaic = run("stitchchips", {"INPUT": str(predictions), "WINDOW": 1, "AGGREGATION": 0, "N_CLASSES": 3,
                                 "REFERENCE": example_path, "OUTPUT": str(tmp_path / "mosaic.tif")})
    assert mosaic["CHIP_COUNT"] == chips["CHIP_COUNT"] and 0.8 < mosaic["COVERAGE"] < 1.0
    full = run("classify", {"INPUT": example_path, "MODEL": RULES, "OUTPUT": str(tmp_path / "full.tif")})
    compared = run("compare", {"INPUT": mosaic["OUTPUT"], "REFERENCE": full["OUTPUT"],
                               "OUTPUT": str(tmp_path / "agree.tif"), "OUTPUT_HTML": str(tmp_path / "r.html")})
    assert compared["AGREEMENT"] == 1.0 and compared["KAPPA"] == 1.0
    matrix = json.loads(compared["CONFUSION_MATRIX"])
    assert matrix["classes"] == [0, 1, 2] and matrix["pixels"] == compared["PIXELS"] > 300000
    assert "100.0000%" in open(compared["OUTPUT_HTML"]).read()


def test_classify_writes_an_uncertainty_map_styled_from_sure_to_unsure(patchwork_provider, tmp_path, s2_path):
    """#24 item 3 through Processing: the measure as a word, the map loaded with its 0–1 colour ramp."""
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    uncertainty = str(tmp_path / "unsure.tif")
    context.addLayerToLoadOnCompletion(uncertainty, QgsProcessingContext.LayerDetails("unsure", QgsProject.instance(),
                                                                                      "OUTPUT_UNCERTAINTY"))
    done = run("classify", {"INPUT": s2_path, "MODEL": RULES, "SCALE": 1e-4, "TILE_SIZE": 64, "OVERLAP": 32,
                            "AGGREGATION": "hardvote", "OUTPUT": str(tmp_path / "c.tif"),
                            "OUTPUT_PROBABILITIES": str(tmp_path / "p.tif"), "OUTPUT_UNCERTAINTY": uncertainty,
                            "UNCERTAINTY": "least_confidence"}, context=context)
    assert done["OUTPUT_UNCERTAINTY"] == uncertainty
    shares, unsure = gdal.Open(done["OUTPUT_PROBABILITIES"]).ReadAsArray(), gdal.Open(uncertainty).ReadAsArray()
    np.testing.assert_allclose(unsure, 1 - shares.max(axis=0), atol=1e-7)  # a per-pixel model votes the same
    assert np.nanmax(unsure) == 0
    assert context.layerToLoadOnCompletionDetails(uncertainty).postProcessor() is not None  # styled when loaded
    layer = QgsRasterLayer(uncertainty, "unsure")  # the .qml beside it is its default style
    assert layer.renderer().type() == "singlebandpseudocolor"
    assert (layer.renderer().classificationMin(), layer.renderer().classificationMax()) == (0, 1)
    with pytest.raises(QgsProcessingException, match="UNCERTAINTY: 'variance' does not apply to a class map"):
        run("classify", {"INPUT": s2_path, "MODEL": RULES, "OUTPUT": str(tmp_path / "c2.tif"),
                         "OUTPUT_UNCERTAINTY": str(tmp_path / "u2.tif"), "UNCERTAINTY": "variance"})


def test_tukey_and_gaussian_windows_take_their_parameter(patchwork_provider, tmp_path, s2_path):
    """The seed library's last two windows, with alpha or sigma; a parameter for a window without one is refused."""
    maps = []
    for window, parameter in (("tukey", 0.25), ("gaussian", 0.3), ("boxcar", None)):
        params = {"INPUT": s2_path, "MODEL": RULES, "SCALE": 1e-4, "TILE_SIZE": 64, "OVERLAP": 16,
                  "WINDOW": window, "AGGREGATION": "softvote", "OUTPUT": str(tmp_path / f"{window}.tif")}
        if parameter is not None:
            params["WINDOW_PARAMETER"] = parameter
        maps.append(gdal.Open(run("classify", params)["OUTPUT"]).ReadAsArray())
    assert (maps[0] == maps[2]).all() and (maps[1] == maps[2]).all()  # a per-pixel model: any window, one map
    with pytest.raises(QgsProcessingException, match="WINDOW_PARAMETER: the hann window takes no parameter"):
        run("classify", {"INPUT": s2_path, "MODEL": RULES, "WINDOW": "hann", "WINDOW_PARAMETER": 0.3,
                         "OUTPUT": str(tmp_path / "x.tif")})
