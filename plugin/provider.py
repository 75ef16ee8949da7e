"""The Processing provider: id ``patchwork``; algorithm ids are ``patchwork:<name>``."""
from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms.accuracy import AccuracyAlgorithm, AccuracySampleAlgorithm
from .algorithms.augment_chips import AugmentChipsAlgorithm
from .algorithms.classify import ClassifyAlgorithm
from .algorithms.common import PROVIDER_ID
from .algorithms.compare import CompareAlgorithm
from .algorithms.detect import DetectAlgorithm
from .algorithms.recognize import RecognizeAlgorithm
from .algorithms.sample_chips import SampleChipsAlgorithm
from .algorithms.stitch_chips import StitchChipsAlgorithm
from .algorithms.suggest_labels import SuggestLabelsAlgorithm
from .algorithms.superresolve import SuperResolveAlgorithm
from .algorithms.train_classifier import TrainClassifierAlgorithm
from .algorithms.train_segmentation import TrainSegmentationAlgorithm
from .resources import resource_path


class PatchworkProvider(QgsProcessingProvider):
    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return "Patchwork"

    def longName(self) -> str:  # noqa: N802 - QGIS API name
        return "Patchwork: machine learning on rasters by patches"

    def icon(self) -> QIcon:
        return QIcon(resource_path("icons", "patchwork.svg"))

    def svgIconPath(self) -> str:  # noqa: N802 - QGIS API name
        return resource_path("icons", "patchwork.svg")

    def supportedOutputVectorLayerExtensions(self) -> list[str]:  # noqa: N802 - QGIS API name
        # Chip indexes are GeoPackages: one file, long field names, written atomically.
        return ["gpkg"]

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802 - QGIS API name
        # The core writes tiled, compressed GeoTIFFs (with colour tables and category names).
        return ["tif"]

    def loadAlgorithms(self) -> None:  # noqa: N802 - QGIS API name
        for algorithm in (SampleChipsAlgorithm(), AugmentChipsAlgorithm(), TrainClassifierAlgorithm(),
                          TrainSegmentationAlgorithm(), ClassifyAlgorithm(), DetectAlgorithm(), SuperResolveAlgorithm(),
                          RecognizeAlgorithm(), StitchChipsAlgorithm(), CompareAlgorithm(), AccuracySampleAlgorithm(),
                          AccuracyAlgorithm(), SuggestLabelsAlgorithm()):
            self.addAlgorithm(algorithm)
        self.addAlgorithm(workflow_model("patchwork_workflow.model3", "workflow"))
        self.addAlgorithm(workflow_model("patchwork_workflow_polygons.model3", "workflowpolygons"))
        self.addAlgorithm(workflow_model("patchwork_workflow_network.model3", "workflownetwork"))


def workflow_model(file_name: str, name: str):
    """A shipped modeler model (sample → augment → train → classify) as patchwork:<name> in the Toolbox; open it in
    the graphical modeler (Edit Model…) to change a copy. One takes a label raster, one label polygons."""
    from qgis.core import QgsProcessingModelAlgorithm

    from .resources import resource_path

    class ShippedModel(QgsProcessingModelAlgorithm):
        """The model under a short id (patchwork:workflow) that shows its own title: a model's name is both."""

        def __init__(self, title: str) -> None:
            super().__init__()
            self.title = title

        def displayName(self) -> str:  # noqa: N802 - QGIS API name
            return self.title

        def createInstance(self):  # noqa: N802 - QGIS API name
            copy = ShippedModel(self.title)  # from this one in memory, as QGIS copies a model (not the file again)
            copy.loadVariant(self.toVariant())
            return copy

    model = ShippedModel("")
    model.fromFile(resource_path("models", file_name))
    model.title = model.name()
    model.setName(name)
    model.setGroup("Workflows")
    return model
