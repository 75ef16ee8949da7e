"""The Processing provider: id ``patchwork``; algorithm ids are ``patchwork:<name>``."""
from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms.augment_chips import AugmentChipsAlgorithm
from .algorithms.classify import ClassifyAlgorithm
from .algorithms.common import PROVIDER_ID
from .algorithms.compare import CompareAlgorithm
from .algorithms.detect import DetectAlgorithm
from .algorithms.recognize import RecognizeAlgorithm
from .algorithms.sample_chips import SampleChipsAlgorithm
from .algorithms.stitch_chips import StitchChipsAlgorithm
from .algorithms.superresolve import SuperResolveAlgorithm
from .algorithms.train_classifier import TrainClassifierAlgorithm
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
                          ClassifyAlgorithm(), DetectAlgorithm(), SuperResolveAlgorithm(), RecognizeAlgorithm(),
                          StitchChipsAlgorithm(),
                          CompareAlgorithm()):
            self.addAlgorithm(algorithm)
        self.addAlgorithm(workflow_model())


def workflow_model():
    """The shipped modeler model (sample → augment → train → classify) as patchwork:workflow in the Toolbox; open it
    in the graphical modeler (Edit Model…) to change a copy."""
    from qgis.core import QgsProcessingModelAlgorithm

    from .resources import resource_path

    model = QgsProcessingModelAlgorithm()
    model.fromFile(resource_path("models", "patchwork_workflow.model3"))
    model.setName("workflow")
    model.setGroup("Workflows")
    return model
