"""patchwork:detect — find objects with a YOLO-style ONNX detector, tile by tile, as boxes in a vector layer."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from ...core import budget
from ...core.models.onnx import DEVICES
from .. import qgis_enums
from .common import PROVIDER_ID, CoreCall, EnumParameter, PatchworkAlgorithm, optional_float, optional_int, raster_input
from .web_maps import RendersWebMaps


class DetectAlgorithm(RendersWebMaps, PatchworkAlgorithm):
    ID = f"{PROVIDER_ID}:detect"
    group_name = "Inference"
    required_packages = ("onnxruntime",)
    # Its parameters' and outputs' names, spelled once (the panel and scripts use these too).
    INPUT, MODEL, MASK = "INPUT", "MODEL", "MASK"
    TILE_SIZE, OVERLAP = "TILE_SIZE", "OVERLAP"
    CONFIDENCE, IOU, BATCH_SIZE, OUTPUT, DETECTIONS = "CONFIDENCE", "IOU", "BATCH_SIZE", "OUTPUT", "DETECTIONS"
    RESOLUTION, EXTENT = "RESOLUTION", "EXTENT"
    parameter_help = {
        INPUT: "The raster to search: a file raster, an XYZ tile layer (read at the zoom level of RESOLUTION or "
               "the model's, over EXTENT or the MASK), or a WMS/WMTS layer (rendered by QGIS at RESOLUTION over "
               "EXTENT or the MASK).",
        EXTENT: "For a web layer: the area to read (else the MASK's); file rasters are read whole.",
        MODEL: "A YOLO-style ONNX detector: Deepness's model_type Detector, or boxes as [batch, boxes, 5 + classes] "
               "(YOLOv5/v7) or [batch, 4 + classes, boxes] (YOLOv8/v11).",
        MASK: "Polygons (any CRS): only boxes whose centre lies inside are kept; tiles that miss them are skipped.",
        RESOLUTION: "The pixel size the detector runs at, in the raster's units (the raster is read resampled to it); "
                    "empty: the model's resolution metadata (cm per pixel), else the raster's own.",
        TILE_SIZE: "The side of the tiles fed to the model; empty: the model's own, else 640. A multiple of the "
                   "model's stride.",
        OVERLAP: "How much neighbouring tiles overlap; larger than the objects, so that each lies whole in a tile "
                 "(a box cut by a shared tile edge is dropped there). Empty: the model's tiles_overlap, else 15%.",
        CONFIDENCE: "The lowest score kept, 0–1; empty: the model's det_conf, else 0.3.",
        IOU: "Boxes of one class overlapping more than this (intersection over union) are one object; empty: the "
             "model's det_iou_thresh, else 0.5.",
        BATCH_SIZE: "Tiles given to the model at once.",
        OUTPUT: "The boxes as polygons (GeoPackage) in the raster's CRS: class, name and score, styled by class.",
    }

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return self.tr("Detect objects (tiled)")

    def tags(self) -> list[str]:
        return self.tr("detect,detection,yolo,objects,boxes,onnx,deepness,nms,tiles").split(",")

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API name
        number = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Input raster")))
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, self.tr("Detector (.onnx)"), qgis_enums.FILE, fileFilter="ONNX models (*.onnx)"))
        self.add_model_input_parameters()
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.MASK, self.tr("Search only inside (mask polygons)"), [qgis_enums.SOURCE_VECTOR_POLYGON],
            optional=True))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, self.tr("Area to read (web tile layers)"),
                                                       optional=True))
        self.addParameter(number(self.RESOLUTION, self.tr("Pixel size the model runs at (empty: the model's)"),
                                 qgis_enums.DOUBLE, None, optional=True, minValue=0.0))
        self.addParameter(number(self.TILE_SIZE, self.tr("Tile size (px; empty: the model's)"), qgis_enums.INTEGER,
                                 None, optional=True, minValue=1, maxValue=budget.MAX_TILE_SIZE))
        self.addParameter(number(self.OVERLAP, self.tr("Overlap between tiles (px; empty: the model's)"),
                                 qgis_enums.INTEGER, None, optional=True, minValue=0))
        self.addParameter(number(self.CONFIDENCE, self.tr("Lowest score kept (empty: the model's)"),
                                 qgis_enums.DOUBLE, None, optional=True, minValue=0.0, maxValue=1.0))
        self.addParameter(number(self.IOU, self.tr("Overlap that makes two boxes one object (IoU; empty: the "
                                                   "model's)"), qgis_enums.DOUBLE, None, optional=True, minValue=0.0,
                                 maxValue=1.0))
        self.addParameter(number(self.BATCH_SIZE, self.tr("Tiles per model call"), qgis_enums.INTEGER, 4, minValue=1,
                                 maxValue=budget.MAX_BATCH_SIZE))
        self.addParameter(EnumParameter(self.DEVICE, self.tr("Device for ONNX models"), DEVICES, optional=True))
        self.mark_advanced(self.BATCH_SIZE, self.DEVICE)
        self.add_executor_parameters()
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT, self.tr("Detections"), qgis_enums.SOURCE_VECTOR_POLYGON))
        self.addOutput(QgsProcessingOutputNumber(self.DETECTIONS, self.tr("Number of objects found")))

    def core_call(self, parameters, context) -> CoreCall:
        from ...core.tasks.detect import detect

        raster, source = raster_input(self, parameters, context)
        mask = self.mask_polygons(parameters, "MASK", raster.crs(), context)
        return CoreCall(detect, (source, self.parameterAsFile(parameters, self.MODEL, context),
                                 self.parameterAsOutputLayer(parameters, self.OUTPUT, context)), dict(
            **self.model_input_arguments(parameters, context),
            tile_size=optional_int(parameters, self.TILE_SIZE), overlap=optional_int(parameters, self.OVERLAP),
            confidence=optional_float(self, parameters, self.CONFIDENCE, context),
            iou=optional_float(self, parameters, self.IOU, context),
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context), mask=mask,
            resolution=optional_float(self, parameters, self.RESOLUTION, context),
            device=self.word(parameters, self.DEVICE, context), **self.executor_arguments(parameters, context)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        result, _call = self.run_on_the_layer(parameters, context, feedback)
        feedback.pushInfo(self.tr("{} objects in {} tiles ({:.1f} s) → {}").format(
            len(result.boxes), result.tiles, result.seconds, result.output))
        # The GeoPackage holds its style (outlines in the class colours) as its default: QGIS loads it with it.
        return {self.OUTPUT: result.output, self.DETECTIONS: len(result.boxes)}
