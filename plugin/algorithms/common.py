"""What every Patchwork algorithm shares: feedback adapter, error mapping, base class."""
from __future__ import annotations

import os
import re
import signal
import threading
import traceback
from contextlib import contextmanager
from typing import Callable, NamedTuple

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsMessageLog,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsRectangle,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ...core.engine.map_writer import OUTPUT_FORMATS
from ...core.engine.stitching import AGGREGATIONS as STITCH_AGGREGATIONS
from ...core.engine.stitching import WINDOWS
from ...core.models.onnx import DEVICES
from .. import qgis_enums
from ..resources import help_text, resource_path

# Parameter types whose value is read from a file a run's outputs must not replace.
_FILE_INPUT_TYPES = ("raster", "vector", "source", "layer", "multilayer", "file", "meshLayer", "pointcloud")
PROVIDER_ID = "patchwork"  # algorithm ids are patchwork:<name>
OUTPUT_FORMAT_NAMES = ["GeoTIFF", "Cloud-optimised GeoTIFF (COG)"]  # shown for OUTPUT_FORMATS (0 GTiff, 1 COG)
AGGREGATIONS = list(STITCH_AGGREGATIONS)  # 0 hardvote, 1 softvote, 2 mean
MODEL_FILTER = "Models (*.onnx *.skops *.json *.joblib *.pkl *.pickle);;All files (*.*)"


WEB_MERCATOR = QgsCoordinateReferenceSystem("EPSG:3857")


def web_source(layer, extent: QgsRectangle | None):
    """An XYZ tile layer as the core's XyzSource (its URL and largest zoom; `extent` in EPSG:3857), else None."""
    from urllib.parse import parse_qs

    from ...core.io.web import XyzSource

    if layer is None or layer.providerType() != "wms":
        return None
    query = parse_qs(layer.source())
    if query.get("type", [""])[0] != "xyz" or not query.get("url"):
        return None  # WMS/WMTS: QGIS renders the area (ClassifyAlgorithm._rendered)
    bounds = None if extent is None or extent.isEmpty() else (extent.xMinimum(), extent.yMinimum(),
                                                               extent.xMaximum(), extent.yMaximum())
    return XyzSource(query["url"][0], int(query.get("zmax", ["19"])[0]), bounds)


def optional_int(parameters, name: str) -> int | None:
    """An optional number left empty (None, or '' from the command line) means 'the model's default'."""
    value = parameters.get(name)
    return None if value is None or value == "" else int(value)


def optional_float(algorithm, parameters, name: str, context) -> float | None:
    """An optional decimal left empty (None, or '' from the command line) means 'the model's default'."""
    value = parameters.get(name)
    return None if value is None or value == "" else algorithm.parameterAsDouble(parameters, name, context)


def raster_input(algorithm, parameters, context):
    """The INPUT layer, and what the core reads of it: an XYZ layer's XyzSource (over EXTENT), else the path of a
    file raster (any other layer is refused by file_raster)."""
    layer = algorithm.parameterAsRasterLayer(parameters, "INPUT", context)
    extent = parameters.get("EXTENT")
    web = web_source(layer, algorithm.parameterAsExtent(parameters, "EXTENT", context, WEB_MERCATOR)
                     if extent else None)
    if web is not None:
        return layer, web
    layer = algorithm.file_raster(parameters, "INPUT", context)
    return layer, layer.source()


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


@contextmanager
def interrupts_cancel(feedback: QgsProcessingFeedback | None):
    """While a run lasts, Ctrl-C (SIGINT) and SIGTERM cancel it as the Cancel button does.

    Only where Python can take signals (the main thread: qgis_process, a script); the previous
    handlers are put back afterwards, so the host's own handling is unchanged outside the run.
    """
    # get_ident, not current_thread(): in QGIS's task threads (not Python's) current_thread() makes a dummy Thread
    # object each run, which crashed Python 3.14 (QGIS 3.44) in a panel run.
    if feedback is None or threading.get_ident() != threading.main_thread().ident:
        yield
        return
    previous = {}

    def cancel(signum, frame):
        feedback.reportError(QCoreApplication.translate("Patchwork", "Interrupted (signal {}): cancelling…")
                             .format(signum))
        feedback.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, cancel)
        except (ValueError, OSError):  # not available here: leave the host's handling alone
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


