"""patchwork:compare — agreement and confusion matrix of two class rasters on one grid."""
from __future__ import annotations

import json

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .common import PROVIDER_ID, CoreCall, PatchworkAlgorithm, StyleFromQml


class CompareAlgorithm(PatchworkAlgorithm):
    ID = f"{PROVIDER_ID}:compare"
    group_name = "Inference"
    # Its parameters' and outputs' names, spelled once (the panel and scripts use these too).
    INPUT, REFERENCE, OUTPUT = "INPUT", "REFERENCE", "OUTPUT"
    OUTPUT_HTML, AGREEMENT, KAPPA = "OUTPUT_HTML", "AGREEMENT", "KAPPA"
    PIXELS, CONFUSION_MATRIX, RESAMPLE = "PIXELS", "CONFUSION_MATRIX", "RESAMPLE"

    parameter_help = {
        INPUT: "The class raster to assess.",
        REFERENCE: "The class raster taken as the truth, on the same grid. When both maps name their classes, "
                   "classes are matched by name (water with water, whatever their numbers), else by number.",
        RESAMPLE: "A classification on another grid (a few metres apart, another pixel size or CRS) is compared on "
                  "the reference's grid, resampled by nearest neighbour; without it, such a pair is refused.",
        OUTPUT: "A map of where the two agree (1), differ (0) or either is nodata.",
        OUTPUT_HTML: "An HTML report: agreement, kappa, confusion matrix.",
    }

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return self.tr("Compare classifications")

    def tags(self) -> list[str]:
        return self.tr("compare,agreement,confusion matrix,accuracy,kappa,validation").split(",")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Classification")))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.REFERENCE, self.tr("Reference classification (same grid)")))
        self.addParameter(QgsProcessingParameterBoolean(
            self.RESAMPLE, self.tr("Resample the classification onto the reference's grid"), False, optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, self.tr("Agreement map"), optional=True, createByDefault=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_HTML, self.tr("Report"), self.tr("HTML files (*.html)"), optional=True, createByDefault=True))
        self.addOutput(QgsProcessingOutputNumber(self.AGREEMENT, self.tr("Agreement (fraction of pixels)")))
        self.addOutput(QgsProcessingOutputNumber(self.KAPPA, self.tr("Cohen's kappa")))
        self.addOutput(QgsProcessingOutputNumber(self.PIXELS, self.tr("Pixels compared")))
        self.addOutput(QgsProcessingOutputString(self.CONFUSION_MATRIX, self.tr("Confusion matrix (JSON)")))

    def core_call(self, parameters, context) -> CoreCall:
        from ...core.tasks.compare import compare_classifications

        reference = self.file_raster(parameters, self.REFERENCE, context)
        classification = self.file_raster(parameters, self.INPUT, context)
        return CoreCall(compare_classifications, (reference.source(), classification.source()), dict(
            agreement=self.parameterAsOutputLayer(parameters, self.OUTPUT, context) or None,
            report=self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context) or None,
            resample=self.parameterAsBool(parameters, self.RESAMPLE, context),
            names=(reference.name(), classification.name())))  # messages name layers, not (temporary) files

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        call = self.call
        result, agreement, report = self.run_call(call, feedback), call.kwargs["agreement"], call.kwargs["report"]
        feedback.pushInfo(self.tr("Agreement {:.4%} of {:,} pixels; kappa {:.4f}").format(
            result.agreement, result.pixels, result.kappa))
        outputs = {self.AGREEMENT: result.agreement, self.KAPPA: result.kappa, self.PIXELS: result.pixels,
                   self.CONFUSION_MATRIX: json.dumps(result.to_dict())}
        if agreement:
            from ...core.io.palette import qml_path

            StyleFromQml.attach(context, agreement, qml_path(agreement))
            outputs[self.OUTPUT] = agreement
        if report:
            outputs[self.OUTPUT_HTML] = report
        return outputs
