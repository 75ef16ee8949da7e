"""Runs a Patchwork Processing algorithm in the background for the dock: progress, Cancel, styled outputs."""
from __future__ import annotations

import os

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QObject, pyqtSignal

from ..plugin.resources import resource_path

# Which outputs of which algorithm become layers, and how they are styled when added.
LAYER_OUTPUTS = {
    "patchwork:samplechips": [("OUTPUT", "vector")],
    "patchwork:augmentchips": [("OUTPUT", "vector")],
    "patchwork:classify": [("OUTPUT", "raster"), ("OUTPUT_PROBABILITIES", "raster")],
    "patchwork:stitchchips": [("OUTPUT", "raster")],
}


class AlgorithmRun(QObject):
    """One background run of `algorithm_id`. Emits `progress` (0–100) and `finished(ok, results, message)`."""

    progress = pyqtSignal(float)
    finished = pyqtSignal(bool, dict, str)

    def __init__(self, algorithm_id: str, parameters: dict, project: QgsProject | None = None) -> None:
        super().__init__()
        self.algorithm_id = algorithm_id
        self.project = project or QgsProject.instance()
        self.algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
        if self.algorithm is None:
            raise RuntimeError(f"{algorithm_id} is not registered; is the Patchwork provider loaded?")
        self.context = QgsProcessingContext()
        self.context.setProject(self.project)
        self.feedback = _Feedback()
        self.feedback.progressChanged.connect(self.progress.emit)
        self.parameters = parameters
        self.task = QgsProcessingAlgRunnerTask(self.algorithm, parameters, self.context, self.feedback)
        self.task.executed.connect(self._done)
        self.layers: list = []
        self.done = False  # the task object itself is deleted by the task manager once it has finished

    def check(self) -> tuple[bool, str]:
        """The algorithm's own parameter check (as the Toolbox dialog makes it): no work, no file written."""
        return self.algorithm.checkParameterValues(self.parameters, self.context)

    def start(self) -> None:
        QgsApplication.taskManager().addTask(self.task)

    def cancel(self) -> None:
        """The core checks for cancel between tiles and chips: it stops within a fraction of a second."""
        self.feedback.cancel()

    @property
    def running(self) -> bool:
        return not self.done

    def _done(self, ok: bool, results: dict) -> None:
        self.done = True
        self.task = None
        message = self.feedback.last_error or ("Cancelled: nothing was written." if self.feedback.isCanceled() else "")
        if ok:
            self.layers = self._add_layers(results)
        self.finished.emit(bool(ok), dict(results or {}), message)

    def _add_layers(self, results: dict) -> list:
        layers = []
        for name, kind in LAYER_OUTPUTS.get(self.algorithm_id, []):
            path = results.get(name)
            if not path or not os.path.exists(str(path)):
                continue
            title = f"{os.path.splitext(os.path.basename(str(path)))[0]}"
            if kind == "vector":
                layer = QgsVectorLayer(str(path), title, "ogr")
                layer.loadNamedStyle(resource_path("styles", "chip_index.qml"))
            else:
                layer = QgsRasterLayer(str(path), title)  # a class map's .qml beside it is its default style
            if layer.isValid():
                self.project.addMapLayer(layer)
                layers.append(layer)
        return layers


class _Feedback(QgsProcessingFeedback):
    """Keeps the error Processing reports, to show it in the dock."""

    def __init__(self) -> None:
        super().__init__()
        self.last_error = ""

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802, N803 - QGIS API
        self.last_error = error
        super().reportError(error, fatalError)
