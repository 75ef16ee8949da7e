"""Runs a Patchwork Processing algorithm in the background for the dock: progress, Cancel, styled outputs."""
from __future__ import annotations

import os
import re

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QCoreApplication, QObject, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import QMessageBox, QPushButton

from ..plugin.algorithms.accuracy import AccuracyAlgorithm as Accuracy
from ..plugin.algorithms.accuracy import AccuracySampleAlgorithm as AccuracySample
from ..plugin.algorithms.augment_chips import AugmentChipsAlgorithm as Augment
from ..plugin.algorithms.classify import ClassifyAlgorithm as Classify
from ..plugin.algorithms.compare import CompareAlgorithm as Compare
from ..plugin.algorithms.detect import DetectAlgorithm as Detect
from ..plugin.algorithms.recognize import RecognizeAlgorithm as Recognize
from ..plugin.algorithms.sample_chips import SampleChipsAlgorithm as Sample
from ..plugin.algorithms.stitch_chips import StitchChipsAlgorithm as Stitch
from ..plugin.algorithms.suggest_labels import SuggestLabelsAlgorithm as SuggestLabels
from ..plugin.algorithms.superresolve import SuperResolveAlgorithm as SuperResolve
from ..plugin.algorithms.train_classifier import TrainClassifierAlgorithm as Train
from ..plugin.algorithms.train_segmentation import TrainSegmentationAlgorithm as TrainNetwork
from ..plugin.resources import resource_path

# Which outputs of which algorithm become layers, and how they are styled when added.
LAYER_OUTPUTS = {
    Sample.ID: [(Sample.OUTPUT, "vector")],
    Augment.ID: [(Augment.OUTPUT, "vector")],
    Classify.ID: [(Classify.OUTPUT, "raster"), (Classify.OUTPUT_PROBABILITIES, "raster"),
                  (Classify.OUTPUT_VECTOR, "styled vector"), (Classify.OTHER_HEADS, "raster"),
                  (Classify.OUTPUT_UNCERTAINTY, "raster"), (Classify.OUTPUT_AOA, "raster")],
    Compare.ID: [(Compare.OUTPUT, "raster")],
    Detect.ID: [(Detect.OUTPUT, "styled vector")],
    SuperResolve.ID: [(SuperResolve.OUTPUT, "raster")],
    Recognize.ID: [(Recognize.OUTPUT, "raster")],
    Stitch.ID: [(Stitch.OUTPUT, "raster")],
    AccuracySample.ID: [(AccuracySample.OUTPUT, "styled vector")],
    SuggestLabels.ID: [(SuggestLabels.OUTPUT, "styled vector")],
}
TEMPORARY = "TEMPORARY_OUTPUT"  # Processing writes the output to a temporary file, as QGIS's dialogs offer


def temporary_output(name: str) -> str:
    """A new path in QGIS's Processing temporary folder (removed when QGIS closes), for a folder output."""
    return QgsProcessingUtils.generateTempFilename(name)


def new_model_path() -> str:
    """Where a trained model goes unless the user says otherwise: beside the project (or in the home folder,
    for a project not saved yet), under a name no file has, so that no earlier model is replaced."""
    folder = QgsProject.instance().absolutePath() or os.path.join(os.path.expanduser("~"), "Patchwork models")
    path, n = os.path.join(folder, "patchwork_model.onnx"), 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(folder, f"patchwork_model_{n}.onnx")
    return path


def _push(iface, text: str, level, seconds: int, buttons: list):
    """A "Patchwork: text" message in QGIS's bar with (label, action) buttons; returns it (None without a bar)."""
    if iface is None or not hasattr(iface, "messageBar"):
        return None
    item = iface.messageBar().createMessage("Patchwork", text)
    for label, action in buttons:
        button = QPushButton(QCoreApplication.translate("Patchwork", label))
        button.clicked.connect(action)
        item.layout().addWidget(button)
    iface.messageBar().pushWidget(item, level, seconds)
    return item


def announce(iface, text: str, layers: list, report: str | None = None):
    """A finished run in QGIS's message bar, with a button to the new layer and, if any, to the report."""
    buttons = []
    if layers:
        layer = layers[0]

        def zoom() -> None:
            iface.setActiveLayer(layer)
            iface.zoomToActiveLayer()

        buttons.append(("Zoom to layer", zoom))
    if report:
        buttons.append(("Open report", lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(report))))
    return _push(iface, text, Qgis.MessageLevel.Success, 8, buttons)


def readable(message: str, algorithm) -> str:
    """A run's message as the panel says it: a leading parameter id (VALIDATION_FRACTION:) becomes its label
    ("Validation fraction:"), as the user saw it on the form."""
    match = re.match(r"([A-Z][A-Z0-9_]+):", message or "")
    definition = algorithm.parameterDefinition(match.group(1)) if match and algorithm is not None else None
    if definition is None:
        return message
    return f"{definition.description()}:{message[match.end():]}"