class EnumParameter(QgsProcessingParameterEnum):
    """A choice whose values are the core's words (`words`), shown as `labels` (default: the words).

    Indices work everywhere (the dialog, the modeler, scripts, `OUTPUT_FORMAT=1`); the words work too
    (`WINDOW=hann` on the command line, `{"WINDOW": "hann"}` in processing.run). QGIS itself takes one or the
    other, never both, and reads an unknown word as the default: `word` reads either, and an unknown word is
    refused by the check.
    """

    def __init__(self, name: str, description: str, words, labels=None, default: int = 0,
                 optional: bool = False) -> None:
        super().__init__(name, description, list(labels or words), False, default, optional)
        self.words = list(words)

    def index_of(self, value):
        """The index a word stands for (in any case); any other value as it is."""
        lowered = [w.lower() for w in self.words]
        if isinstance(value, str) and value.strip().lower() in lowered:
            return lowered.index(value.strip().lower())
        return value

    def checkValueIsAcceptable(self, value, context=None):  # noqa: N802 - QGIS API name
        return super().checkValueIsAcceptable(self.index_of(value), context)

    def refusal(self, value) -> str:
        """Why `value` is refused ('' when it is not): QGIS alone says only 'Incorrect parameter value'."""
        if self.checkValueIsAcceptable(value):
            return ""
        return (f"{self.name()}: '{value}' is not one of {', '.join(self.words)} "
                f"(or their numbers 0 to {len(self.words) - 1}).")

    def clone(self):  # QGIS copies definitions (modeler, dialogs): the copy must still take words
        copy = EnumParameter(self.name(), self.description(), self.words, self.options(), self.defaultValue())
        copy.setFlags(self.flags())
        copy.setHelp(self.help())
        copy.setMetadata(self.metadata())
        return copy


class CoreCall(NamedTuple):
    """A core function and the arguments an algorithm's parameters give it."""

    function: Callable
    args: tuple
    kwargs: dict


def band_list(algorithm, parameters, name: str, context) -> list[int] | None:
    """Bands as picked in the dialog (a list) or typed on the command line ('1,2,3')."""
    value = parameters.get(name)
    if isinstance(value, str):
        try:
            return [int(part) for part in value.replace(";", ",").split(",") if part.strip()] or None
        except ValueError as exc:
            raise QgsProcessingException(f"{name}: '{value}' is not a list of band numbers like 1,2,3.") from exc
    return algorithm.parameterAsInts(parameters, name, context) or None


