"""patchwork:samplechips — cut training chips from a raster into a chip dataset."""
from __future__ import annotations

from qgis.core import (
    QgsCoordinateTransform,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from ...core import budget, sampling
from .. import qgis_enums
from ..resources import resource_path
from .common import PROVIDER_ID, CoreCall, EnumParameter, PatchworkAlgorithm, StyleFromQml

SAMPLERS = list(sampling.SAMPLER_NAMES)  # an index or the word on the command line: 0 regular … 3 random
BOUNDARIES = list(sampling.BOUNDARIES)  # 0 shift, 1 pad, 2 drop


class SampleChipsAlgorithm(PatchworkAlgorithm):
    ID = f"{PROVIDER_ID}:samplechips"
    # Its parameters' and outputs' names, spelled once (the panel and scripts use these too).
    INPUT, LABELS, AOI = "INPUT", "LABELS", "AOI"
    SAMPLER, CHIP_SIZE, STEP = "SAMPLER", "CHIP_SIZE", "STEP"
    JITTER, MIN_DISTANCE, COUNT = "JITTER", "MIN_DISTANCE", "COUNT"
    SEED, BOUNDARY, MAX_NODATA = "SEED", "BOUNDARY", "MAX_NODATA"
    OUTPUT_DIR, OUTPUT, OVERWRITE = "OUTPUT_DIR", "OUTPUT", "OVERWRITE"
    CHIP_COUNT, COVERAGE = "CHIP_COUNT", "COVERAGE"
    parameter_help = {
        INPUT: "The raster to cut chips from (a file raster).",
        LABELS: "A label raster on the same grid: its chips are cut with the image's.",
        AOI: "Polygons: chips must overlap them; pixels outside count as nodata.",
        SAMPLER: "regular grid, jittered grid, Poisson-disk (chips at least a distance apart) or uniform random.",
        CHIP_SIZE: "The side of each chip, in pixels.",
        STEP: "The grid step, in pixels (regular and jittered samplers).",
        JITTER: "How far each grid chip may move, as a fraction of the step (jittered sampler).",
        MIN_DISTANCE: "The smallest distance between two chips, in pixels (Poisson-disk sampler).",
        COUNT: "At most this many chips (Poisson-disk and random samplers; 0: as many as fit, Poisson-disk only).",
        SEED: "The same seed gives the same chips.",
        BOUNDARY: "shift: the last row and column of chips move inside the raster; pad: chips overhang the edge, "
                  "filled with nodata; drop: only chips wholly inside.",
        MAX_NODATA: "The largest fraction of nodata, padding or outside-AOI pixels a chip may have.",
        OUTPUT_DIR: "The folder of the chip dataset (new, empty, or an earlier dataset with OVERWRITE).",
        OUTPUT: "The chip index: one footprint per chip, with its file and window.",
    }

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return self.tr("Sample chips")

    def tags(self) -> list[str]:
        return self.tr("chips,patches,tiles,training,sampling,poisson,grid,dataset,machine learning").split(",")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        number = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Input raster")))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.LABELS, self.tr("Label raster (same grid as the input)"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.AOI, self.tr("Area of interest"), [qgis_enums.SOURCE_VECTOR_POLYGON], optional=True))
        self.addParameter(EnumParameter(self.SAMPLER, self.tr("Sampler"), SAMPLERS))
        self.addParameter(number(self.CHIP_SIZE, self.tr("Chip size (px)"), qgis_enums.INTEGER, 64, minValue=1,
                                 maxValue=budget.MAX_CHIP_SIZE))
        self.addParameter(number(self.STEP, self.tr("Step (px; regular and jittered)"), qgis_enums.INTEGER, 64,
                                 minValue=1, maxValue=16 * budget.MAX_CHIP_SIZE))
        self.addParameter(number(self.JITTER, self.tr("Jitter (fraction of the step, 0–0.5; jittered)"),
                                 qgis_enums.DOUBLE, 0.25, minValue=0.0, maxValue=0.5))
        self.addParameter(number(self.MIN_DISTANCE, self.tr("Minimum distance between chips (px; poisson)"),
                                 qgis_enums.DOUBLE, 64.0, minValue=1.0))
        self.addParameter(number(self.COUNT, self.tr("Maximum number of chips (poisson, random; 0 = all for poisson)"),
                                 qgis_enums.INTEGER, 100, minValue=0, maxValue=budget.MAX_CHIPS))
        self.addParameter(number(self.SEED, self.tr("Random seed"), qgis_enums.INTEGER, 42, minValue=0))
        self.addParameter(EnumParameter(self.BOUNDARY, self.tr("At the raster edges"), BOUNDARIES))
        max_nodata = number(self.MAX_NODATA, self.tr("Maximum fraction of nodata or outside-AOI pixels per chip"),
                            qgis_enums.DOUBLE, 0.5, minValue=0.0, maxValue=1.0)
        self.addParameter(max_nodata)
        self.addParameter(QgsProcessingParameterBoolean(
            self.OVERWRITE, self.tr("Replace an existing chip dataset in the chip folder"), False))
        self.mark_advanced(self.JITTER, self.MIN_DISTANCE, self.SEED, self.MAX_NODATA)
        self.add_workers_parameter()
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_DIR, self.tr("Chip folder")))
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT, self.tr("Chip index"), qgis_enums.SOURCE_VECTOR_POLYGON))
        self.addOutput(QgsProcessingOutputNumber(self.CHIP_COUNT, self.tr("Number of chips")))
        self.addOutput(QgsProcessingOutputNumber(self.COVERAGE, self.tr("Fraction of raster pixels covered by chips")))

    def core_call(self, parameters, context) -> CoreCall:
        from ...core.aoi import Aoi
        from ...core.dataset import sample_chips
        from ...core.sampling import sampler_from_name

        raster = self.file_raster(parameters, self.INPUT, context)
        labels = self.file_raster(parameters, self.LABELS, context)
        sampler = self.run_core(
            sampler_from_name, self.word(parameters, self.SAMPLER, context),
            step=self.parameterAsInt(parameters, self.STEP, context),
            jitter=self.parameterAsDouble(parameters, self.JITTER, context),
            min_distance=self.parameterAsDouble(parameters, self.MIN_DISTANCE, context),
            count=self.parameterAsInt(parameters, self.COUNT, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
        )
        aoi = None
        source = self.parameterAsSource(parameters, self.AOI, context)
        if source is not None:
            aoi = self.run_core(Aoi, *self._aoi_in_raster_crs(source, raster, context))
        return CoreCall(sample_chips, (
            raster.source(), sampler, self.parameterAsInt(parameters, self.CHIP_SIZE, context),
            self.parameterAsString(parameters, self.OUTPUT_DIR, context),
            self.parameterAsOutputLayer(parameters, self.OUTPUT, context)), dict(
            boundary=self.word(parameters, self.BOUNDARY, context),
            labels=labels.source() if labels else None, aoi=aoi,
            max_nodata=self.parameterAsDouble(parameters, self.MAX_NODATA, context),
            overwrite=self.parameterAsBool(parameters, self.OVERWRITE, context),
            protect={self.AOI: self.layer_file(parameters, self.AOI, context)},
            workers=self.parameterAsInt(parameters, self.WORKERS, context)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        call = self.core_call(parameters, context)
        result, index_path = self.run_call(call, feedback), call.args[4]
        feedback.pushInfo(self.tr("{} chips written to {}").format(result.chip_count, result.out_dir))
        feedback.pushInfo(result.coverage.describe())
        if result.rejected["nodata"] or result.rejected["outside_aoi"]:
            feedback.pushInfo(self.tr("Skipped {nodata} candidates for nodata and {outside_aoi} outside the AOI")
                              .format(**result.rejected))
        StyleFromQml.attach(context, index_path, resource_path("styles", "chip_index.qml"))
        return {self.OUTPUT: index_path, self.OUTPUT_DIR: result.out_dir, self.CHIP_COUNT: result.chip_count,
                self.COVERAGE: result.coverage.fraction}

    def _aoi_in_raster_crs(self, source, raster, context) -> tuple[list[str], str]:
        target = raster.crs()
        transform = None
        if target.isValid() and source.sourceCrs().isValid() and source.sourceCrs() != target:
            transform = QgsCoordinateTransform(source.sourceCrs(), target, context.transformContext())
        wkts = []
        for feature in source.getFeatures():
            geom = feature.geometry()
            if geom.isNull():
                continue
            if transform is not None:
                geom.transform(transform)
            wkts.append(geom.asWkt(17))
        crs = target if target.isValid() else source.sourceCrs()
        return wkts, crs.toWkt()
