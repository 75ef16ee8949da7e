"""Writes the shipped modeler models: sample → augment → train → classify as one model, in two forms.

- resources/models/patchwork_workflow.model3 (patchwork:workflow): labels as a raster of class ids;
- resources/models/patchwork_workflow_polygons.model3 (patchwork:workflowpolygons): labels as polygons with a
  class field;
- resources/models/patchwork_workflow_network.model3 (patchwork:workflownetwork): label polygons, and a
  segmentation network trained (augmented as it learns) instead of a pixel classifier. A model of its own, not a
  branch of the others: PyTorch is optional, and a branch would make the others fail without it.
Label rasters and polygons are two models, not one with a map-layer input: a map-layer model input with a field
input under it crashes QGIS 3.22 when the model's dialog opens
(QgsProcessingFieldWidgetWrapper::setParentLayerWrapperValue); a vector-layer input is the field widget's usual
parent.

Run with PyQGIS (`make workflow-model`); the .model3 files are committed so users get them with the plugin.
Open one in the graphical modeler to change it, or run it headless:

    qgis_process.bin run resources/models/patchwork_workflow.model3 -- raster=scene.tif labels=labels.tif \\
        classify:classified=classes.tif train:model=model.onnx train:report=report.html
    qgis_process.bin run resources/models/patchwork_workflow_polygons.model3 -- raster=scene.tif \\
        labels=polygons.gpkg label_field=class classify:classified=classes.tif train:model=model.onnx
"""
from __future__ import annotations

import os
import sys

from qgis.core import (
    QgsApplication,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorLayer,
)
from qgis.PyQt.QtCore import QPointF

from patchwork.plugin import qgis_enums

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = {False: os.path.join(REPO, "resources", "models", "patchwork_workflow.model3"),
           True: os.path.join(REPO, "resources", "models", "patchwork_workflow_polygons.model3")}
NETWORK_TARGET = os.path.join(REPO, "resources", "models", "patchwork_workflow_network.model3")
ESTIMATORS = ["random_forest", "extra_trees", "gradient_boosting", "logistic_regression", "knn", "mlp"]


def source(kind: str, value):
    factory = {"param": QgsProcessingModelChildParameterSource.fromModelParameter,
               "static": QgsProcessingModelChildParameterSource.fromStaticValue}[kind]
    return [factory(value)]


def child(model, algorithm: str, child_id: str, x: float, sources: dict, outputs: dict | None = None):
    step = QgsProcessingModelChildAlgorithm(algorithm)
    step.setChildId(child_id)
    step.setDescription(child_id.capitalize())
    step.setPosition(QPointF(x, 200))
    for name, value in sources.items():
        step.addParameterSources(name, value)
    # Every other input the algorithm needs gets its own default, written into the model.
    for definition in QgsApplication.processingRegistry().algorithmById(algorithm).parameterDefinitions():
        default = definition.defaultValue()
        if definition.name() not in sources and not definition.isDestination() and default is not None:
            step.addParameterSources(definition.name(), source("static", default))
    model_outputs = {}
    for name, label in (outputs or {}).items():
        out = QgsProcessingModelOutput(label)
        out.setChildId(child_id)
        out.setChildOutputName(name)
        out.setDescription(label)
        model_outputs[label] = out
    step.setModelOutputs(model_outputs)
    model.addChildAlgorithm(step)
    return step


def label_inputs(polygons: bool) -> tuple[list, dict, dict]:
    """The model's label inputs, their help, and what they feed into samplechips."""
    if not polygons:
        return ([QgsProcessingParameterRasterLayer("labels", "Label raster (class ids, same grid)")],
                {"labels": "A raster of class ids on the raster's grid."},
                {"LABELS": source("param", "labels")})
    return ([QgsProcessingParameterVectorLayer("labels", "Label polygons", [qgis_enums.SOURCE_VECTOR_POLYGON]),
             QgsProcessingParameterField("label_field", "Class field of the label polygons",
                                         parentLayerParameterName="labels")],
            {"labels": "Polygons drawn over the raster, each with its class in a field; pixels outside every "
                       "polygon are not labelled.",
             "label_field": "The field that holds each polygon's class: whole numbers (the ids) or text (class "
                            "names, numbered in sorted order)."},
            {"LABELS": source("param", "labels"), "LABEL_FIELD": source("param", "label_field")})