class PatchworkAlgorithm(QgsProcessingAlgorithm):
    """Base class: translation, icon, help from resources/help/<name>.html, checks before the run."""

    group_name = "Chips"
    required_packages: tuple[str, ...] = ()  # optional packages it cannot run without (canExecute)
    # The names of the parameters add_scale_parameters and add_model_input_parameters add, spelled once.
    WORKERS, DEVICE, DASK_SCHEDULER = "WORKERS", "DEVICE", "DASK_SCHEDULER"
    RESUME, OUTPUT_FORMAT = "RESUME", "OUTPUT_FORMAT"
    WINDOW, WINDOW_PARAMETER = "WINDOW", "WINDOW_PARAMETER"
    BANDS, SCALE, OFFSET = "BANDS", "SCALE", "OFFSET"
    OUTPUT_GRID = "OUTPUT_GRID"
    # One sentence per parameter: the Toolbox dialog's tooltips, the panel's tooltips and `qgis_process help`.
    parameter_help: dict[str, str] = {}
    shared_help = {
        BANDS: "The input bands fed to the model, in the model's order; empty: all.",
        SCALE: "Input values are multiplied by this: 1/255 for 8-bit imagery and Deepness models.",
        OFFSET: "…then this is added.",
        WORKERS: "Blocks, tiles or chip files handled at once, on threads of this computer; 0 uses every core. "
                 "The result is the same for any number.",
        DEVICE: "Where ONNX models compute: auto takes a GPU when onnxruntime has one (CUDA, DirectML, CoreML), "
                "else the CPU; the log says which.",
        DASK_SCHEDULER: "The address of a Dask scheduler (tcp://host:8786) to compute the blocks or tiles on a "
                        "cluster; empty: this computer.",
        RESUME: "Keep finished blocks (or groups of tiles) in a journal beside the output, so that the same run "
                "started again after a crash continues where it stopped.",
        OUTPUT_GRID: "model: the outputs on the resampled grid; input: brought back to the raster's grid (nearest "
                     "for classes, average for values).",
        OUTPUT_FORMAT: "GeoTIFF, or a Cloud-optimised GeoTIFF with overviews (mode for classes, average for "
                       "values).",
        # Parameters several algorithms have, in their own words
        "OVERWRITE": "Replace the chip dataset already in the chip folder, as a whole; without it, such a folder is "
                     "refused.",
        "SEED": "The same seed gives the same result.",
        WINDOW_PARAMETER: "Tukey's alpha (the tapered share of the tile: 0 is boxcar, 1 is Hann) or the Gaussian's "
                          "sigma (in half tiles); empty: 0.5. The other windows take none.",
    }

    def addParameter(self, definition, createOutput=True):  # noqa: N802, N803 - QGIS API names
        """Every parameter gets its help sentence here, from `parameter_help` (or `shared_help`)."""
        text = self.parameter_help.get(definition.name()) or self.shared_help.get(definition.name())
        if text:
            definition.setHelp(self.tr(text))
        return super().addParameter(definition, createOutput)

    ID = ""  # "patchwork:<name>", on each algorithm

    def name(self) -> str:
        return self.ID.split(":", 1)[1]

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

    def shortDescription(self) -> str:  # noqa: N802 - QGIS API name
        """The help's first sentence, as the Toolbox shows under the algorithm's name and in its tooltip."""
        text = re.sub(r"<[^>]+>", "", help_text(self.name())).strip()
        return re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]

    def file_raster(self, parameters, name: str, context):
        """The raster layer of parameter `name` (or None), which the GDAL-based core can read as a file."""
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is not None and layer.providerType() != "gdal":
            raise QgsProcessingException(self.tr(
                "{}: '{}' is not a file raster (provider {}). Save it as a GeoTIFF first (Export ▸ Save As)."
            ).format(name, layer.name(), layer.providerType()))
        return layer

    def mask_polygons(self, parameters, name: str, crs, context):
        """The polygons of parameter `name` (a feature source) as the core's Aoi in `crs`, or None when not set."""
        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            return None
        from ...core.io.aoi import Aoi
        from ..layers import geometries_in_crs

        wkts, crs_wkt, _values = geometries_in_crs(source, crs, context.transformContext())
        return self.run_core(Aoi, wkts, crs_wkt, name)

    def add_model_input_parameters(self) -> None:
        """BANDS, SCALE and OFFSET: which bands of INPUT a model sees and how their values are mapped."""
        self.addParameter(QgsProcessingParameterBand(
            self.BANDS, self.tr("Bands fed to the model, in its order (default: all)"), None, "INPUT",
            optional=True, allowMultiple=True))
        self.addParameter(QgsProcessingParameterNumber(self.SCALE, self.tr("Scale input values by"),
                                                       qgis_enums.DOUBLE, 1.0))
        self.addParameter(QgsProcessingParameterNumber(self.OFFSET, self.tr("Then add to input values"),
                                                       qgis_enums.DOUBLE, 0.0))

    def model_input_arguments(self, parameters, context) -> dict:
        """The core's keyword arguments for the parameters `add_model_input_parameters` added."""
        return {"bands": band_list(self, parameters, self.BANDS, context),
                "scale": self.parameterAsDouble(parameters, self.SCALE, context),
                "offset": self.parameterAsDouble(parameters, self.OFFSET, context)}

    def add_window_parameters(self, default: str = "boxcar") -> None:
        """WINDOW (how overlapping tiles are weighted) and its WINDOW_PARAMETER (advanced, optional)."""
        self.addParameter(EnumParameter(self.WINDOW, self.tr("Blending window"), WINDOWS,
                                        default=list(WINDOWS).index(default)))
        self.addParameter(QgsProcessingParameterNumber(
            self.WINDOW_PARAMETER, self.tr("Window parameter (Tukey's alpha, the Gaussian's sigma; empty: 0.5)"),
            qgis_enums.DOUBLE, None, optional=True, minValue=0.0))
        self.mark_advanced(self.WINDOW_PARAMETER)

    def window_argument(self, parameters, context) -> str:
        """The core's window: its word, with its parameter when one is given ('tukey(0.25)')."""
        word = self.word(parameters, self.WINDOW, context)
        if parameters.get(self.WINDOW_PARAMETER) in (None, ""):
            return word
        return f"{word}({self.parameterAsDouble(parameters, self.WINDOW_PARAMETER, context)!r})"

    def add_workers_parameter(self) -> None:
        """WORKERS (advanced, optional: models and scripts saved before it existed keep working)."""
        self.addParameter(QgsProcessingParameterNumber(
            self.WORKERS, self.tr("Worker threads (not set or 0: every core)"), qgis_enums.INTEGER, 0, optional=True,
            minValue=0, maxValue=1024))
        self.mark_advanced(self.WORKERS)

    def add_scheduler_parameter(self) -> None:
        """DASK_SCHEDULER (advanced, optional)."""
        self.addParameter(QgsProcessingParameterString(
            self.DASK_SCHEDULER, self.tr("Dask scheduler address (e.g. tcp://host:8786; empty: this computer)"),
            optional=True))
        self.mark_advanced(self.DASK_SCHEDULER)

    def add_output_grid_parameter(self) -> None:
        """OUTPUT_GRID: a map made on a resampled grid stays there or comes back to the raster's (optional)."""
        self.addParameter(EnumParameter(self.OUTPUT_GRID, self.tr("Grid of the outputs"), ["model", "input"],
                                        optional=True))

    def add_resume_parameter(self) -> None:
        """RESUME (advanced, optional)."""
        self.addParameter(QgsProcessingParameterBoolean(
            self.RESUME, self.tr("Resumable: keep finished blocks so a crashed run continues"), False, optional=True))
        self.mark_advanced(self.RESUME)

    def add_executor_parameters(self) -> None:
        """WORKERS, DASK_SCHEDULER and RESUME: where the work runs, and a journal of it (advanced, optional)."""
        self.add_workers_parameter()
        self.add_scheduler_parameter()
        self.add_resume_parameter()

    def executor_arguments(self, parameters, context) -> dict:
        """The core's keyword arguments for WORKERS, DASK_SCHEDULER and RESUME."""
        return {"workers": self.parameterAsInt(parameters, self.WORKERS, context),
                "scheduler": self.parameterAsString(parameters, self.DASK_SCHEDULER, context).strip() or None,
                "resume": self.parameterAsBool(parameters, self.RESUME, context)}

    def add_scale_parameters(self, *, cluster: bool) -> None:
        """WORKERS and OUTPUT_FORMAT (classify and stitch); with `cluster`, DEVICE, DASK_SCHEDULER and RESUME.

        All optional with defaults: models and scripts saved before they existed keep working.
        """
        self.add_workers_parameter()
        if cluster:
            self.addParameter(EnumParameter(self.DEVICE, self.tr("Device for ONNX models"), DEVICES, optional=True))
            self.add_scheduler_parameter()
            self.add_resume_parameter()
        self.addParameter(EnumParameter(self.OUTPUT_FORMAT, self.tr("Output format"), OUTPUT_FORMATS,
                                        OUTPUT_FORMAT_NAMES, optional=True))
        self.mark_advanced(self.OUTPUT_FORMAT, *((self.DEVICE,) if cluster else ()))

    def scale_arguments(self, parameters, context, *, cluster: bool) -> dict:
        """The core's keyword arguments for the parameters `add_scale_parameters` added."""
        if not cluster:
            return {"workers": self.parameterAsInt(parameters, self.WORKERS, context),
                    "output_format": self.word(parameters, self.OUTPUT_FORMAT, context)}
        return {**self.executor_arguments(parameters, context),
                "output_format": self.word(parameters, self.OUTPUT_FORMAT, context),
                "device": self.word(parameters, self.DEVICE, context)}

    def word(self, parameters, name: str, context) -> str:
        """The core's word for an EnumParameter, given as an index or as the word."""
        definition = self.parameterDefinition(name)
        value = definition.index_of(parameters.get(name))
        return definition.words[self.parameterAsEnum({**parameters, name: value}, name, context)]

    def mark_advanced(self, *names: str) -> None:
        for name in names:
            param = self.parameterDefinition(name)
            param.setFlags(param.flags() | qgis_enums.PARAMETER_ADVANCED)

    def core_call(self, parameters, context) -> CoreCall:
        """The core function this algorithm runs and its arguments, read from `parameters` (no feedback)."""
        raise NotImplementedError

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        """Reads every parameter, layers and their features included, into `self.call`. QGIS calls this on the
        main thread; processAlgorithm may run on a worker thread, where reading a project's layers can crash
        QGIS (it did, in the panel's background runs)."""
        self.call = self.read_parameters(parameters, context, feedback)
        return True

    def read_parameters(self, parameters, context, feedback=None) -> CoreCall:
        """`core_call`, with any error turned into the message Processing shows."""
        try:
            self.check_outputs_spare_inputs(parameters, context)
            return self.core_call(parameters, context)
        except QgsProcessingException:
            raise
        except Exception as exc:  # noqa: BLE001 - the user gets a message, the log a traceback
            raise QgsProcessingException(self.error_message(exc, feedback)) from exc

    def run_call(self, call: CoreCall, feedback):
        """Run a `core_call` with progress and cancel; returns the core's result."""
        return self.run_core(call.function, *call.args, **call.kwargs, feedback=ProcessingFeedback(feedback))

    def checkParameterValues(self, parameters, context):  # noqa: N802 - QGIS API name
        """QGIS's checks, then the core's own before-any-work checks (`check_only`): the dialog, the modeler,
        qgis_process and processing.run refuse bad input before the run starts, with the run's own message."""
        for definition in self.parameterDefinitions():
            refusal = definition.refusal(parameters.get(definition.name())) \
                if isinstance(definition, EnumParameter) else ""
            if refusal:
                return False, refusal
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        try:
            self.check_outputs_spare_inputs(parameters, context)
            call = self.core_call(parameters, context)
            call.function(*call.args, **call.kwargs, check_only=True)
        except Exception as exc:  # noqa: BLE001 - every refusal becomes the message the run would give
            return False, self.error_message(exc)
        return True, ""

    def canExecute(self):  # noqa: N802 - QGIS API name
        """False, with the installer hint, when an optional package the algorithm always needs is missing."""
        from ...core.dependencies import missing_packages

        missing = missing_packages(self.required_packages)
        return (False, missing) if missing else (True, "")

    def error_message(self, exc: BaseException, feedback: QgsProcessingFeedback | None = None) -> str:
        """What the user reads for an error of the core or of parameter reading (tracebacks go to the log)."""
        from ...core.errors import Cancelled, PatchworkError, explain

        if isinstance(exc, PatchworkError):
            return str(exc)
        if isinstance(exc, (Cancelled, KeyboardInterrupt)):
            return self.tr("Cancelled: nothing was written.")
        if isinstance(exc, QgsProcessingException):
            return str(exc)
        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        QgsMessageLog.logMessage(details, "Patchwork", Qgis.MessageLevel.Critical)
        if feedback is not None:
            feedback.pushDebugInfo(details)
        mapped = explain(exc)
        if mapped is not None:
            return str(mapped)
        return self.tr(
            "{} stopped on an unexpected error ({}: {}). Nothing was written. This is a fault in Patchwork, "
            "not in your data: please report it with the traceback from the log (View ▸ Panels ▸ Log Messages "
            "▸ Patchwork)."
        ).format(self.displayName(), type(exc).__name__, exc)

    def run_core(self, function, *args, **kwargs):
        """Call the core, turning every error into a message Processing shows."""
        feedback = getattr(kwargs.get("feedback"), "feedback", None)
        try:
            with interrupts_cancel(feedback):
                return function(*args, **kwargs)
        except QgsProcessingException:
            raise
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the user gets a message, the log a traceback
            raise QgsProcessingException(self.error_message(exc, feedback)) from exc

    def check_outputs_spare_inputs(self, parameters, context) -> None:
        """Refuse a run where an output file is a file a layer or file parameter reads: the one place that knows
        every input layer (a MASK, LOCATIONS points, a QUERY image), whatever the core is told."""
        from ...core.io.paths import check_outputs

        outputs, inputs = {}, {}
        for definition in self.parameterDefinitions():
            name = definition.name()
            if definition.isDestination():
                outputs[name] = self.destination_path(parameters, definition)
            elif definition.type() in _FILE_INPUT_TYPES:
                inputs[name] = self.input_files(parameters, definition, context)
        check_outputs(outputs, inputs)

    @staticmethod
    def destination_path(parameters, definition) -> str | None:
        """The file an output parameter names, read without asking QGIS to create or load anything."""
        value = parameters.get(definition.name(), definition.defaultValue())
        if definition.type() == "folderDestination" or value is None:
            return None
        sink = getattr(value, "sink", None)  # QgsProcessingOutputLayerDefinition
        if sink is not None:
            value = sink.staticValue()
        text = str(value or "")
        return None if not text or text == "TEMPORARY_OUTPUT" or text.startswith(("memory:", "ogr:", "postgres"))\
            else text

    def input_files(self, parameters, definition, context) -> list[str]:
        """The local files behind an input parameter: its layer(s)' sources, or its file."""
        from ...core.io.paths import file_of_source

        name = definition.name()
        if parameters.get(name) in (None, ""):
            return []
        if definition.type() == "file":
            paths = [self.parameterAsFile(parameters, name, context)]
        elif definition.type() == "multilayer":
            paths = [layer.source() for layer in self.parameterAsLayerList(parameters, name, context)]
        else:
            layer = self.parameterAsLayer(parameters, name, context)
            value = parameters.get(name)
            paths = [layer.source() if layer is not None else str(getattr(getattr(value, "source", None),
                                                                          "staticValue", lambda: value)())]
        return [p for p in (file_of_source(path or "") for path in paths) if p and os.path.exists(p)]

    def layer_file(self, parameters, name: str, context) -> str | None:
        """The local file behind a layer parameter (for the check that no output overwrites it)."""
        from ...core.io.paths import file_of_source

        value = parameters.get(name)
        if value is None or value == "":
            return None
        layer = self.parameterAsLayer(parameters, name, context)
        source = layer.source() if layer is not None else str(value)
        path = file_of_source(source)
        return path if path and os.path.exists(path) else None


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