def announce_failure(iface, text: str, details: str, install=None):
    """A failed run in QGIS's message bar, at Critical level (it stays until closed), with the log behind Details
    and, when `install` is given (a package is missing), a button that opens the installer."""
    def show() -> None:
        box = QMessageBox(QMessageBox.Icon.Critical, "Patchwork", text, QMessageBox.StandardButton.Close,
                          iface.mainWindow() if hasattr(iface, "mainWindow") else None)
        box.setDetailedText(details)
        box.exec()

    buttons = ([("Install packages…", install)] if install else []) + ([("Details", show)] if details else [])
    return _push(iface, text, Qgis.MessageLevel.Critical, 0, buttons)


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
        self.results: dict = {}
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
        self.results = dict(results or {})
        message = self.feedback.last_error or ("Cancelled: nothing was written." if self.feedback.isCanceled() else "")
        message = readable(message, self.algorithm)
        if ok:
            self.layers = self._add_layers(results)
        self.finished.emit(bool(ok), dict(results or {}), message)

    def summary(self) -> str:
        """One line on what a finished run made."""
        results, names = self.results, ", ".join(layer.name() for layer in self.layers)
        if self.algorithm_id == Train.ID:
            accuracy = results.get(Train.ACCURACY)
            quality = f", validation accuracy {accuracy:.1%}" if isinstance(accuracy, float) else ""
            return f"Model trained{quality}: {results.get(Train.OUTPUT_MODEL)}"
        if self.algorithm_id == TrainNetwork.ID:
            return (f"Network trained, validation accuracy {results.get(TrainNetwork.VAL_ACCURACY, 0):.1%}, mean IoU "
                    f"{results.get(TrainNetwork.VAL_MIOU, 0):.3f}: {results.get(TrainNetwork.OUTPUT_MODEL)}")
        if self.algorithm_id == Accuracy.ID:
            return (f"Overall accuracy {results.get(Accuracy.OVERALL_ACCURACY, 0):.3f} ± "
                    f"{results.get(Accuracy.OVERALL_ACCURACY_CI, 0):.3f} (95%), from "
                    f"{int(results.get(Accuracy.POINTS_USED, 0))} points; areas with intervals in the report")
        if self.algorithm_id == Compare.ID:
            return (f"Agreement {results.get(Compare.AGREEMENT, 0):.1%} of {int(results.get(Compare.PIXELS, 0)):,} "
                    f"pixels, kappa {results.get(Compare.KAPPA, 0):.3f}")
        return f"Done: {names}" if names else "Done"

    def input_name(self) -> str:
        """The input as the user knows it: its layer's name in the project, else its file's name."""
        value = self.parameters.get("INPUT")
        if hasattr(value, "name"):
            return value.name()
        path = os.path.normpath(str(value or ""))
        for layer in self.project.mapLayers().values():
            if os.path.normpath(layer.source().split("|")[0]) == path:
                return layer.name()
        return os.path.splitext(os.path.basename(path))[0]

    def layer_title(self, name: str, path: str) -> str:
        """Layer names that say what they are and of what: 'chips (poisson, 94)', 'classes — forest.onnx on
        Sentinel-2', a second head's 'classes (water) — two_heads.onnx on ortho'."""
        results, parameters = self.results, self.parameters
        model = os.path.basename(str(parameters.get(Classify.MODEL, "")))
        if model and "INPUT" in parameters:
            model = f"{model} on {self.input_name()}"
        key = (self.algorithm_id, name)
        if key == (Classify.ID, Classify.OTHER_HEADS):  # <output>_<head>.tif: the head's name is in the file's
            first = os.path.splitext(os.path.basename(str(results.get(Classify.OUTPUT, ""))))[0]
            head = os.path.splitext(os.path.basename(path))[0]
            head = head[len(first) + 1:] if head.startswith(first + "_") else head
            return f"classes ({head}) — {model}"
        if key == (Sample.ID, Sample.OUTPUT):
            return f"chips ({self._choice(Sample.SAMPLER)}, {results.get(Sample.CHIP_COUNT)})"
        titles = {
            (Augment.ID, Augment.OUTPUT): f"augmented chips ({results.get(Augment.CHIP_COUNT)})",
            (Classify.ID, Classify.OUTPUT): f"classes — {model}",
            (Classify.ID, Classify.OUTPUT_PROBABILITIES): f"class probabilities — {model}",
            (Classify.ID, Classify.OUTPUT_VECTOR): f"class polygons — {model}",
            (Classify.ID, Classify.OUTPUT_UNCERTAINTY): f"uncertainty — {model}",
            (Classify.ID, Classify.OUTPUT_AOA): f"area of applicability — {model}",
            (Detect.ID, Detect.OUTPUT): f"detections — {model} ({results.get(Detect.DETECTIONS)})",
            (SuperResolve.ID, SuperResolve.OUTPUT):
                f"super-resolved x{results.get(SuperResolve.SCALE_FACTOR)} — {model}",
            (Recognize.ID, Recognize.OUTPUT): f"similarity — {model}",
            (Compare.ID, Compare.OUTPUT): "agreement",
            (Stitch.ID, Stitch.OUTPUT): "mosaic",
            (SuggestLabels.ID, SuggestLabels.OUTPUT): f"label next ({results.get(SuggestLabels.PLACES)})",
            (AccuracySample.ID, AccuracySample.OUTPUT):
                f"points to label — {self.input_name()} ({results.get(AccuracySample.POINTS)})",
        }
        return titles.get(key) or os.path.splitext(os.path.basename(path))[0]

    def _choice(self, name: str) -> str:
        """The word of a choice parameter as the run got it (an index or the word)."""
        definition = self.algorithm.parameterDefinition(name)
        value = definition.index_of(self.parameters.get(name, definition.defaultValue()))
        return definition.words[int(value)]

    def _add_layers(self, results: dict) -> list:
        layers = []
        outputs = [(name, kind, path) for name, kind in LAYER_OUTPUTS.get(self.algorithm_id, [])
                   for path in (results.get(name) if isinstance(results.get(name), list) else [results.get(name)])]
        for name, kind, path in outputs:  # (a list: the maps of a multi-head model's other heads)
            if not path or not os.path.exists(str(path)):
                continue
            title = self.layer_title(name, str(path))
            if kind == "vector":
                layer = QgsVectorLayer(str(path), title, "ogr")
                layer.loadNamedStyle(resource_path("styles", "chip_index.qml"))
            elif kind == "styled vector":
                layer = QgsVectorLayer(str(path), title, "ogr")  # its default style is in the GeoPackage
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