def add_inputs(model: QgsProcessingModelAlgorithm, parameters: list, help_content: dict) -> None:
    """The model's inputs, each with its help, in a row."""
    model.setHelpContent(help_content)
    for i, parameter in enumerate(parameters):
        parameter.setHelp(help_content[parameter.name()])
        model_parameter = QgsProcessingModelParameter(parameter.name())
        model_parameter.setPosition(QPointF(100 + 180 * i, 60))
        model.addModelParameter(parameter, model_parameter)


def build(polygons: bool) -> QgsProcessingModelAlgorithm:
    kind = "label polygons" if polygons else "a label raster"
    name = "Patchwork workflow from label polygons" if polygons else "Patchwork workflow: sample, augment, train, " \
        "classify"
    model = QgsProcessingModelAlgorithm(name, "Patchwork")
    labels, labels_help, labels_sources = label_inputs(polygons)
    help_content = {
        "ALG_DESC": f"Samples labelled chips from a raster and {kind}, augments them, trains a pixel classifier on "
                    "them and classifies the whole raster with it (tiled).",
        "SHORT_DESCRIPTION": f"Sample, augment, train and classify in one run, from a raster and {kind}.",
        "raster": "The raster to learn from and to classify.",
        **labels_help,
        "chip_size": "The side of the training chips, in pixels (also the step between them).",
        "copies": "Augmented copies (flips and quarter turns) made of each chip.",
        "estimator": "The scikit-learn classifier to train.",
    }
    add_inputs(model, [
        QgsProcessingParameterRasterLayer("raster", "Raster to learn from and classify"),
        *labels,
        QgsProcessingParameterNumber("chip_size", "Chip size (px)", qgis_enums.INTEGER, 32,
                                     minValue=4),
        QgsProcessingParameterNumber("copies", "Augmented copies per chip",
                                     qgis_enums.INTEGER, 2, minValue=1),
        QgsProcessingParameterEnum("estimator", "Estimator", ESTIMATORS, defaultValue=0),
    ], help_content)
    add_sample_step(model, labels_sources)
    child(model, "patchwork:augmentchips", "augment", 400, {
        "INPUT": [QgsProcessingModelChildParameterSource.fromChildOutput("sample", "OUTPUT")],
        # Geometric only: per-band brightness changes would blur spectral classes for a pixel classifier.
        # (A static value, not a model parameter: QGIS 3.22 does not pass a model parameter's default on.)
        "PIPELINE": source("static", "geometric"), "COPIES": source("param", "copies"), "SEED": source("static", 42)})
    child(model, "patchwork:trainclassifier", "train", 650, {
        "INPUT": [QgsProcessingModelChildParameterSource.fromChildOutput("augment", "OUTPUT")],
        "ESTIMATOR": source("param", "estimator"), "VALIDATION_FRACTION": source("static", 0.2),
        "MAX_PIXELS": source("static", 200000), "SEED": source("static", 42)},
        {"OUTPUT_MODEL": "model", "OUTPUT_REPORT": "report"})
    child(model, "patchwork:classify", "classify", 900, {
        "INPUT": source("param", "raster"),
        "MODEL": [QgsProcessingModelChildParameterSource.fromChildOutput("train", "OUTPUT_MODEL")]},
        {"OUTPUT": "classified"})
    return model


def add_sample_step(model: QgsProcessingModelAlgorithm, labels_sources: dict) -> None:
    """Sample chips from the raster and its labels, CHIP_SIZE apart (every workflow's first step)."""
    child(model, "patchwork:samplechips", "sample", 150, {
        "INPUT": source("param", "raster"), **labels_sources,
        "CHIP_SIZE": source("param", "chip_size"), "STEP": source("param", "chip_size"),
        "MAX_NODATA": source("static", 0.5)})


