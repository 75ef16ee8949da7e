"""patchwork:trainclassifier — train a per-pixel classifier from label chips and export it to ONNX."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsRasterLayer,
)

from ...core.tasks.train_classifier import ESTIMATORS
from .. import qgis_enums
from .common import PROVIDER_ID, CoreCall, EnumParameter, PatchworkAlgorithm


class TrainClassifierAlgorithm(PatchworkAlgorithm):
    ID = f"{PROVIDER_ID}:trainclassifier"
    group_name = "Training"
    required_packages = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime")
    # Its parameters' and outputs' names, spelled once (the panel and scripts use these too).
    INPUT, LABELS, ESTIMATOR = "INPUT", "LABELS", "ESTIMATOR"
    PARAMETERS, VALIDATION_FRACTION, MAX_PIXELS = "PARAMETERS", "VALIDATION_FRACTION", "MAX_PIXELS"
    OUTPUT_MODEL, OUTPUT_SKOPS, OUTPUT_REPORT = "OUTPUT_MODEL", "OUTPUT_SKOPS", "OUTPUT_REPORT"
    SEED, ACCURACY, CLASSES, STANDARDIZE = "SEED", "ACCURACY", "CLASSES", "STANDARDIZE"
    parameter_help = {
        INPUT: "A chip index with label chips (from Sample chips or Augment chips), or a raster with LABELS.",
        LABELS: "A raster of class ids on INPUT's grid, when INPUT is a raster.",
        ESTIMATOR: "The scikit-learn estimator to train.",
        PARAMETERS: 'Settings of the estimator as JSON, e.g. {"n_estimators": 200}; an unknown one is refused '
                    "with the known ones.",
        VALIDATION_FRACTION: "The share of chips held out to measure the model; chips that overlap them are left "
                             "out of training.",
        MAX_PIXELS: "At most this many training pixels, drawn evenly across the classes.",
        STANDARDIZE: "Train on (value − mean) / std per band, with the chip dataset's band statistics "
                     "(dataset.json); the model carries them and Classify applies them.",
        OUTPUT_MODEL: "The trained model as ONNX, with its classes, names and colours; Classify reads it.",
        OUTPUT_SKOPS: "A scikit-learn copy of the model (skops format, safe to load).",
        OUTPUT_REPORT: "An HTML report: validation accuracy, confusion matrix, per-class scores, band importance.",
    }

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return self.tr("Train pixel classifier")

    def tags(self) -> list[str]:
        return self.tr("train,classifier,random forest,scikit-learn,onnx,machine learning,supervised").split(",")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        number = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterMapLayer(
            self.INPUT, self.tr("Chip index with label chips, or a raster"),
            types=[qgis_enums.SOURCE_VECTOR_POLYGON, qgis_enums.SOURCE_RASTER]))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.LABELS, self.tr("Label raster (when INPUT is a raster)"), optional=True))
        self.addParameter(EnumParameter(self.ESTIMATOR, self.tr("Estimator"), list(ESTIMATORS)))
        self.addParameter(QgsProcessingParameterString(
            self.PARAMETERS, self.tr('Estimator settings (JSON, e.g. {"n_estimators": 200})'), optional=True))
        self.addParameter(number(self.VALIDATION_FRACTION, self.tr("Fraction of chips held out for validation"),
                                 qgis_enums.DOUBLE, 0.2, minValue=0.0, maxValue=0.95))
        self.addParameter(number(self.MAX_PIXELS, self.tr("Maximum training pixels (stratified subsample)"),
                                 qgis_enums.INTEGER, 200000, minValue=1))
        self.addParameter(QgsProcessingParameterBoolean(
            self.STANDARDIZE, self.tr("Standardise bands with the dataset's statistics"), defaultValue=False,
            optional=True))  # optional: models saved before it existed still validate
        self.addParameter(number(self.SEED, self.tr("Random seed"), qgis_enums.INTEGER, 42, minValue=0))
        self.mark_advanced(self.PARAMETERS, self.MAX_PIXELS, self.STANDARDIZE, self.SEED)
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_MODEL, self.tr("Model (ONNX)"), self.tr("ONNX models (*.onnx)")))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_SKOPS, self.tr("Model (scikit-learn .skops copy)"), self.tr("skops files (*.skops)"),
            optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_REPORT, self.tr("Training report"), self.tr("HTML files (*.html)"), optional=True,
            createByDefault=True))
        self.addOutput(QgsProcessingOutputNumber(self.ACCURACY, self.tr("Validation accuracy")))
        self.addOutput(QgsProcessingOutputString(self.CLASSES, self.tr("Class ids (comma-separated)")))

    def core_call(self, parameters, context) -> CoreCall:
        from ...core.tasks.train_classifier import train_classifier

        layer = self.parameterAsLayer(parameters, self.INPUT, context)
        labels = self.file_raster(parameters, self.LABELS, context)
        if isinstance(layer, QgsRasterLayer):
            if labels is None:
                raise QgsProcessingException(self.tr(
                    "LABELS: INPUT is a raster, so a label raster of class ids on its grid is needed."))
            self.file_raster(parameters, self.INPUT, context)
        else:
            labels = None  # a chip index brings its own label chips (processAlgorithm says so)
        return CoreCall(train_classifier, (
            layer.source().split("|")[0], self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)), dict(
            labels=labels.source() if labels else None,
            estimator=self.word(parameters, self.ESTIMATOR, context),
            parameters=self.parameterAsString(parameters, self.PARAMETERS, context) or None,
            validation_fraction=self.parameterAsDouble(parameters, self.VALIDATION_FRACTION, context),
            max_pixels=self.parameterAsInt(parameters, self.MAX_PIXELS, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            standardize=self.parameterAsBoolean(parameters, self.STANDARDIZE, context),
            skops_copy=self.parameterAsFileOutput(parameters, self.OUTPUT_SKOPS, context) or None,
            report=self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        call = self.call
        if not call.kwargs["labels"] and parameters.get(self.LABELS) not in (None, ""):
            feedback.pushWarning(self.tr("LABELS is not used: INPUT is a chip index, whose label chips are used."))
        result = self.run_call(call, feedback)
        model, skops_copy, report = call.args[1], call.kwargs["skops_copy"], call.kwargs["report"]
        if result.accuracy is not None:
            feedback.pushInfo(self.tr("Validation accuracy {:.2%} on {:,} pixels").format(
                result.accuracy, result.validation_pixels))
        outputs = {self.OUTPUT_MODEL: model, self.ACCURACY: result.accuracy,
                   self.CLASSES: ",".join(map(str, result.classes))}
        if skops_copy:
            outputs[self.OUTPUT_SKOPS] = skops_copy
        if report:
            outputs[self.OUTPUT_REPORT] = report
        return outputs
