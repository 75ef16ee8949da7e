"""patchwork:recognize — map where a raster looks like a query image, with a recognition (embedding) model."""
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
from .common import (
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


class RecognizeAlgorithm(RendersWebMaps, PatchworkAlgorithm):
    ID = f"{PROVIDER_ID}:recognize"
    group_name = "Inference"
    required_packages = ("onnxruntime",)
    INPUT, MODEL, QUERY, MASK = "INPUT", "MODEL", "QUERY", "MASK"
    TILE_SIZE, OVERLAP, WINDOW = "TILE_SIZE", "OVERLAP", "WINDOW"
    BATCH_SIZE, OUTPUT, TILES, RESOLUTION, EXTENT = "BATCH_SIZE", "OUTPUT", "TILES", "RESOLUTION", "EXTENT"
    parameter_help = {
        INPUT: "The raster to search: a file raster, an XYZ tile layer (read at the zoom level of RESOLUTION or "
               "the model's, over EXTENT or the MASK), or a WMS/WMTS layer (rendered by QGIS at RESOLUTION over "
               "EXTENT or the MASK).",
        EXTENT: "For a web layer: the area to read (else the MASK's); file rasters are read whole.",
        MODEL: "A recognition ONNX model: an embedding [batch, features] per image tile (Deepness's model_type "
               "Recognition).",
        QUERY: "An image of what is looked for (any raster GDAL reads: a PNG, a GeoTIFF clip), resampled to the "
               "model's tile; the same bands, scale and offset as the input.",
        MASK: "Polygons (any CRS): only pixels inside are scored, the rest is nodata.",
        RESOLUTION: "The pixel size the model runs at, in the raster's units (the map is on that grid); empty: the "
                    "model's resolution metadata (cm per pixel), else the raster's own.",
        TILE_SIZE: "The side of the tiles fed to the model; empty: the model's own.",
        OVERLAP: "How much neighbouring tiles overlap; empty: the model's own, else 0.",
        WINDOW: "How overlapping tiles' scores are blended: equally (boxcar), or more at their centres (hann, "
                "triangular, tukey, gaussian).",
        BATCH_SIZE: "Tiles given to the model at once (a model that fixes its batch keeps its own).",
        OUTPUT: "The similarity map (cosine of the embeddings, −1 to 1) on the input's grid, float32.",
    }

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return self.tr("Recognize (similarity to a query image)")

    def tags(self) -> list[str]:
        return self.tr("recognition,similarity,embedding,query,search,onnx,deepness,tiles").split(",")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        number = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Input raster")))
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, self.tr("Recognition model (.onnx)"), qgis_enums.FILE, fileFilter="ONNX models (*.onnx)"))
        self.addParameter(QgsProcessingParameterFile(self.QUERY, self.tr("Query image"), qgis_enums.FILE))
        self.add_model_input_parameters()
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.MASK, self.tr("Score only inside (mask polygons)"), [qgis_enums.SOURCE_VECTOR_POLYGON],
            optional=True))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, self.tr("Area to read (web tile layers)"),
                                                       optional=True))
        self.addParameter(number(self.RESOLUTION, self.tr("Pixel size the model runs at (empty: the model's)"),
                                 qgis_enums.DOUBLE, None, optional=True, minValue=0.0))
        self.add_output_grid_parameter()
        self.addParameter(number(self.TILE_SIZE, self.tr("Tile size (px; empty: the model's)"), qgis_enums.INTEGER,
                                 None, optional=True, minValue=1, maxValue=budget.MAX_TILE_SIZE))
        self.addParameter(number(self.OVERLAP, self.tr("Overlap between tiles (px; empty: the model's)"),
                                 qgis_enums.INTEGER, None, optional=True, minValue=0))
        self.add_window_parameters("hann")
        self.addParameter(number(self.BATCH_SIZE, self.tr("Tiles per model call"), qgis_enums.INTEGER, 4, minValue=1,
                                 maxValue=budget.MAX_BATCH_SIZE))
        self.addParameter(EnumParameter(self.DEVICE, self.tr("Device for ONNX models"), DEVICES, optional=True))
        self.mark_advanced(self.BATCH_SIZE, self.DEVICE)
        self.add_executor_parameters()
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Similarity")))
        self.addOutput(QgsProcessingOutputNumber(self.TILES, self.tr("Number of model tiles")))

    def core_call(self, parameters, context) -> CoreCall:
        from ...core.tasks.recognize import recognize

        layer, source = raster_input(self, parameters, context)
        mask = self.mask_polygons(parameters, self.MASK, layer.crs(), context)
        return CoreCall(recognize, (source, self.parameterAsFile(parameters, self.MODEL, context),
                                    self.parameterAsFile(parameters, self.QUERY, context),
                                    self.parameterAsOutputLayer(parameters, self.OUTPUT, context)), dict(
            **self.model_input_arguments(parameters, context),
            tile_size=optional_int(parameters, self.TILE_SIZE), overlap=optional_int(parameters, self.OVERLAP),
            window=self.window_argument(parameters, context),
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context), mask=mask,
            resolution=optional_float(self, parameters, self.RESOLUTION, context),
            output_grid=self.word(parameters, self.OUTPUT_GRID, context),
            device=self.word(parameters, self.DEVICE, context), **self.executor_arguments(parameters, context)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        result, _call = self.run_on_the_layer(parameters, context, feedback)
        feedback.pushInfo(self.tr("{} tiles in {:.1f} s → {}").format(result.tiles, result.seconds, result.output))
        if result.style:
            StyleFromQml.attach(context, result.output, result.style)
        return {self.OUTPUT: result.output, self.TILES: result.tiles}
