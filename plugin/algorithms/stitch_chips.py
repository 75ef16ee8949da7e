"""patchwork:stitchchips — blend a folder of per-chip prediction GeoTIFFs into one raster."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .. import qgis_enums
from .common import AGGREGATIONS, PROVIDER_ID, CoreCall, EnumParameter, PatchworkAlgorithm, StyleFromQml


class StitchChipsAlgorithm(PatchworkAlgorithm):
    ID = f"{PROVIDER_ID}:stitchchips"
    group_name = "Inference"
    # Its parameters' and outputs' names, spelled once (the panel and scripts use these too).
    INPUT, WINDOW, AGGREGATION = "INPUT", "WINDOW", "AGGREGATION"
    N_CLASSES, REFERENCE, OUTPUT = "N_CLASSES", "REFERENCE", "OUTPUT"
    CHIP_COUNT, COVERAGE = "CHIP_COUNT", "COVERAGE"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return self.tr("Stitch chips")

    def tags(self) -> list[str]:
        return self.tr("stitch,mosaic,merge,chips,patches,predictions,vote,blend").split(",")

    parameter_help = {
        INPUT: "A folder of per-chip predictions (GeoTIFFs on one grid, made anywhere).",
        WINDOW: "How overlapping chips are weighted: equally (boxcar), or more at their centres (hann, "
                "triangular, tukey, gaussian).",
        AGGREGATION: "hardvote: chips of class ids; softvote: chips of class probabilities; mean: values.",
        N_CLASSES: "The number of classes (ids 0 to N-1), for votes.",
        REFERENCE: "A raster whose grid and extent the mosaic takes; empty: the chips' union on their own grid.",
        OUTPUT: "The mosaic.",
    }

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(QgsProcessingParameterFile(
            self.INPUT, self.tr("Folder of chip predictions (GeoTIFF)"), qgis_enums.FOLDER))
        self.add_window_parameters()
        self.addParameter(EnumParameter(self.AGGREGATION, self.tr("Aggregation of overlapping chips"), AGGREGATIONS))
        self.addParameter(QgsProcessingParameterNumber(
            self.N_CLASSES, self.tr("Number of classes (class ids 0..N-1; votes only)"),
            qgis_enums.INTEGER, 0, minValue=0, maxValue=65535))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.REFERENCE, self.tr("Reference grid (default: the chips' union)"), optional=True))
        self.add_scale_parameters(cluster=False)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Mosaic")))
        self.addOutput(QgsProcessingOutputNumber(self.CHIP_COUNT, self.tr("Number of chips stitched")))
        self.addOutput(QgsProcessingOutputNumber(self.COVERAGE, self.tr("Fraction of the mosaic covered by chips")))

    def core_call(self, parameters, context) -> CoreCall:
        from ...core.tasks.stitch_chips import stitch_chips

        reference = self.file_raster(parameters, self.REFERENCE, context)
        return CoreCall(stitch_chips, (self.parameterAsFile(parameters, self.INPUT, context),
                                       self.parameterAsOutputLayer(parameters, self.OUTPUT, context)), dict(
            window=self.window_argument(parameters, context),
            aggregation=self.word(parameters, self.AGGREGATION, context),
            n_classes=self.parameterAsInt(parameters, self.N_CLASSES, context),
            reference=reference.source() if reference else None,
            **self.scale_arguments(parameters, context, cluster=False)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        call = self.call
        result, output = self.run_call(call, feedback), call.args[1]
        feedback.pushInfo(self.tr("{} chips → {} x {} px, {:.1%} covered").format(
            result.chips, result.width, result.height, result.covered_fraction))
        if result.style:
            StyleFromQml.attach(context, output, result.style)
        return {self.OUTPUT: output, self.CHIP_COUNT: result.chips, self.COVERAGE: result.covered_fraction}
