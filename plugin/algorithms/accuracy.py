"""patchwork:accuracysample and patchwork:accuracy — a reference sample drawn from a class map, and the accuracy and
area with confidence intervals that its labels give (Olofsson et al. 2014; Stehman 2014)."""
from __future__ import annotations

import json

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)

from ...core.data.accuracy import ALLOCATIONS
from ...core.data.strata import DESIGNS
from .. import qgis_enums
from .common import PROVIDER_ID, CoreCall, EnumParameter, PatchworkAlgorithm, optional_int

DESIGN_NAMES = ["Stratified by map class", "Stratified by the STRATA raster", "Simple random (one stratum)"]
DESIGN_HELP = ("How the sample is (or was) drawn: stratified by the map's classes (the usual design), by the values "
               "of a separate STRATA raster on the map's grid, or simple random over the whole map.")
STRATA_HELP = "A class raster on the map's grid whose values are the strata (with the STRATA design)."


class AccuracySampleAlgorithm(PatchworkAlgorithm):
    ID = f"{PROVIDER_ID}:accuracysample"
    group_name = "Accuracy"
    INPUT, DESIGN, STRATA, AOI, OUTPUT = "INPUT", "DESIGN", "STRATA", "AOI", "OUTPUT"
    TARGET_SE, EXPECTED_UA, SAMPLE_SIZE = "TARGET_SE", "EXPECTED_UA", "SAMPLE_SIZE"
    ALLOCATION, MIN_PER_CLASS, SEED, POINTS = "ALLOCATION", "MIN_PER_CLASS", "SEED", "POINTS"

    parameter_help = {
        INPUT: "The class map to assess (any single-band integer raster; nodata is never sampled).",
        DESIGN: DESIGN_HELP,
        STRATA: STRATA_HELP,
        AOI: "Only pixels whose centre is inside these polygons are sampled.",
        TARGET_SE: "The standard error of overall accuracy the sample should reach (Cochran's formula): 0.01 is "
                   "± 2% at 95%.",
        EXPECTED_UA: "The user's accuracy you expect of each class, one value for all or one per class in class "
                     "order (e.g. 0.7, 0.6, 0.9, 0.95); lower values give bigger samples.",
        SAMPLE_SIZE: "A fixed number of points instead of Cochran's formula (empty: the formula).",
        ALLOCATION: "How the points are shared among strata: proportional with a minimum per class (rare classes get "
                    "MIN_PER_CLASS, the rest proportional, as Olofsson et al. 2014 advise), proportional, or equal.",
        MIN_PER_CLASS: "The least points a stratum gets with the 'proportional, with a minimum' allocation.",
        OUTPUT: "The points (GeoPackage) at pixel centres, with map class, stratum, inclusion probability and an "
                "empty 'reference' field, styled for labelling (a drop-down of the class names).",
    }

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return self.tr("Draw an accuracy sample")

    def tags(self) -> list[str]:
        return self.tr("accuracy,sample,stratified,reference,validation,area,Olofsson,Cochran,good practice").split(",")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        number = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Class map")))
        self.addParameter(EnumParameter(self.DESIGN, self.tr("Sample design"), DESIGNS, DESIGN_NAMES))
        self.addParameter(QgsProcessingParameterRasterLayer(self.STRATA, self.tr("Strata raster"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.AOI, self.tr("Area of interest"), [qgis_enums.SOURCE_VECTOR_POLYGON], optional=True))
        self.addParameter(number(self.TARGET_SE, self.tr("Target standard error of overall accuracy"),
                                 qgis_enums.DOUBLE, 0.01, minValue=0.0001, maxValue=0.5))
        self.addParameter(QgsProcessingParameterString(
            self.EXPECTED_UA, self.tr("Expected user's accuracy (one value, or one per class)"), "0.9"))
        self.addParameter(number(self.SAMPLE_SIZE, self.tr("Fixed sample size (empty: Cochran's formula)"),
                                 qgis_enums.INTEGER, None, optional=True, minValue=2, maxValue=10_000_000))
        self.addParameter(EnumParameter(self.ALLOCATION, self.tr("Allocation"), ALLOCATIONS,
                                        ["Proportional, with a minimum per class", "Proportional", "Equal"]))
        self.addParameter(number(self.MIN_PER_CLASS, self.tr("Minimum points per class"), qgis_enums.INTEGER, 50,
                                 minValue=0, maxValue=1_000_000))
        self.addParameter(number(self.SEED, self.tr("Random seed"), qgis_enums.INTEGER, 0, minValue=0))
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT, self.tr("Sample points"), qgis_enums.SOURCE_VECTOR_POINT))
        self.addOutput(QgsProcessingOutputNumber(self.POINTS, self.tr("Number of points")))
        self.mark_advanced(self.STRATA, self.ALLOCATION, self.MIN_PER_CLASS, self.SEED)

    def core_call(self, parameters, context) -> CoreCall:
        from ...core.tasks.accuracy_sample import draw_accuracy_sample

        class_map = self.file_raster(parameters, self.INPUT, context)
        strata = self.file_raster(parameters, self.STRATA, context)
        return CoreCall(draw_accuracy_sample, (class_map.source(),
                                               self.parameterAsOutputLayer(parameters, self.OUTPUT, context)), dict(
            strata=strata.source() if strata is not None else None,
            aoi=self.mask_polygons(parameters, self.AOI, class_map.crs(), context),
            design=self.word(parameters, self.DESIGN, context),
            target_se=self.parameterAsDouble(parameters, self.TARGET_SE, context),
            expected_users_accuracy=self.parameterAsString(parameters, self.EXPECTED_UA, context),
            sample_size=optional_int(parameters, self.SAMPLE_SIZE),
            allocation=self.word(parameters, self.ALLOCATION, context),
            min_per_class=self.parameterAsInt(parameters, self.MIN_PER_CLASS, context),
            seed=self.parameterAsInt(parameters, self.SEED, context)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        result = self.run_call(self.call, feedback)
        # The GeoPackage holds its style (value map of class names on 'reference') as its default.
        return {self.OUTPUT: result.output, self.POINTS: result.points}


class AccuracyAlgorithm(PatchworkAlgorithm):
    ID = f"{PROVIDER_ID}:accuracy"
    group_name = "Accuracy"
    INPUT, SAMPLES, REFERENCE_FIELD = "INPUT", "SAMPLES", "REFERENCE_FIELD"
    DESIGN, STRATA, AOI = "DESIGN", "STRATA", "AOI"
    OUTPUT_JSON, OUTPUT_REPORT, PREVIOUS = "OUTPUT_JSON", "OUTPUT_REPORT", "PREVIOUS"
    OVERALL_ACCURACY, OVERALL_ACCURACY_CI = "OVERALL_ACCURACY", "OVERALL_ACCURACY_CI"
    POINTS_USED, RESULTS = "POINTS_USED", "RESULTS"

    parameter_help = {
        INPUT: "The class map assessed.",
        SAMPLES: "The reference points, labelled (patchwork:accuracysample draws them); any CRS.",
        REFERENCE_FIELD: "The field holding each point's reference class: its value, or its name as the map names "
                         "it. Points without one are counted and left out.",
        DESIGN: DESIGN_HELP,
        STRATA: STRATA_HELP,
        AOI: "The area the sample was drawn in, when it was drawn with an AOI: the strata are counted there.",
        PREVIOUS: "The figures (JSON) of an earlier assessment, e.g. before the model learnt from more labels: the "
                  "log and the report say how each figure changed since.",
        OUTPUT_JSON: "The figures as JSON: overall accuracy, per class user's and producer's accuracy, area "
                     "proportion and area in m² with their 95% intervals, and the error matrices.",
        OUTPUT_REPORT: "An HTML report: tables, mapped vs estimated area with intervals, the error matrix as a heat "
                       "map, and the method in words.",
    }

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return self.tr("Accuracy and area (with confidence intervals)")

    def tags(self) -> list[str]:
        return self.tr("accuracy,area,confidence interval,error matrix,user's accuracy,producer's accuracy,"
                       "Olofsson,Stehman,validation,REDD+,good practice").split(",")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Class map")))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.SAMPLES, self.tr("Labelled reference points"), [qgis_enums.SOURCE_VECTOR_POINT]))
        self.addParameter(QgsProcessingParameterField(
            self.REFERENCE_FIELD, self.tr("Reference class field"), "reference", parentLayerParameterName=self.SAMPLES))
        self.addParameter(EnumParameter(self.DESIGN, self.tr("Sample design"), DESIGNS, DESIGN_NAMES))
        self.addParameter(QgsProcessingParameterRasterLayer(self.STRATA, self.tr("Strata raster"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.AOI, self.tr("Area of interest the sample was drawn in"), [qgis_enums.SOURCE_VECTOR_POLYGON],
            optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.PREVIOUS, self.tr("Figures of an earlier assessment (JSON), to compare with"), qgis_enums.FILE,
            extension="json", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_JSON, self.tr("Figures (JSON)"), self.tr("JSON files (*.json)"), optional=True,
            createByDefault=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_REPORT, self.tr("Report"), self.tr("HTML files (*.html)"), optional=True,
            createByDefault=True))
        self.addOutput(QgsProcessingOutputNumber(self.OVERALL_ACCURACY, self.tr("Overall accuracy")))
        self.addOutput(QgsProcessingOutputNumber(self.OVERALL_ACCURACY_CI,
                                                 self.tr("Overall accuracy: half width of the 95% interval")))
        self.addOutput(QgsProcessingOutputNumber(self.POINTS_USED, self.tr("Points used")))
        self.addOutput(QgsProcessingOutputString(self.RESULTS, self.tr("All figures (JSON)")))
        self.mark_advanced(self.STRATA, self.AOI, self.PREVIOUS)

    def core_call(self, parameters, context) -> CoreCall:
        from ...core.tasks.accuracy import SamplePoints, assess_accuracy
        from ..layers import geometries_in_crs

        class_map = self.file_raster(parameters, self.INPUT, context)
        strata = self.file_raster(parameters, self.STRATA, context)
        source = self.parameterAsSource(parameters, self.SAMPLES, context)
        field = self.parameterAsString(parameters, self.REFERENCE_FIELD, context)
        wkts, _crs, values = geometries_in_crs(source, class_map.crs(), context.transformContext(), field)
        samples = self.run_core(SamplePoints.from_wkt, wkts, values)
        return CoreCall(assess_accuracy, (class_map.source(), samples), dict(
            strata=strata.source() if strata is not None else None,
            aoi=self.mask_polygons(parameters, self.AOI, class_map.crs(), context),
            design=self.word(parameters, self.DESIGN, context),
            output_json=self.parameterAsFileOutput(parameters, self.OUTPUT_JSON, context) or None,
            output_report=self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None,
            previous=self.parameterAsFile(parameters, self.PREVIOUS, context) or None,
            names=(class_map.name(), source.sourceName())))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        call = self.call
        result = self.run_call(call, feedback)
        outputs = {self.OVERALL_ACCURACY: result.overall_accuracy, self.OVERALL_ACCURACY_CI: result.overall_accuracy_ci,
                   self.POINTS_USED: result.used, self.RESULTS: json.dumps(result.to_dict())}
        for name in (self.OUTPUT_JSON, self.OUTPUT_REPORT):
            path = call.kwargs["output_json" if name == self.OUTPUT_JSON else "output_report"]
            if path:
                outputs[name] = path
        return outputs
