"""patchwork:trainsegmentation — train a segmentation network (a U-Net, in PyTorch) from label chips, augmented
while it learns, and export it to ONNX with Deepness's metadata."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ...core.tasks.train_segmentation import ARCHITECTURES, DEVICES
from .. import qgis_enums
from .common import PROVIDER_ID, CoreCall, EnumParameter, PatchworkAlgorithm


class TrainSegmentationAlgorithm(PatchworkAlgorithm):
    ID = f"{PROVIDER_ID}:trainsegmentation"
    group_name = "Training"
    required_packages = ("torch", "onnx")
    INPUT, PIPELINE, ARCHITECTURE, EPOCHS = "INPUT", "PIPELINE", "ARCHITECTURE", "EPOCHS"
    BATCH_SIZE, LEARNING_RATE, VALIDATION_FRACTION = "BATCH_SIZE", "LEARNING_RATE", "VALIDATION_FRACTION"
    PATIENCE, SEED, OUTPUT_MODEL, OUTPUT_REPORT = "PATIENCE", "SEED", "OUTPUT_MODEL", "OUTPUT_REPORT"
    VAL_ACCURACY, VAL_MIOU, INPUT_SCALE = "VAL_ACCURACY", "VAL_MIOU", "INPUT_SCALE"
    parameter_help = {
        INPUT: "A chip index with label chips (Sample chips with LABELS, or Augment chips of one), or several, e.g. "
               "of several scenes: their chips must have the same bands, and a class value the same name in each. "
               "One chip size, a multiple of 4 px. Validation chips are held out in every scene.",
        PIPELINE: "Augmentations drawn on every batch, new each epoch (the JSON the Augment tab writes, a .json file "
                  "or a preset name such as geometric); empty: none.",
        ARCHITECTURE: "The network: unet, a compact U-Net written in the plugin (no weights downloaded).",
        EPOCHS: "The most passes over the training chips (training stops earlier when validation stops improving).",
        BATCH_SIZE: "Chips per training step.",
        LEARNING_RATE: "Adam's step size.",
        VALIDATION_FRACTION: "The share of chips held out by blocks of the scene (4 chip sides), to measure the "
                             "network and keep its best epoch; training chips that overlap them are left out.",
        PATIENCE: "Stop when the validation loss has not improved for this many epochs; the best epoch is kept.",
        "DEVICE": "auto: a CUDA GPU when PyTorch sees one, else the CPU; the log says which ran.",
        OUTPUT_MODEL: "The network as ONNX (dynamic batch, the chips' tile) with Deepness's metadata: Classify raster "
                      "and Deepness run it.",
        OUTPUT_REPORT: "An HTML report: loss and score curves per epoch, the validation confusion matrix, IoU and F1 "
                       "per class, the settings, and validation chips with their label and prediction.",
    }

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return self.tr("Train segmentation network")

    def tags(self) -> list[str]:
        return self.tr("train,network,unet,u-net,segmentation,deep learning,pytorch,torch,onnx,deepness").split(",")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        number = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.INPUT, self.tr("Chip indexes with label chips (one or several)"), qgis_enums.SOURCE_VECTOR_POLYGON))
        self.addParameter(QgsProcessingParameterString(
            self.PIPELINE, self.tr("Augmentation pipeline (JSON, a .json file or a preset; empty: none)"),
            optional=True, multiLine=True))
        self.addParameter(EnumParameter(self.ARCHITECTURE, self.tr("Network"), list(ARCHITECTURES)))
        self.addParameter(number(self.EPOCHS, self.tr("Epochs (at most)"), qgis_enums.INTEGER, 30, minValue=1,
                                 maxValue=10000))
        self.addParameter(number(self.BATCH_SIZE, self.tr("Chips per batch"), qgis_enums.INTEGER, 8, minValue=1,
                                 maxValue=4096))
        self.addParameter(number(self.LEARNING_RATE, self.tr("Learning rate"), qgis_enums.DOUBLE, 0.003,
                                 minValue=1e-7, maxValue=1.0))
        self.addParameter(number(self.VALIDATION_FRACTION, self.tr("Fraction of chips held out for validation"),
                                 qgis_enums.DOUBLE, 0.2, minValue=0.0, maxValue=0.9))
        self.addParameter(number(self.PATIENCE, self.tr("Stop after this many epochs without a better validation"),
                                 qgis_enums.INTEGER, 6, minValue=1, maxValue=10000))
        self.addParameter(number(self.SEED, self.tr("Random seed"), qgis_enums.INTEGER, 0, minValue=0))
        self.addParameter(EnumParameter(self.DEVICE, self.tr("Device"), list(DEVICES), optional=True))
        self.mark_advanced(self.ARCHITECTURE, self.LEARNING_RATE, self.PATIENCE, self.SEED, self.DEVICE)
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_MODEL, self.tr("Network (ONNX)"), self.tr("ONNX models (*.onnx)")))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_REPORT, self.tr("Training report"), self.tr("HTML files (*.html)"), optional=True,
            createByDefault=True))
        self.addOutput(QgsProcessingOutputNumber(self.VAL_ACCURACY, self.tr("Validation accuracy")))
        self.addOutput(QgsProcessingOutputNumber(self.VAL_MIOU, self.tr("Validation mean IoU")))
        # what Classify raster's SCALE must be for this network (a model chains it on in the modeler)
        self.addOutput(QgsProcessingOutputNumber(self.INPUT_SCALE, self.tr("Input scale to classify with")))

    def core_call(self, parameters, context) -> CoreCall:
        from ...core.tasks.train_segmentation import train_segmentation

        indexes = [layer.source().split("|")[0] for layer in self.parameterAsLayerList(parameters, self.INPUT, context)]
        return CoreCall(train_segmentation, (
            indexes, self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)), dict(
            pipeline=self.parameterAsString(parameters, self.PIPELINE, context).strip() or None,
            architecture=self.word(parameters, self.ARCHITECTURE, context),
            epochs=self.parameterAsInt(parameters, self.EPOCHS, context),
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            learning_rate=self.parameterAsDouble(parameters, self.LEARNING_RATE, context),
            validation_fraction=self.parameterAsDouble(parameters, self.VALIDATION_FRACTION, context),
            patience=self.parameterAsInt(parameters, self.PATIENCE, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            device=self.word(parameters, self.DEVICE, context),
            report=self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        result = self.run_call(self.call, feedback)
        feedback.pushInfo(self.tr("Network trained on {} in {:.0f} s: validation accuracy {:.2%}, mean IoU {:.3f} "
                                  "(epoch {} of {}) → {}").format(result.device, result.seconds, result.val_accuracy,
                                                                 result.val_miou, result.best_epoch,
                                                                 result.epochs_run, result.output))
        outputs = {self.OUTPUT_MODEL: result.output, self.VAL_ACCURACY: result.val_accuracy,
                   self.VAL_MIOU: result.val_miou, self.INPUT_SCALE: result.input_scale}
        if self.call.kwargs["report"]:
            outputs[self.OUTPUT_REPORT] = self.call.kwargs["report"]
        return outputs
