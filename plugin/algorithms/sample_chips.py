"""patchwork:samplechips — cut training chips from a raster into a chip dataset."""
from __future__ import annotations

import json

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
    QgsVectorLayer,
)

from ...core import budget, geometry
from .. import qgis_enums
from ..layers import geometries_in_crs, location_sampler, raster_geotransform, vector_labels
from ..resources import resource_path
from .common import PROVIDER_ID, CoreCall, EnumParameter, PatchworkAlgorithm, StyleFromQml

# An index or the word on the command line. 4 and 5 centre chips on LOCATIONS; 6 and 7 choose them by LABELS class.
SAMPLERS = ["regular", "jittered", "poisson", "random", "points", "lines", "balanced", "stratified"]
BOUNDARIES = list(geometry.BOUNDARIES)  # 0 shift, 1 pad, 2 drop


class SampleChipsAlgorithm(PatchworkAlgorithm):
    ID = f"{PROVIDER_ID}:samplechips"
    # Its parameters' and outputs' names, spelled once (the panel and scripts use these too).
    INPUT, LABELS, AOI = "INPUT", "LABELS", "AOI"
    SAMPLER, CHIP_SIZE, STEP = "SAMPLER", "CHIP_SIZE", "STEP"
    JITTER, MIN_DISTANCE, COUNT = "JITTER", "MIN_DISTANCE", "COUNT"
    SEED, BOUNDARY, MAX_NODATA = "SEED", "BOUNDARY", "MAX_NODATA"
    OUTPUT_DIR, OUTPUT, OVERWRITE = "OUTPUT_DIR", "OUTPUT", "OVERWRITE"
    CHIP_COUNT, COVERAGE = "CHIP_COUNT", "COVERAGE"
    LABEL_FIELD, ALL_TOUCHED, BACKGROUND = "LABEL_FIELD", "ALL_TOUCHED", "BACKGROUND"
    LOCATIONS, SPACING, CLASS_COUNTS = "LOCATIONS", "SPACING", "CLASS_COUNTS"
    parameter_help = {
        INPUT: "The raster to cut chips from (a file raster).",
        LABELS: "Labels: a raster of class ids on the input's grid, or polygons (any CRS) with a class field, burnt "
                "onto each chip's grid. Label chips are written with the image chips.",
        LABEL_FIELD: "The field of the label polygons that holds their class: whole numbers (the ids) or text "
                     "(categories, numbered in sorted order). A categorized style on it gives names and colours.",
        ALL_TOUCHED: "Label every pixel a polygon touches, not only those whose centre it holds.",
        BACKGROUND: "The class of pixels under no polygon; empty: nodata (255, or 65535 beyond 254 classes).",
        AOI: "Polygons: chips must overlap them; pixels outside count as nodata.",
        SAMPLER: "regular grid, jittered grid, Poisson-disk (chips at least a distance apart), uniform random; chips "
                 "centred on the LOCATIONS: on each point (points), every SPACING along each line (lines); or chips "
                 "chosen by the LABELS class at their centre: COUNT per class (balanced), COUNT in all split by the "
                 "classes' shares (stratified).",
        LOCATIONS: "Points (points sampler) or lines (lines sampler), in any CRS: a chip is centred on each point, or "
                   "every SPACING pixels along each line; its centre pixel holds the location.",
        SPACING: "The distance between chip centres along the lines, in pixels (lines sampler).",
        CHIP_SIZE: "The side of each chip, in pixels.",
        STEP: "The grid step, in pixels (regular and jittered samplers).",
        JITTER: "How far each grid chip may move, as a fraction of the step (jittered sampler).",
        MIN_DISTANCE: "The smallest distance between two chips, in pixels (Poisson-disk sampler).",
        COUNT: "At most this many chips (Poisson-disk and random samplers; 0: as many as fit, Poisson-disk only); "
               "chips per class (balanced); chips in all (stratified).",
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
        self.addParameter(QgsProcessingParameterMapLayer(
            self.LABELS, self.tr("Labels: a raster on the input's grid, or polygons with a class field"),
            optional=True, types=[qgis_enums.SOURCE_RASTER, qgis_enums.SOURCE_VECTOR_POLYGON]))
        self.addParameter(QgsProcessingParameterField(
            self.LABEL_FIELD, self.tr("Class field of the label polygons"), parentLayerParameterName=self.LABELS,
            optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            self.ALL_TOUCHED, self.tr("Label every pixel a polygon touches"), False, optional=True))
        self.addParameter(number(self.BACKGROUND, self.tr("Class of pixels under no polygon (empty: nodata)"),
                                 qgis_enums.INTEGER, None, optional=True, minValue=0, maxValue=65534))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.AOI, self.tr("Area of interest"), [qgis_enums.SOURCE_VECTOR_POLYGON], optional=True))
        self.addParameter(EnumParameter(self.SAMPLER, self.tr("Sampler"), SAMPLERS))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.LOCATIONS, self.tr("Chip locations (points or lines; points and lines samplers)"),
            [qgis_enums.SOURCE_VECTOR_POINT, qgis_enums.SOURCE_VECTOR_LINE], optional=True))
        self.addParameter(number(self.SPACING, self.tr("Spacing along the lines (px; lines)"), qgis_enums.DOUBLE,
                                 64.0, minValue=1.0, optional=True))
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
        self.mark_advanced(self.JITTER, self.MIN_DISTANCE, self.SEED, self.MAX_NODATA, self.ALL_TOUCHED,
                           self.BACKGROUND, self.SPACING)
        self.add_workers_parameter()
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_DIR, self.tr("Chip folder")))
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT, self.tr("Chip index"), qgis_enums.SOURCE_VECTOR_POLYGON))
        self.addOutput(QgsProcessingOutputNumber(self.CHIP_COUNT, self.tr("Number of chips")))
        self.addOutput(QgsProcessingOutputNumber(self.COVERAGE, self.tr("Fraction of raster pixels covered by chips")))
        self.addOutput(QgsProcessingOutputString(
            self.CLASS_COUNTS, self.tr("Chips per class (of their centre pixel) and label pixels per class (JSON)")))

    def core_call(self, parameters, context) -> CoreCall:
        from ...core.data.sampling import sampler_from_name
        from ...core.io.aoi import Aoi
        from ...core.tasks.sample_chips import sample_chips

        raster = self.file_raster(parameters, self.INPUT, context)
        labels = self._labels(parameters, raster, context)
        name = self.word(parameters, self.SAMPLER, context)
        if name in ("points", "lines"):
            sampler = self._location_sampler(name, parameters, raster, context)
        else:
            sampler = self.run_core(
                sampler_from_name, name,
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
            labels=labels, aoi=aoi,
            max_nodata=self.parameterAsDouble(parameters, self.MAX_NODATA, context),
            overwrite=self.parameterAsBool(parameters, self.OVERWRITE, context),
            protect={self.AOI: self.layer_file(parameters, self.AOI, context),
                     self.LABELS: self.layer_file(parameters, self.LABELS, context)},
            workers=self.parameterAsInt(parameters, self.WORKERS, context)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        call = self.call
        result, index_path = self.run_call(call, feedback), call.args[4]
        feedback.pushInfo(self.tr("{} chips written to {}").format(result.chip_count, result.out_dir))
        feedback.pushInfo(result.coverage.describe())
        if result.rejected["nodata"] or result.rejected["outside_aoi"]:
            feedback.pushInfo(self.tr("Skipped {nodata} candidates for nodata and {outside_aoi} outside the AOI")
                              .format(**result.rejected))
        StyleFromQml.attach(context, index_path, resource_path("styles", "chip_index.qml"))
        return {self.OUTPUT: index_path, self.OUTPUT_DIR: result.out_dir, self.CHIP_COUNT: result.chip_count,
                self.COVERAGE: result.coverage.fraction, self.CLASS_COUNTS: json.dumps(result.class_counts)}

    def _location_sampler(self, name: str, parameters, raster, context):
        """The points or lines sampler: chips centred on the LOCATIONS features, in the raster's pixels."""
        source = self.parameterAsSource(parameters, self.LOCATIONS, context)
        if source is None:
            raise QgsProcessingException(self.tr(
                "LOCATIONS: the {} sampler centres chips on a layer of {}: choose it.").format(
                name, self.tr("points") if name == "points" else self.tr("lines")))
        wkts, _crs, _values = self._geometries_in_raster_crs(source, raster, context)
        spacing = self.parameterAsDouble(parameters, self.SPACING, context)
        return self.run_core(location_sampler, name, wkts, raster_geotransform(raster), spacing,
                             (raster.height(), raster.width()))

    def _labels(self, parameters, raster, context):
        """A label raster's path, VectorLabels from a polygon layer in the raster's CRS, or None."""
        layer = self.parameterAsLayer(parameters, self.LABELS, context)
        if layer is None:
            return None
        if not isinstance(layer, QgsVectorLayer):
            return self.file_raster(parameters, self.LABELS, context).source()
        field = self.parameterAsString(parameters, self.LABEL_FIELD, context)
        if not field or layer.fields().indexOf(field) < 0:
            raise QgsProcessingException(self.tr(
                "LABEL_FIELD: label polygons need the field that holds their class; '{}' has {}.").format(
                layer.name(), ", ".join(layer.fields().names())))
        background = parameters.get(self.BACKGROUND)
        return self.run_core(vector_labels, layer, field, raster.crs(), context.transformContext(),
                             self.parameterAsBool(parameters, self.ALL_TOUCHED, context),
                             None if background in (None, "") else int(background))

    def _aoi_in_raster_crs(self, source, raster, context) -> tuple[list[str], str]:
        wkts, crs_wkt, _values = self._geometries_in_raster_crs(source, raster, context)
        return wkts, crs_wkt

    def _geometries_in_raster_crs(self, source, raster, context, field: str | None = None):
        return geometries_in_crs(source, raster.crs(), context.transformContext(), field)
