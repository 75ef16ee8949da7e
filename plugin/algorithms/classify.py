"""patchwork:classify — run a model over a raster tile by tile and stitch the tiles into one map."""
from __future__ import annotations

import os

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from ...core import budget
from ...core.engine.uncertainty import UNCERTAINTIES
from ...core.models import MODEL_TYPES
from .. import qgis_enums
from ..resources import resource_path
from .common import (
    AGGREGATIONS,
    MODEL_FILTER,
    PROVIDER_ID,
    CoreCall,
    EnumParameter,
    PatchworkAlgorithm,
    StyleFromQml,
    optional_float,
    optional_int,
    raster_input,
)
from .web_maps import RendersWebMaps


class ClassifyAlgorithm(RendersWebMaps, PatchworkAlgorithm):
    ID = f"{PROVIDER_ID}:classify"
    group_name = "Inference"
    # Its parameters' and outputs' names, spelled once (the panel and scripts use these too).
    INPUT, MODEL, TILE_SIZE = "INPUT", "MODEL", "TILE_SIZE"
    OVERLAP, WINDOW, AGGREGATION = "OVERLAP", "WINDOW", "AGGREGATION"
    BATCH_SIZE, TRUST_MODEL, OUTPUT = "BATCH_SIZE", "TRUST_MODEL", "OUTPUT"
    OUTPUT_PROBABILITIES, TILES, BLOCKS = "OUTPUT_PROBABILITIES", "TILES", "BLOCKS"
    MIN_SEGMENT, OUTPUT_VECTOR, OUTPUT_AREAS = "MIN_SEGMENT", "OUTPUT_VECTOR", "OUTPUT_AREAS"
    OTHER_HEADS, MASK, RESOLUTION = "OTHER_HEADS", "MASK", "RESOLUTION"
    EXTENT, OUTPUT_UNCERTAINTY, UNCERTAINTY = "EXTENT", "OUTPUT_UNCERTAINTY", "UNCERTAINTY"
    MODEL_TYPE, THRESHOLD, OUTPUT_AOA = "MODEL_TYPE", "THRESHOLD", "OUTPUT_AOA"
    parameter_help = {
        INPUT: "The raster to classify: a file raster, or an XYZ tile layer (read at the zoom level of RESOLUTION "
               "or the model's, over EXTENT or the MASK).",
        EXTENT: "For a web tile layer: the area to read (else the MASK's); file rasters are read whole.",
        MODEL: "An ONNX model (Deepness's included), a skops file, a rules model (.json) or, if trusted, a "
               "pickle.",
        MASK: "Polygons (any CRS): only pixels inside are classified, the rest is nodata; tiles that reach no "
              "pixel inside are not computed.",
        RESOLUTION: "The pixel size the model runs at, in the raster's units: the input is read resampled to it "
                    "(averaged when coarser, bilinear when finer). Empty: the model's resolution metadata (cm per "
                    "pixel), else the raster's own.",
        PatchworkAlgorithm.SCALE: "Input values are multiplied by this: 0.0001 for Sentinel-2 digital numbers, "
                                  "1/255 for 8-bit imagery and Deepness models.",
        TILE_SIZE: "The side of the tiles fed to the model; empty: the model's own.",
        OVERLAP: "How much neighbouring tiles overlap; empty: the model's own, else 0.",
        WINDOW: "How overlapping tiles are weighted: equally (boxcar), or more at their centres (hann, "
                "triangular, tukey, gaussian).",
        AGGREGATION: "hardvote: each tile votes its class; softvote: mean class probabilities; mean: regression "
                     "values.",
        BATCH_SIZE: "Tiles given to the model at once.",
        MODEL_TYPE: "What an ONNX model is, when its metadata does not say or says it wrong (as in Deepness's "
                    "dialog): auto reads its model_type metadata, else its output's shape; segmentation and "
                    "regression make maps here, the others have their own algorithms.",
        THRESHOLD: "For a model with one sigmoid output (class vs background): the class where p > THRESHOLD; "
                   "empty: its seg_thresh metadata, else 0.5.",
        TRUST_MODEL: "Only for pickles (.pkl, .joblib) from a source you trust: loading one can run any code.",
        OUTPUT: "The class map (or values) on the input's grid.",
        OUTPUT_PROBABILITIES: "A raster of one band per class: mean probabilities (softvote) or vote shares.",
        MIN_SEGMENT: "Patches of the class map smaller than this many pixels take the class of their largest "
                     "neighbour (8-connected); empty: the model's seg_small_segment, else none.",
        OUTPUT_VECTOR: "The class map as polygons (GeoPackage): class, name and area in m², styled by class.",
        OUTPUT_AREAS: "A table (CSV) of each class's pixels, hectares and share of the classified area; the log "
                      "always lists them.",
        OUTPUT_UNCERTAINTY: "A map of how sure the map is of each pixel (0 sure to 1 unsure; variance for values): "
                            "where to look, and what to label next.",
        OUTPUT_AOA: "Where the model can be trusted: 1 where the pixels are like its training pixels, 0 where they "
                    "are not (the area of applicability of Meyer & Pebesma 2021); for per-pixel models trained by "
                    "Patchwork.",
        UNCERTAINTY: "entropy of the class probabilities (normalised to 0–1), margin 1 − (p₁ − p₂), "
                     "least_confidence 1 − p_max, disagreement (share of overlapping tiles voting another class), "
                     "variance across overlapping tiles (values); auto: entropy, or variance for values. The "
                     "probabilities are those OUTPUT_PROBABILITIES writes: with hardvote, vote shares.",
    }

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return self.tr("Classify raster (tiled)")

    def tags(self) -> list[str]:
        return self.tr("classify,inference,segmentation,onnx,deepness,scikit-learn,tiles,stitch,ndvi,rules").split(",")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        number = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Input raster")))
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, self.tr("Model (.onnx, .skops, .json rules; .joblib/.pkl only if trusted)"),
            qgis_enums.FILE, fileFilter=MODEL_FILTER,
            defaultValue=resource_path("models", "ndvi_ndwi_rules.json")))
        self.add_model_input_parameters()
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.MASK, self.tr("Classify only inside (mask polygons)"), [qgis_enums.SOURCE_VECTOR_POLYGON],
            optional=True))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, self.tr("Area to read (web tile layers)"),
                                                       optional=True))
        self.addParameter(number(self.RESOLUTION, self.tr("Pixel size the model runs at (empty: the model's)"),
                                 qgis_enums.DOUBLE, None, optional=True, minValue=0.0))
        self.add_output_grid_parameter()
        self.addParameter(number(self.TILE_SIZE, self.tr("Tile size (px; empty: the model's)"), qgis_enums.INTEGER,
                                 None, optional=True, minValue=1, maxValue=budget.MAX_TILE_SIZE))
        self.addParameter(number(self.OVERLAP, self.tr("Overlap between tiles (px; empty: the model's, else 0)"),
                                 qgis_enums.INTEGER, None, optional=True, minValue=0))
        self.add_window_parameters()
        self.addParameter(EnumParameter(self.AGGREGATION, self.tr("Aggregation of overlapping tiles"), AGGREGATIONS))
        self.addParameter(number(self.BATCH_SIZE, self.tr("Tiles per model call"), qgis_enums.INTEGER, 4, minValue=1,
                                 maxValue=budget.MAX_BATCH_SIZE))
        self.addParameter(QgsProcessingParameterBoolean(
            self.TRUST_MODEL, self.tr("Trust this model file (needed to load pickles, which can run code)"), False))
        self.addParameter(number(self.MIN_SEGMENT, self.tr("Merge patches smaller than (px; empty: the model's)"),
                                 qgis_enums.INTEGER, None, optional=True, minValue=0))
        self.addParameter(EnumParameter(self.MODEL_TYPE, self.tr("Model type (ONNX; auto: from the model)"),
                                        MODEL_TYPES, optional=True))
        self.addParameter(number(self.THRESHOLD, self.tr("Sigmoid threshold (empty: the model's seg_thresh, else "
                                                         "0.5)"), qgis_enums.DOUBLE, None, optional=True,
                                 minValue=0.0, maxValue=1.0))
        self.mark_advanced(self.BATCH_SIZE, self.TRUST_MODEL, self.MIN_SEGMENT, self.MODEL_TYPE, self.THRESHOLD)
        self.add_scale_parameters(cluster=True)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Classified")))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_PROBABILITIES, self.tr("Class probabilities"), optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT_VECTOR, self.tr("Class polygons"), qgis_enums.SOURCE_VECTOR_POLYGON, optional=True,
            createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_AREAS, self.tr("Area per class (CSV)"), self.tr("CSV files (*.csv)"), optional=True,
            createByDefault=False))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_UNCERTAINTY, self.tr("Uncertainty"), optional=True, createByDefault=False))
        self.addParameter(EnumParameter(self.UNCERTAINTY, self.tr("Uncertainty measure"), UNCERTAINTIES,
                                        optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_AOA, self.tr("Area of applicability"), optional=True, createByDefault=False))
        self.mark_advanced(self.UNCERTAINTY)
        self.addOutput(QgsProcessingOutputNumber(self.TILES, self.tr("Number of model tiles (0: per-pixel model)")))
        self.addOutput(QgsProcessingOutputNumber(self.BLOCKS, self.tr("Number of blocks")))
        self.addOutput(QgsProcessingOutputMultipleLayers(
            self.OTHER_HEADS, self.tr("Maps of the model's other output heads (beside OUTPUT, named after them)")))

    def core_call(self, parameters, context) -> CoreCall:
        from ...core.tasks.classify import classify

        raster, source = raster_input(self, parameters, context)
        mask = self.mask_polygons(parameters, "MASK", raster.crs(), context)
        return CoreCall(classify, (source, self.parameterAsFile(parameters, self.MODEL, context),
                                   self.parameterAsOutputLayer(parameters, self.OUTPUT, context)), dict(
            **self.model_input_arguments(parameters, context),
            tile_size=optional_int(parameters, self.TILE_SIZE),
            overlap=optional_int(parameters, self.OVERLAP),
            window=self.window_argument(parameters, context),
            aggregation=self.word(parameters, self.AGGREGATION, context),
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            probabilities=self.parameterAsOutputLayer(parameters, self.OUTPUT_PROBABILITIES, context) or None,
            trust_model=self.parameterAsBool(parameters, self.TRUST_MODEL, context),
            min_segment=optional_int(parameters, self.MIN_SEGMENT),
            vector_output=self.parameterAsOutputLayer(parameters, self.OUTPUT_VECTOR, context) or None,
            area_table=self.parameterAsFileOutput(parameters, self.OUTPUT_AREAS, context) or None,
            mask=mask,
            resolution=optional_float(self, parameters, self.RESOLUTION, context),
            output_grid=self.word(parameters, self.OUTPUT_GRID, context),
            uncertainty=self.parameterAsOutputLayer(parameters, self.OUTPUT_UNCERTAINTY, context) or None,
            uncertainty_measure=self.word(parameters, self.UNCERTAINTY, context),
            model_type=self.word(parameters, self.MODEL_TYPE, context),
            threshold=optional_float(self, parameters, self.THRESHOLD, context),
            aoa=self.parameterAsOutputLayer(parameters, self.OUTPUT_AOA, context) or None,
            **self.scale_arguments(parameters, context, cluster=True)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        result, call = self.run_on_the_layer(parameters, context, feedback)
        output, probabilities = result.output, result.probabilities
        resumed = self.tr(" ({} taken from the earlier run)").format(result.blocks_resumed) if result.blocks_resumed \
            else ""
        feedback.pushInfo(self.tr("{} blocks{}, {} tiles in {:.1f} s → {}").format(
            result.blocks, resumed, result.tiles, result.seconds, result.output))
        if result.style:
            StyleFromQml.attach(context, output, result.style)
        outputs = {self.OUTPUT: output, self.TILES: result.tiles, self.BLOCKS: result.blocks}
        if probabilities:
            outputs[self.OUTPUT_PROBABILITIES] = probabilities
        if result.uncertainty:
            from ...core.io.palette import qml_path

            if os.path.exists(qml_path(result.uncertainty)):  # (a class map's: 0–1 on one colour ramp)
                StyleFromQml.attach(context, result.uncertainty, qml_path(result.uncertainty))
            outputs[self.OUTPUT_UNCERTAINTY] = result.uncertainty
        if result.aoa:
            from ...core.io.palette import qml_path

            StyleFromQml.attach(context, result.aoa, qml_path(result.aoa))
            outputs[self.OUTPUT_AOA] = result.aoa
        vector_output, area_table = call.kwargs["vector_output"], call.kwargs["area_table"]
        if vector_output:  # styled by class: the GeoPackage holds its default style, which QGIS loads with it
            outputs[self.OUTPUT_VECTOR] = vector_output
        if area_table:
            outputs[self.OUTPUT_AREAS] = area_table
        outputs[self.OTHER_HEADS] = [head.output for head in result.other_heads]
        for head in result.other_heads:  # a multi-head model: every head is a map, loaded with the first one's
            feedback.pushInfo(self.tr("Output head '{}' → {}").format(head.info.heads[head.info.head], head.output))
            if context.willLoadLayerOnCompletion(output):  # named by its head, not by a temporary file's name
                name = self.tr("classes ({}) — {}").format(head.info.heads[head.info.head],
                                                            os.path.basename(call.args[1]))  # (source, model, …)
                context.addLayerToLoadOnCompletion(head.output, QgsProcessingContext.LayerDetails(
                    name, context.project(), self.OUTPUT))
                if head.style:
                    StyleFromQml.attach(context, head.output, head.style)
        return outputs
