"""patchwork:compare — agreement and confusion matrix of two class rasters on one grid."""
from __future__ import annotations

import json

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .common import CoreCall, PatchworkAlgorithm, StyleFromQml


class CompareAlgorithm(PatchworkAlgorithm):
    group_name = "Inference"

    parameter_help = {
        "INPUT": "The class raster to assess.",
        "REFERENCE": "The class raster taken as the truth, on the same grid.",
        "OUTPUT": "A map of where the two agree (1), differ (0) or either is nodata.",
        "OUTPUT_HTML": "An HTML report: agreement, kappa, confusion matrix.",
    }

    def name(self) -> str:
        return "compare"

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return self.tr("Compare classifications")

    def tags(self) -> list[str]:
        return self.tr("compare,agreement,confusion matrix,accuracy,kappa,validation").split(",")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Classification")))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "REFERENCE", self.tr("Reference classification (same grid)")))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "OUTPUT", self.tr("Agreement map"), optional=True, createByDefault=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_HTML", self.tr("Report"), self.tr("HTML files (*.html)"), optional=True, createByDefault=True))
        self.addOutput(QgsProcessingOutputNumber("AGREEMENT", self.tr("Agreement (fraction of pixels)")))
        self.addOutput(QgsProcessingOutputNumber("KAPPA", self.tr("Cohen's kappa")))
        self.addOutput(QgsProcessingOutputNumber("PIXELS", self.tr("Pixels compared")))
        self.addOutput(QgsProcessingOutputString("CONFUSION_MATRIX", self.tr("Confusion matrix (JSON)")))

    def core_call(self, parameters, context) -> CoreCall:
        from ...core.compare import compare_classifications

        reference = self.file_raster(parameters, "REFERENCE", context)
        classification = self.file_raster(parameters, "INPUT", context)
        return CoreCall(compare_classifications, (reference.source(), classification.source()), dict(
            agreement=self.parameterAsOutputLayer(parameters, "OUTPUT", context) or None,
            report=self.parameterAsFileOutput(parameters, "OUTPUT_HTML", context) or None))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        call = self.core_call(parameters, context)
        result, agreement, report = self.run_call(call, feedback), call.kwargs["agreement"], call.kwargs["report"]
        feedback.pushInfo(self.tr("Agreement {:.4%} of {:,} pixels; kappa {:.4f}").format(
            result.agreement, result.pixels, result.kappa))
        outputs = {"AGREEMENT": result.agreement, "KAPPA": result.kappa, "PIXELS": result.pixels,
                   "CONFUSION_MATRIX": json.dumps(result.to_dict())}
        if agreement:
            from ...core.palette import qml_path

            StyleFromQml.attach(context, agreement, qml_path(agreement))
            outputs["OUTPUT"] = agreement
        if report:
            outputs["OUTPUT_HTML"] = report
        return outputs