def build_network() -> QgsProcessingModelAlgorithm:
    """Sample → train a segmentation network (augmented as it learns) → classify, from label polygons."""
    model = QgsProcessingModelAlgorithm("Patchwork workflow with a segmentation network", "Patchwork")
    labels, labels_help, labels_sources = label_inputs(True)
    add_inputs(model, [
        QgsProcessingParameterRasterLayer("raster", "Raster to learn from and classify"), *labels,
        QgsProcessingParameterNumber("chip_size", "Chip size (px, a multiple of 4)", qgis_enums.INTEGER, 64,
                                     minValue=8),
        QgsProcessingParameterNumber("epochs", "Epochs (at most)", qgis_enums.INTEGER, 20, minValue=1),
    ], {
        "ALG_DESC": "Samples labelled chips from a raster and label polygons, trains a segmentation network (a U-Net, "
                    "PyTorch) on them with flips and quarter turns drawn on every batch, and classifies the whole "
                    "raster with it (tiled, overlapping tiles blended). Needs PyTorch.",
        "SHORT_DESCRIPTION": "Sample, train a U-Net and classify in one run, from a raster and label polygons.",
        "raster": "The raster to learn from and to classify.", **labels_help,
        "chip_size": "The side of the training chips, in pixels (also the step between them); the network's tile.",
        "epochs": "The most passes over the chips (it stops earlier when the held-out chips stop improving).",
    })
    add_sample_step(model, labels_sources)
    child(model, "patchwork:trainsegmentation", "train", 450, {
        "INPUT": [QgsProcessingModelChildParameterSource.fromChildOutput("sample", "OUTPUT")],
        "PIPELINE": source("static", "geometric"), "EPOCHS": source("param", "epochs"),
        "SEED": source("static", 42)},
        {"OUTPUT_MODEL": "model", "OUTPUT_REPORT": "report"})
    child(model, "patchwork:classify", "classify", 750, {
        "INPUT": source("param", "raster"),
        "MODEL": [QgsProcessingModelChildParameterSource.fromChildOutput("train", "OUTPUT_MODEL")],
        "SCALE": [QgsProcessingModelChildParameterSource.fromChildOutput("train", "INPUT_SCALE")],
        "OVERLAP": source("static", 16), "WINDOW": source("static", 1), "AGGREGATION": source("static", 1)},
        {"OUTPUT": "classified"})
    return model


def with_parameter_order(path: str, names: list[str]) -> None:
    """Adds the dialog's field order (raster, labels, then the settings) to a written model.

    QGIS 3.26+ reads `parameterOrder`; 3.22 (which writes the file here) has no setter for it (it writes the key
    empty and ignores it) and lists the inputs alphabetically, the raster last.
    """
    import xml.etree.ElementTree as ET

    order = ["raster", "labels", "label_field", "chip_size", "copies", "estimator", "epochs"]
    tree = ET.parse(path)
    root = tree.getroot()  # <Option type="Map"> of the model
    for empty in root.findall("Option[@name='parameterOrder']"):  # 3.22 writes the key, always empty
        root.remove(empty)
    entry = ET.SubElement(root, "Option", {"type": "StringList", "name": "parameterOrder"})
    for name in sorted(names, key=order.index):
        ET.SubElement(entry, "Option", {"type": "QString", "value": name})
    ET.indent(tree, "  ")
    tree.write(path, encoding="unicode")


def main() -> int:
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.insert(0, "/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    import patchwork

    plugin = patchwork.classFactory(None)  # kept alive: its provider must stay registered
    plugin.initProcessing()
    for target, model in [*((target, build(polygons)) for polygons, target in TARGETS.items()),
                          (NETWORK_TARGET, build_network())]:
        ok, problems = model.validate()
        if not ok:
            print("model does not validate:", problems)
            return 1
        if not model.toFile(target):
            print(f"cannot write {target}")
            return 1
        with_parameter_order(target, [p.name() for p in model.parameterDefinitions() if not p.isDestination()])
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
