"""patchwork:suggestlabels — where to label next: the places a map is least sure of, spread apart."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from ...core.tasks.suggest_labels import SELECTIONS, SHAPES
from .. import qgis_enums
from .common import MODEL_FILTER, PROVIDER_ID, CoreCall, EnumParameter, PatchworkAlgorithm


class SuggestLabelsAlgorithm(PatchworkAlgorithm):
    ID = f"{PROVIDER_ID}:suggestlabels"
    group_name = "Accuracy"
    INPUT, CLASSES, LABELLED, OUTPUT, MODEL = "INPUT", "CLASSES", "LABELLED", "OUTPUT", "MODEL"
    COUNT, MIN_DISTANCE, BALANCE = "COUNT", "MIN_DISTANCE", "BALANCE"
    SHAPE, CHIP_SIZE, SEED, PLACES = "SHAPE", "CHIP_SIZE", "SEED", "PLACES"
    SELECTION = "SELECTION"

    parameter_help = {
        INPUT: "An uncertainty map (Classify's OUTPUT_UNCERTAINTY): larger values are less sure; with a MODEL, the "
               "raster to classify.",
        MODEL: "A model: INPUT is then classified with it first (soft votes, the model's own input scaling) and the "
               "places drawn from its entropy and classes. For other settings, run Classify with an uncertainty map.",
        CLASSES: "The class map on the same grid: each place's predicted class, and the classes to label with.",
        LABELLED: "What is labelled already (polygons, points or lines, any CRS): no place is suggested within "
                  "MIN_DISTANCE of it.",
        COUNT: "How many places to suggest.",
        MIN_DISTANCE: "The least distance between two places, and from what is labelled, in pixels.",
        BALANCE: "Take the places in turn from each predicted class (needs CLASSES).",
        SELECTION: "weighted: drawn at random, each pixel's chance proportional to its uncertainty (beats random "
                   "labels in make bench); least_sure: strictly the most uncertain first (often a few odd pixels).",
        SHAPE: "point: the pixel's centre; chip: a square of CHIP_SIZE pixels around it, to digitise in.",
        CHIP_SIZE: "The side of a chip, in pixels.",
        OUTPUT: "The places (GeoPackage), in the order chosen, with their uncertainty, predicted class and an empty "
                "'label' field (a drop-down of the classes), styled to label.",
    }

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return self.tr("Suggest what to label next")

    def tags(self) -> list[str]:
        return self.tr("active learning,uncertainty,label,sample,suggest,annotation,entropy").split(",")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        number = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Uncertainty map")))
        self.addParameter(QgsProcessingParameterRasterLayer(self.CLASSES, self.tr("Class map (same grid)"),
                                                            optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, self.tr("Model (then INPUT is the raster to classify first)"), qgis_enums.FILE,
            fileFilter=MODEL_FILTER, optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.LABELLED, self.tr("Already labelled (polygons, points or lines)"), optional=True))
        self.addParameter(number(self.COUNT, self.tr("Number of places"), qgis_enums.INTEGER, 50, minValue=1,
                                 maxValue=1_000_000))
        self.addParameter(number(self.MIN_DISTANCE, self.tr("Minimum distance between places (px)"),
                                 qgis_enums.DOUBLE, 32.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterBoolean(self.BALANCE, self.tr("Balance across predicted classes"),
                                                        False))
        self.addParameter(EnumParameter(self.SELECTION, self.tr("Selection"), SELECTIONS))
        self.addParameter(EnumParameter(self.SHAPE, self.tr("Shape"), SHAPES))
        self.addParameter(number(self.CHIP_SIZE, self.tr("Chip size (px)"), qgis_enums.INTEGER, 64, minValue=1,
                                 maxValue=100_000))
        self.addParameter(number(self.SEED, self.tr("Random seed (breaks ties)"), qgis_enums.INTEGER, 0, minValue=0))
        self.addParameter(QgsProcessingParameterVectorDestination(self.OUTPUT, self.tr("Places to label")))
        self.addOutput(QgsProcessingOutputNumber(self.PLACES, self.tr("Number of places")))
        self.mark_advanced(self.SELECTION, self.SHAPE, self.CHIP_SIZE, self.SEED)

    def core_call(self, parameters, context) -> CoreCall:
        from ...core.tasks.suggest_labels import Places, suggest_labels
        from ..layers import geometries_in_crs

        uncertainty = self.file_raster(parameters, self.INPUT, context)
        classes = self.file_raster(parameters, self.CLASSES, context)
        labelled = self.parameterAsSource(parameters, self.LABELLED, context)
        places = None
        if labelled is not None:
            wkts, crs_wkt, _values = geometries_in_crs(labelled, uncertainty.crs(), context.transformContext())
            places = Places(wkts, crs_wkt)
        return CoreCall(suggest_labels, (uncertainty.source(),
                                         self.parameterAsOutputLayer(parameters, self.OUTPUT, context)), dict(
            count=self.parameterAsInt(parameters, self.COUNT, context),
            min_distance=self.parameterAsDouble(parameters, self.MIN_DISTANCE, context),
            classes=classes.source() if classes is not None else None, labelled=places,
            balance=self.parameterAsBool(parameters, self.BALANCE, context),
            shape=self.word(parameters, self.SHAPE, context),
            selection=self.word(parameters, self.SELECTION, context),
            chip_size=self.parameterAsInt(parameters, self.CHIP_SIZE, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            model=self.parameterAsFile(parameters, self.MODEL, context) or None))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        result = self.run_call(self.call, feedback)
        # The GeoPackage holds its style (a drop-down of class names on 'label') as its default.
        return {self.OUTPUT: result.output, self.PLACES: result.count}
