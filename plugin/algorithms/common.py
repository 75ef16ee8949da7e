"""What every Patchwork algorithm shares: feedback adapter, error mapping, base class."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..resources import help_text, resource_path


class ProcessingFeedback:
    """Adapts QgsProcessingFeedback to the core's Feedback protocol."""

    def __init__(self, feedback: QgsProcessingFeedback) -> None:
        self.feedback = feedback

    def set_progress(self, percent: float) -> None:
        self.feedback.setProgress(percent)

    def is_cancelled(self) -> bool:
        return self.feedback.isCanceled()

    def info(self, message: str) -> None:
        self.feedback.pushInfo(message)


class PatchworkAlgorithm(QgsProcessingAlgorithm):
    """Base class: translation, icon, help from resources/help/<name>.html."""

    group_name = "Chips"

    def tr(self, text: str) -> str:
        return QCoreApplication.translate(type(self).__name__, text)

    def createInstance(self):  # noqa: N802 - QGIS API name
        return type(self)()

    def group(self) -> str:
        return self.tr(self.group_name)

    def groupId(self) -> str:  # noqa: N802 - QGIS API name
        return self.group_name.lower()

    def icon(self) -> QIcon:
        return QIcon(resource_path("icons", "patchwork.svg"))

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return help_text(self.name())

    def file_raster(self, parameters, name: str, context):
        """The raster layer of parameter `name` (or None), which the GDAL-based core can read as a file."""
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is not None and layer.providerType() != "gdal":
            raise QgsProcessingException(self.tr(
                "{}: '{}' is not a file raster (provider {}). Save it as a GeoTIFF first (Export ▸ Save As)."
            ).format(name, layer.name(), layer.providerType()))
        return layer

    def mark_advanced(self, *names: str) -> None:
        for name in names:
            param = self.parameterDefinition(name)
            param.setFlags(param.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)

    def run_core(self, function, *args, **kwargs):
        """Call the core, turning its errors into messages Processing shows as they are."""
        from ...core.errors import Cancelled, PatchworkError

        try:
            return function(*args, **kwargs)
        except PatchworkError as exc:
            raise QgsProcessingException(str(exc)) from exc
        except Cancelled as exc:
            raise QgsProcessingException(self.tr("Cancelled: nothing was written.")) from exc


class StyleFromQml:
    """Applies a QML style file to an output layer when Processing loads it (in the main thread)."""

    # Processing keeps only a pointer to post-processors: hold them here so they stay alive.
    _alive: list = []

    @classmethod
    def attach(cls, context, output_path: str, qml_path: str) -> None:
        from qgis.core import QgsProcessingLayerPostProcessorInterface

        class _Apply(QgsProcessingLayerPostProcessorInterface):
            def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API name
                layer.loadNamedStyle(qml_path)
                layer.triggerRepaint()
                if self in cls._alive:  # done: Processing calls a post-processor once
                    cls._alive.remove(self)

        if context.willLoadLayerOnCompletion(output_path):
            processor = _Apply()
            cls._alive.append(processor)
            context.layerToLoadOnCompletionDetails(output_path).setPostProcessor(processor)
