"""Writes resources/models/patchwork_workflow.model3: sample → augment → train → classify as one model.

Run with PyQGIS (`make workflow-model`); the .model3 is committed so users get it with the plugin.
Open it in the graphical modeler to change it, or run it headless:

    qgis_process.bin run resources/models/patchwork_workflow.model3 -- raster=scene.tif labels=labels.tif \\
        classify:classified=classes.tif train:model=model.onnx train:report=report.html

The plugin offers it in the Toolbox as patchwork:workflow.
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
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)
from qgis.PyQt.QtCore import QPointF

from patchwork.plugin import qgis_enums

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(REPO, "resources", "models", "patchwork_workflow.model3")
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


def build() -> QgsProcessingModelAlgorithm:
    model = QgsProcessingModelAlgorithm("Patchwork workflow: sample, augment, train, classify", "Patchwork")
    help_content = {
        "ALG_DESC": "Samples labelled chips from a raster, augments them, trains a pixel classifier on them and "
                    "classifies the whole raster with it (tiled).",
        "SHORT_DESCRIPTION": "Sample, augment, train and classify in one run, from a raster and its labels.",
        "raster": "The raster to learn from and to classify.",
        "labels": "A raster of class ids on the raster's grid.",
        "chip_size": "The side of the training chips, in pixels (also the step between them).",
        "copies": "Augmented copies (flips and quarter turns) made of each chip.",
        "estimator": "The scikit-learn classifier to train.",
    }
    model.setHelpContent(help_content)
    parameters = [
        QgsProcessingParameterRasterLayer("raster", "Raster to learn from and classify"),
        # A label raster only: a map-layer input with a field input under it (for label polygons) crashes QGIS 3.22
        # when the model's dialog opens (QgsProcessingFieldWidgetWrapper::setParentLayerWrapperValue).
        QgsProcessingParameterRasterLayer("labels", "Label raster (class ids, same grid)"),
        QgsProcessingParameterNumber("chip_size", "Chip size (px)", qgis_enums.INTEGER, 32,
                                     minValue=4),
        QgsProcessingParameterNumber("copies", "Augmented copies per chip",
                                     qgis_enums.INTEGER, 2, minValue=1),
        QgsProcessingParameterEnum("estimator", "Estimator", ESTIMATORS, defaultValue=0),
    ]
    for i, parameter in enumerate(parameters):
        parameter.setHelp(help_content[parameter.name()])
        model_parameter = QgsProcessingModelParameter(parameter.name())
        model_parameter.setPosition(QPointF(100 + 180 * i, 60))
        model.addModelParameter(parameter, model_parameter)
    child(model, "patchwork:samplechips", "sample", 150, {
        "INPUT": source("param", "raster"), "LABELS": source("param", "labels"),
        "CHIP_SIZE": source("param", "chip_size"), "STEP": source("param", "chip_size"),
        "MAX_NODATA": source("static", 0.5)})
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


def main() -> int:
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.insert(0, "/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    import patchwork

    plugin = patchwork.classFactory(None)  # kept alive: its provider must stay registered
    plugin.initProcessing()
    model = build()
    ok, problems = model.validate()
    if not ok:
        print("model does not validate:", problems)
        return 1
    if not model.toFile(TARGET):
        print(f"cannot write {TARGET}")
        return 1
    print(TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
