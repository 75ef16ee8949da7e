"""patchwork:samplechips as a child of a graphical-modeler model."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from patchwork.core import read_index


def test_model_with_samplechips_runs(patchwork_provider, tmp_path, naip_path):
    model = QgsProcessingModelAlgorithm("chips model", "tests")
    raster = QgsProcessingParameterRasterLayer("raster", "Raster")
    model.addModelParameter(raster, QgsProcessingModelParameter("raster"))
    child = QgsProcessingModelChildAlgorithm("patchwork:samplechips")
    child.setChildId("sample")
    child.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("raster")])
    for name, value in {"SAMPLER": 2, "CHIP_SIZE": 64, "MIN_DISTANCE": 80.0, "COUNT": 10, "SEED": 3,
                        "BOUNDARY": 0, "MAX_NODATA": 0.0}.items():
        child.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    for name in ("OUTPUT", "OUTPUT_DIR"):
        output = QgsProcessingModelOutput(name.lower())
        output.setChildOutputName(name)
        output.setChildId("sample")
        child.setModelOutputs({**child.modelOutputs(), name.lower(): output})
    model.addChildAlgorithm(child)
    model.updateDestinationParameters()
    destinations = {p.name(): p for p in model.destinationParameterDefinitions()}
    assert isinstance(destinations["sample:output"], QgsProcessingParameterVectorDestination)
    assert isinstance(destinations["sample:output_dir"], QgsProcessingParameterFolderDestination)

    results, ok = model.run({"raster": naip_path, "sample:output": str(tmp_path / "i.gpkg"),
                             "sample:output_dir": str(tmp_path / "chips")}, QgsProcessingContext(),
                            QgsProcessingFeedback())
    assert ok
    assert len(read_index(results["sample:output"])) == 10


def test_model_with_label_polygons_and_their_field_as_inputs(patchwork_provider, tmp_path, naip_path):
    """Vector labels from the modeler: a polygon layer input and a field input (child of it) feed samplechips."""
    from osgeo import gdal
    from qgis.core import QgsProcessingParameterField, QgsProcessingParameterVectorLayer

    from tests.core.test_vector_labels import polygons_in_wgs84
    from tests.plugin.test_samplechips_algorithm import run

    gpkg = polygons_in_wgs84(naip_path, str(tmp_path / "labels.gpkg"))
    model = QgsProcessingModelAlgorithm("labelled chips", "tests")
    for parameter in (QgsProcessingParameterRasterLayer("raster", "Raster"),
                      QgsProcessingParameterVectorLayer("polygons", "Label polygons"),
                      QgsProcessingParameterField("field", "Class field", parentLayerParameterName="polygons")):
        model.addModelParameter(parameter, QgsProcessingModelParameter(parameter.name()))
    child = QgsProcessingModelChildAlgorithm("patchwork:samplechips")
    child.setChildId("sample")
    for name, source in (("INPUT", "raster"), ("LABELS", "polygons"), ("LABEL_FIELD", "field")):
        child.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromModelParameter(source)])
    for name, value in {"SAMPLER": 0, "STEP": 200, "CHIP_SIZE": 64}.items():
        child.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    output = QgsProcessingModelOutput("index")
    output.setChildOutputName("OUTPUT")
    output.setChildId("sample")
    child.setModelOutputs({"index": output})
    model.addChildAlgorithm(child)
    model.updateDestinationParameters()
    results, ok = model.run({"raster": naip_path, "polygons": gpkg, "field": "landcover",
                             "sample:index": str(tmp_path / "i.gpkg")}, QgsProcessingContext(),
                            QgsProcessingFeedback())
    assert ok
    direct = run({"INPUT": naip_path, "LABELS": gpkg, "LABEL_FIELD": "landcover", "SAMPLER": 0, "STEP": 200,
                  "CHIP_SIZE": 64, "OUTPUT_DIR": str(tmp_path / "direct"), "OUTPUT": str(tmp_path / "d.gpkg")})
    modelled, reference = read_index(results["sample:index"]), read_index(direct["OUTPUT"])
    assert len(modelled) == len(reference) == 30  # 5 rows x 6 columns, the last of each shifted in
    for a, b in zip(modelled, reference):
        assert (gdal.Open(a["label_path"]).ReadAsArray() == gdal.Open(b["label_path"]).ReadAsArray()).all()


def test_model_chaining_detect_and_classify_with_a_mask_and_class_polygons(patchwork_provider, tmp_path,
                                                                            ortho_path):
    """The new inference options from the modeler: a mask layer input feeds Detect objects and Classify, whose
    class polygons and boxes come out as model outputs."""
    import numpy as np
    from qgis.core import QgsApplication, QgsProcessingParameterVectorLayer, QgsVectorLayer

    from tests.onnx_models import cell_detector, conv_model

    rgb = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1) * 20
    segmenter = conv_model(str(tmp_path / "rgb.onnx"), rgb, softmax=True, metadata={"model_type": "Segmentor"})
    detector = cell_detector(str(tmp_path / "cells.onnx"))
    model = QgsProcessingModelAlgorithm("detect and classify", "tests")
    for parameter in (QgsProcessingParameterRasterLayer("raster", "Raster"),
                      QgsProcessingParameterVectorLayer("mask", "Mask")):
        model.addModelParameter(parameter, QgsProcessingModelParameter(parameter.name()))
    for child_id, algorithm, statics, outputs in (
            ("detect", "patchwork:detect", {"MODEL": detector, "BANDS": "1,2,3", "SCALE": 1 / 255, "TILE_SIZE": 256,
                                            "OVERLAP": 64}, ["OUTPUT"]),
            ("classify", "patchwork:classify", {"MODEL": segmenter, "BANDS": "1,2,3", "SCALE": 1 / 255,
                                                "MIN_SEGMENT": 20}, ["OUTPUT", "OUTPUT_VECTOR"])):
        child = QgsProcessingModelChildAlgorithm(algorithm)
        child.setChildId(child_id)
        child.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("raster")])
        child.addParameterSources("MASK", [QgsProcessingModelChildParameterSource.fromModelParameter("mask")])
        definitions = QgsApplication.processingRegistry().algorithmById(algorithm).parameterDefinitions()
        defaults = {d.name(): d.defaultValue() for d in definitions  # what the dialog fills in for the user
                    if d.defaultValue() is not None and not d.isDestination()}
        for name, value in {**defaults, **statics}.items():
            child.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
        for name in outputs:
            output = QgsProcessingModelOutput(name.lower())
            output.setChildOutputName(name)
            output.setChildId(child_id)
            child.setModelOutputs({**child.modelOutputs(), name.lower(): output})
        model.addChildAlgorithm(child)
    model.updateDestinationParameters()
    ok, problems = model.validate()
    assert ok, problems
    from osgeo import gdal

    gt = gdal.Open(ortho_path).GetGeoTransform()
    from qgis.core import QgsFeature, QgsGeometry, QgsRasterLayer

    mask = QgsVectorLayer(f"Polygon?crs={QgsRasterLayer(ortho_path, 'ortho').crs().authid()}", "mask", "memory")
    feature = QgsFeature()
    corners = [(50, 250), (600, 820), (50, 820), (50, 250)]  # (col, row): the lower left, where the objects are
    feature.setGeometry(QgsGeometry.fromWkt(
        "POLYGON((" + ", ".join(f"{gt[0] + c * gt[1]} {gt[3] + r * gt[5]}" for c, r in corners) + "))"))
    mask.dataProvider().addFeatures([feature])
    results, ok = model.run({"raster": ortho_path, "mask": mask, "detect:output": str(tmp_path / "boxes.gpkg"),
                             "classify:output": str(tmp_path / "map.tif"),
                             "classify:output_vector": str(tmp_path / "map.gpkg")},
                            QgsProcessingContext(), QgsProcessingFeedback())
    assert ok
    boxes = QgsVectorLayer(results["detect:output"], "boxes")
    polygons = QgsVectorLayer(results["classify:output_vector"], "polygons")
    assert boxes.featureCount() > 10 and polygons.featureCount() > 10
    classes = gdal.Open(results["classify:output"]).ReadAsArray()
    assert (classes[:, :50] == 255).all() and (classes[300, 500] == 255)  # outside the triangle: nodata
    assert classes[700, 200] != 255
