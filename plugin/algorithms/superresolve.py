"""patchwork:superresolve — a super-resolution model over a raster by tiles, on a grid k times finer."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ...core import budget
from ...core.models.onnx import DEVICES
from .. import qgis_enums
from .common import PROVIDER_ID, CoreCall, EnumParameter, PatchworkAlgorithm, optional_float, optional_int, raster_input
from .web_maps import RendersWebMaps


class SuperResolveAlgorithm(RendersWebMaps, PatchworkAlgorithm):
    ID = f"{PROVIDER_ID}:superresolve"
    group_name = "Inference"
    required_packages = ("onnxruntime",)
    INPUT, MODEL, EXTENT, RESOLUTION, MASK = "INPUT", "MODEL", "EXTENT", "RESOLUTION", "MASK"
    OVERLAP, WINDOW, BATCH_SIZE, OUTPUT, SCALE_FACTOR = "OVERLAP", "WINDOW", "BATCH_SIZE", "OUTPUT", "SCALE_FACTOR"
    parameter_help = {
        INPUT: "The raster to enhance: a file raster, an XYZ tile layer (read at the zoom level of RESOLUTION or "
               "the model's, over EXTENT or the MASK), or a WMS/WMTS layer (rendered by QGIS at RESOLUTION over EXTENT "
               "or the MASK).",
        EXTENT: "For a web layer: the area to read (else the MASK's); file rasters are read whole.",
        MASK: "Polygons (any CRS): only the tiles that reach them are computed, and the output is NaN outside.",
        RESOLUTION: "The pixel size the model reads, in the raster's units (the raster is read resampled to it; the "
                    "output is k times finer than that); empty: the model's resolution metadata (cm per pixel), else "
                    "the raster's own.",
        MODEL: "A super-resolution ONNX model: Deepness's model_type Superresolution, or an output k times larger "
               "than its input.",
        OVERLAP: "Input pixels neighbouring tiles share, blended by the window; empty: the model's tiles_overlap, "
                 "else 0.",
        WINDOW: "How overlapping tiles are weighted: equally (boxcar), or more at their centres (hann, triangular, "
                "tukey, gaussian).",
        BATCH_SIZE: "Tiles given to the model at once (a model that fixes its batch keeps its own).",
        OUTPUT: "A float32 raster k times finer than the input (same corner, pixels k times smaller), one band per "
                "model output.",
    }

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return self.tr("Super-resolve raster (tiled)")

    def tags(self) -> list[str]:
        return self.tr("super-resolution,superresolution,upscale,enhance,onnx,deepness,tiles").split(",")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        number = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Input raster")))
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, self.tr("Super-resolution model (.onnx)"), qgis_enums.FILE, fileFilter="ONNX models (*.onnx)"))
        self.add_model_input_parameters()
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.MASK, self.tr("Enhance only inside (mask polygons)"), [qgis_enums.SOURCE_VECTOR_POLYGON],
            optional=True))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, self.tr("Area to read (web tile layers)"),
                                                       optional=True))
        self.addParameter(number(self.RESOLUTION, self.tr("Pixel size the model reads (empty: the model's)"),
                                 qgis_enums.DOUBLE, None, optional=True, minValue=0.0))
        self.addParameter(number(self.OVERLAP, self.tr("Overlap between tiles (px; empty: the model's)"),
                                 qgis_enums.INTEGER, None, optional=True, minValue=0))
        self.add_window_parameters("hann")
        self.addParameter(number(self.BATCH_SIZE, self.tr("Tiles per model call"), qgis_enums.INTEGER, 1, minValue=1,
                                 maxValue=budget.MAX_BATCH_SIZE))
        self.addParameter(EnumParameter(self.DEVICE, self.tr("Device for ONNX models"), DEVICES, optional=True))
        self.mark_advanced(self.BATCH_SIZE, self.DEVICE)
        self.add_executor_parameters()
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Super-resolved")))
        self.addOutput(QgsProcessingOutputNumber(self.SCALE_FACTOR, self.tr("Scale factor")))

    def core_call(self, parameters, context) -> CoreCall:
        from ...core.tasks.superresolve import superresolve

        layer, source = raster_input(self, parameters, context)
        mask = self.mask_polygons(parameters, self.MASK, layer.crs(), context)
        return CoreCall(superresolve, (source, self.parameterAsFile(parameters, self.MODEL, context),
                                       self.parameterAsOutputLayer(parameters, self.OUTPUT, context)), dict(
            **self.model_input_arguments(parameters, context),
            overlap=optional_int(parameters, self.OVERLAP), window=self.window_argument(parameters, context),
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            resolution=optional_float(self, parameters, self.RESOLUTION, context), mask=mask,
            device=self.word(parameters, self.DEVICE, context), **self.executor_arguments(parameters, context)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        result, _call = self.run_on_the_layer(parameters, context, feedback)
        feedback.pushInfo(self.tr("x{}: {} x {} px from {} tiles in {:.1f} s → {}").format(
            result.scale_factor, result.width, result.height, result.tiles, result.seconds, result.output))
        return {self.OUTPUT: result.output, self.SCALE_FACTOR: result.scale_factor}
