"""patchwork:augmentchips — augmented copies of a chip dataset, georeferencing and labels kept exact."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProcessingParameterVectorLayer,
)

from ...core.budget import MAX_COPIES
from .. import qgis_enums
from ..resources import resource_path
from .common import PROVIDER_ID, CoreCall, PatchworkAlgorithm, StyleFromQml


class AugmentChipsAlgorithm(PatchworkAlgorithm):
    ID = f"{PROVIDER_ID}:augmentchips"
    # Its parameters' and outputs' names, spelled once (the panel and scripts use these too).
    INPUT, PIPELINE, COPIES = "INPUT", "PIPELINE", "COPIES"
    OUTPUT_DIR, OUTPUT, SEED = "OUTPUT_DIR", "OUTPUT", "SEED"
    OVERWRITE, CHIP_COUNT = "OVERWRITE", "CHIP_COUNT"
    parameter_help = {
        INPUT: "A chip index written by Sample chips (its label chips are augmented with the images).",
        PIPELINE: "The augmentations as JSON, or the path of a .json file; the panel's Augment tab edits and "
                  "previews them.",
        COPIES: "Augmented copies written for each chip.",
        OUTPUT_DIR: "The folder of the augmented chip dataset (new, empty, or an earlier dataset with OVERWRITE).",
        OUTPUT: "The index of the augmented chips.",
    }

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return self.tr("Augment chips")

    def tags(self) -> list[str]:
        return self.tr("augment,augmentation,chips,flip,rotate,noise,clouds,cutmix,mixup,training").split(",")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(QgsProcessingParameterVectorLayer(
            self.INPUT, self.tr("Chip index (from Sample chips)"), [qgis_enums.SOURCE_VECTOR_POLYGON]))
        self.addParameter(QgsProcessingParameterString(
            self.PIPELINE, self.tr("Augmentation pipeline (JSON, or the path of a .json file)"),
            defaultValue=resource_path("augmentations", "default.json"), multiLine=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.COPIES, self.tr("Augmented copies per chip"), qgis_enums.INTEGER, 4, minValue=1,
            maxValue=MAX_COPIES))
        self.addParameter(QgsProcessingParameterNumber(self.SEED, self.tr("Random seed"),
                                                       qgis_enums.INTEGER, 42, minValue=0))
        self.addParameter(QgsProcessingParameterBoolean(
            self.OVERWRITE, self.tr("Replace an existing chip dataset in the chip folder"), False))
        self.add_workers_parameter()
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_DIR, self.tr("Augmented chip folder")))
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT, self.tr("Augmented chip index"), qgis_enums.SOURCE_VECTOR_POLYGON))
        self.addOutput(QgsProcessingOutputNumber(self.CHIP_COUNT, self.tr("Number of augmented chips")))

    def core_call(self, parameters, context) -> CoreCall:
        from ...core.tasks.augment_chips import augment_chips

        layer = self.parameterAsVectorLayer(parameters, self.INPUT, context)
        path = layer.source().split("|")[0] if layer is not None else ""
        if not path.lower().endswith(".gpkg"):
            raise QgsProcessingException(self.tr(
                "INPUT: '{}' is not a chip index GeoPackage. Use the index written by Sample chips.").format(path))
        return CoreCall(augment_chips, (
            path, self.parameterAsString(parameters, self.PIPELINE, context),
            self.parameterAsString(parameters, self.OUTPUT_DIR, context),
            self.parameterAsOutputLayer(parameters, self.OUTPUT, context)), dict(
            copies=self.parameterAsInt(parameters, self.COPIES, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            overwrite=self.parameterAsBool(parameters, self.OVERWRITE, context),
            workers=self.parameterAsInt(parameters, self.WORKERS, context)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        call = self.call
        result, index_path = self.run_call(call, feedback), call.args[3]
        feedback.pushInfo(self.tr("{} augmented chips written to {} ({:.1f} s)").format(
            result.chip_count, result.out_dir, result.seconds))
        StyleFromQml.attach(context, index_path, resource_path("styles", "chip_index.qml"))
        return {self.OUTPUT: index_path, self.OUTPUT_DIR: result.out_dir, self.CHIP_COUNT: result.chip_count}
