"""patchwork:trainclassifier through Processing, and the shipped workflow model in the modeler."""
from __future__ import annotations

import os

import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback, QgsProcessingModelAlgorithm

from tests.conftest import REPO

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")
WORKFLOW = os.path.join(REPO, "resources", "models", "patchwork_workflow.model3")


def run(algorithm, params):
    import processing

    return processing.run(f"patchwork:{algorithm}", params, feedback=QgsProcessingFeedback())


def test_train_from_raster_and_labels_then_classify(patchwork_provider, tmp_path, s2_path):
    alg = QgsApplication.processingRegistry().algorithmById("patchwork:trainclassifier")
    assert alg.displayName() == "Train pixel classifier"
    assert alg.parameterDefinition("ESTIMATOR").options() == ["random_forest", "extra_trees", "gradient_boosting",
                                                               "logistic_regression", "knn", "mlp"]
    labels = run("classify", {"INPUT": s2_path, "MODEL": RULES, "OUTPUT": str(tmp_path / "rules.tif")})["OUTPUT"]
    trained = run("trainclassifier", {"INPUT": s2_path, "LABELS": labels, "ESTIMATOR": 1,
                                      "PARAMETERS": '{"n_estimators": 30}', "OUTPUT_MODEL": str(tmp_path / "m.onnx"),
                                      "OUTPUT_REPORT": str(tmp_path / "report.html")})
    assert trained["ACCURACY"] > 0.95 and trained["CLASSES"] == "0,1,2"
    classified = run("classify", {"INPUT": s2_path, "MODEL": trained["OUTPUT_MODEL"],
                                  "OUTPUT": str(tmp_path / "m.tif"), "OUTPUT_AOA": str(tmp_path / "aoa.tif")})
    assert gdal.Open(classified["OUTPUT_AOA"]).ReadAsArray().mean() > 0.9  # the scene it learnt: its own area
    compared = run("compare", {"INPUT": classified["OUTPUT"], "REFERENCE": labels})
    assert compared["AGREEMENT"] >= 0.95
    with pytest.raises(QgsProcessingException, match="LABELS: INPUT is a raster"):
        run("trainclassifier", {"INPUT": s2_path, "OUTPUT_MODEL": str(tmp_path / "x.onnx")})
    assert not (tmp_path / "x.onnx").exists()
    standardised = run("trainclassifier", {"INPUT": s2_path, "LABELS": labels, "ESTIMATOR": "mlp",
                                           "STANDARDIZE": True, "OUTPUT_MODEL": str(tmp_path / "mlp.onnx")})
    from patchwork.core import load_model

    info = load_model(standardised["OUTPUT_MODEL"]).info  # from the training pixels: a raster has no dataset.json
    assert len(info.mean) == 4 and all(s > 0 for s in info.std)
    again = run("classify", {"INPUT": s2_path, "MODEL": standardised["OUTPUT_MODEL"],
                             "OUTPUT": str(tmp_path / "s.tif")})
    assert run("compare", {"INPUT": again["OUTPUT"], "REFERENCE": labels})["AGREEMENT"] >= 0.95


def test_workflow_model_loads_in_the_modeler_and_validates(patchwork_provider):
    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(WORKFLOW)
    ok, problems = model.validate()
    assert ok, problems
    children = model.childAlgorithms()
    assert sorted(c.algorithmId() for c in children.values()) == [
        "patchwork:augmentchips", "patchwork:classify", "patchwork:samplechips", "patchwork:trainclassifier"]
    assert {p.name() for p in model.parameterDefinitions()} >= {"raster", "labels", "chip_size", "copies",
                                                               "estimator", "classify:classified", "train:model"}


def test_the_workflow_is_in_the_toolbox(patchwork_provider, tmp_path, s2_path):
    """#27 item 10: the shipped model was not offered in the Toolbox."""
    from patchwork.core import load_model

    workflow = QgsApplication.processingRegistry().algorithmById("patchwork:workflow")
    assert workflow is not None and workflow.group() == "Workflows"
    assert workflow.shortDescription().endswith(".")
    labels = run("classify", {"INPUT": s2_path, "MODEL": RULES, "SCALE": 0.0001,
                              "OUTPUT": str(tmp_path / "rules.tif")})["OUTPUT"]
    done = run("workflow", {"raster": s2_path, "labels": labels, "chip_size": 32, "copies": 1, "estimator": 0,
                            "classify:classified": str(tmp_path / "classes.tif"),
                            "train:model": str(tmp_path / "model.onnx"), "train:report": str(tmp_path / "r.html")})
    assert os.path.exists(done["classify:classified"]) and load_model(done["train:model"]).info.n_classes == 3


def test_the_workflow_from_label_polygons_is_in_the_toolbox(patchwork_provider, tmp_path, naip_path):
    """#27 item 10: the shipped workflow took raster labels only; hand-drawn polygons are what users have."""
    from patchwork.core import load_model
    from tests.core.test_vector_labels import CATEGORIES, polygons_in_wgs84

    workflow = QgsApplication.processingRegistry().algorithmById("patchwork:workflowpolygons")
    assert workflow is not None and workflow.group() == "Workflows" and "polygons" in workflow.shortDescription()
    field = workflow.parameterDefinition("label_field")
    assert field.parentLayerParameterName() == "labels"
    gpkg = polygons_in_wgs84(naip_path, str(tmp_path / "labels.gpkg"))
    done = run("workflowpolygons", {"raster": naip_path, "labels": gpkg, "label_field": "landcover",
                                    "chip_size": 32, "copies": 1, "estimator": 0,
                                    "classify:classified": str(tmp_path / "classes.tif"),
                                    "train:model": str(tmp_path / "model.onnx"),
                                    "train:report": str(tmp_path / "r.html")})
    info = load_model(done["train:model"]).info
    assert sorted(info.class_names) == sorted(CATEGORIES)  # the field's text classes, by name
    classes, scene = gdal.Open(done["classify:classified"]), gdal.Open(naip_path)
    assert (classes.RasterXSize, classes.RasterYSize) == (scene.RasterXSize, scene.RasterYSize)


def test_the_network_workflow_samples_trains_a_unet_and_classifies_with_its_input_scale(patchwork_provider, tmp_path,
                                                                                        naip_path):
    """#25: the shipped workflow with a segmentation network (its own model: PyTorch is optional), from polygons;
    Classify takes the network's input scale from the training (8-bit NAIP: 1/255)."""
    pytest.importorskip("torch")
    from patchwork.core import load_model
    from tests.core.test_vector_labels import polygons_in_wgs84

    workflow = QgsApplication.processingRegistry().algorithmById("patchwork:workflownetwork")
    assert workflow is not None and workflow.displayName() == "Patchwork workflow with a segmentation network"
    gpkg = polygons_in_wgs84(naip_path, str(tmp_path / "labels.gpkg"))
    done = run("workflownetwork", {"raster": naip_path, "labels": gpkg, "label_field": "landcover", "chip_size": 32,
                                   "epochs": 2, "classify:classified": str(tmp_path / "classes.tif"),
                                   "train:model": str(tmp_path / "unet.onnx"),
                                   "train:report": str(tmp_path / "r.html")})
    info = load_model(done["train:model"]).info
    assert info.input_scale == pytest.approx(1 / 255) and info.tile_size == 32 and os.path.exists(tmp_path / "r.html")
    classes, scene = gdal.Open(done["classify:classified"]), gdal.Open(naip_path)
    assert (classes.RasterXSize, classes.RasterYSize) == (scene.RasterXSize, scene.RasterYSize)
    values = classes.ReadAsArray()
    assert len(set(values[values != 255].ravel().tolist())) >= 2  # a map of several classes, from the 8-bit input


def test_the_shipped_workflows_show_their_titles_and_ask_for_the_raster_first(patchwork_provider):
    """Their ids stay short for qgis_process; the Toolbox and the dialog show the model's title. QGIS 3.26+ reads
    the field order from the file (3.22 orders a model's inputs by name)."""
    from qgis.core import Qgis

    registry = QgsApplication.processingRegistry()
    titles = {name: registry.algorithmById(f"patchwork:{name}") for name in ("workflow", "workflowpolygons")}
    assert titles["workflow"].displayName() == "Patchwork workflow: sample, augment, train, classify"
    assert titles["workflowpolygons"].displayName() == "Patchwork workflow from label polygons"
    copy = titles["workflowpolygons"].create()
    assert copy.id() == "patchwork:workflowpolygons" and copy.displayName() == titles["workflowpolygons"].displayName()
    inputs = [p.name() for p in copy.parameterDefinitions() if not p.isDestination()]
    if Qgis.QGIS_VERSION_INT >= 32600:
        assert inputs == ["raster", "labels", "label_field", "chip_size", "copies", "estimator"]
    else:
        assert sorted(inputs) == sorted(["raster", "labels", "label_field", "chip_size", "copies", "estimator"])
