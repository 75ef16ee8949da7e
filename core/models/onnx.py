"""ONNX models through onnxruntime: image models [N, C, H, W] and per-pixel tabular models [N, C].

Image models follow the Deepness model format: metadata in `metadata_props`, each value
JSON-encoded — `model_type`, `class_names`, `tile_size` (or `tiles_size`, as Deepness's docs spell
it), `tiles_overlap` (percent), `standardization_mean` / `standardization_std`, `reg_output_scaling`.
Patchwork reads its own keys under a `patchwork:` prefix: `receptive_margin` (px), `output_activation`
(`probabilities` or `logits`), `class_values`, `class_colors` and, for per-pixel models, `max_batch_pixels`. Tabular
models are what skl2onnx exports from scikit-learn: a label output and probabilities, as a tensor or as
ZipMap dictionaries.
"""
from __future__ import annotations

import ast
import json
import math
import os
import re

import numpy as np

from ..dependencies import install_hint, require
from ..errors import PatchworkError, one_line
from .base import Model, ModelInfo, PixelModel, default_class_names, value_names, whole_class_values


def _onnxruntime():
    return require("onnxruntime", "ONNX models")


def _meta_int(meta: dict, key: str, default: int, low: int, high: int, name: str) -> int:
    """A whole-number metadata value within [low, high] (empty: `default`), else a message naming the key."""
    value = meta.get(key)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number.is_integer() and low <= number <= high):
        raise PatchworkError(f"MODEL: '{name}' has {key} = {str(value)[:40]!r} in its metadata; it must be a whole "
                             f"number from {low:,} to {high:,}. Fix the model's metadata.")
    return int(number)


def _parse(value: str):
    """A metadata value: JSON as Deepness writes it, else a Python literal (its legacy files), else the text."""
    if len(value) > 1_000_000:  # metadata is a few numbers and names; a huge value is not ours to parse
        return value
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return value


def _fixed(dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


ONNX_INPUT_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64"}


def _input_dtype(inp, name: str) -> str:
    if inp.type not in ONNX_INPUT_TYPES:
        raise PatchworkError(f"MODEL: '{name}' takes {inp.type} input; Patchwork feeds float or double pixels. "
                             "Export it with a FloatTensorType input.")
    return ONNX_INPUT_TYPES[inp.type]


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _read_input_metadata(meta: dict, info: ModelInfo) -> None:
    """What the model expects of its input.

    standardization_mean / standardization_std (both, per band or one for all, applied after SCALE and OFFSET) and
    its `resolution` (cm per pixel).
    """
    mean, std = meta.get("standardization_mean"), meta.get("standardization_std")
    if mean is not None and std is not None:
        info.mean, info.std = [float(v) for v in np.atleast_1d(mean)], [float(v) for v in np.atleast_1d(std)]
    if meta.get("resolution") is not None:
        info.resolution_cm = float(meta["resolution"])
    if meta.get("patchwork:input_scale") is not None:  # what a model Patchwork trained was fed
        info.input_scale = float(meta["patchwork:input_scale"])
        info.input_offset = float(meta.get("patchwork:input_offset") or 0.0)
    names = meta.get("patchwork:band_names")
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        info.band_names = list(names)


DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
CPU = "CPUExecutionProvider"
GPU_PROVIDERS = ("CUDAExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider")  # auto's preference


def execution_providers(device: str, available: list[str]) -> tuple[list[str], str | None]:
    """The onnxruntime providers for DEVICE, given the ones this onnxruntime build offers, and a warning.

    cpu: CPU only. cuda: CUDA then CPU (CPU with a warning when this onnxruntime has no CUDA). auto: the
    first GPU provider available (CUDA, DirectML, CoreML), then CPU.
    """
    if device not in DEVICES:
        raise PatchworkError(f"DEVICE: '{device}' is not one of {', '.join(DEVICES)}.")
    if device == "cpu":
        return [CPU], None
    if device == "cuda":
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", CPU], None
        return [CPU], ("DEVICE cuda: this onnxruntime has no CUDA provider (it offers " + ", ".join(available) +
                       "); running on the CPU. Install onnxruntime-gpu with a matching CUDA to use the GPU.")
    gpu = next((p for p in GPU_PROVIDERS if p in available), None)
    return ([gpu, CPU] if gpu else [CPU]), None


def _session(ort, path: str, providers: list[str], threads: int | None):
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads  # workers × threads ≤ cores
    if threads and threads > 1:
        # Threads that sleep between a model's operators instead of spinning: spinning took the cores the reader
        # and the writer need (WORKERS=1 on 2 cores: 1.3-1.6x the CPU time, and slower) and QGIS's own.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, sess_options=options, providers=providers)


DEEPNESS_TYPES = {"segmentation": "Segmentor", "regression": "Regressor", "detection": "Detector",
                  "superresolution": "Superresolution", "recognition": "Recognition"}  # MODEL_TYPE → model_type


def load_onnx(path: str, device: str = "cpu", threads: int | None = None, head: int = 0, model_type: str = "auto",
              threshold: float | None = None) -> Model:
    """Load an ONNX model on DEVICE (see `execution_providers`), with `threads` intra-op threads (None: all cores).

    `head`: which output of an image model with several (each its own class map or values) this model gives.
    `model_type`: "auto" (its metadata, else its shapes) or what it is (DEEPNESS_TYPES), as the user says it.
    `threshold`: a one-sigmoid model's class starts where p > threshold (instead of its seg_thresh, or 0.5).
    """
    if model_type != "auto" and model_type not in DEEPNESS_TYPES:
        raise PatchworkError(f"MODEL_TYPE: '{model_type}' is not one of auto, {', '.join(DEEPNESS_TYPES)}.")
    ort = _onnxruntime()
    name = os.path.basename(path)
    providers, warning = execution_providers(device, list(ort.get_available_providers()))
    try:
        try:
            session = _session(ort, path, providers, threads)
        except Exception as exc:  # noqa: BLE001 - a GPU session can fail for driver reasons: fall back to CPU
            if providers == [CPU]:
                raise
            warning = f"DEVICE {device}: {providers[0]} could not start ({one_line(exc)[:300]}); running on the CPU."
            session = _session(ort, path, [CPU], threads)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types for bad files
        text = one_line(exc)
        if re.search(r"IR version|opset", text, re.IGNORECASE):
            raise PatchworkError(
                f"MODEL: '{name}' was saved for a newer onnxruntime than the installed {ort.__version__} ({text}). "
                "Update onnxruntime (" + install_hint(["onnxruntime"]) + ") or export the model again with an "
                "older opset, e.g. skl2onnx target_opset=17 or torch.onnx.export(opset_version=17)."
            ) from exc
        raise PatchworkError(f"MODEL: '{name}' is not a valid ONNX model ({text}). "
                             "Export it again, or check the file was copied completely.") from exc
    try:
        meta = {key: _parse(value) for key, value in session.get_modelmeta().custom_metadata_map.items()}
    except UnicodeDecodeError as exc:
        raise PatchworkError(f"MODEL: '{name}' has metadata that is not UTF-8 text ({exc.reason} at byte "
                             f"{exc.start}); write its metadata as UTF-8 (Deepness's format is JSON text).") from exc
    if model_type != "auto":  # the user's word wins over the file's, as in Deepness's dialog
        meta["model_type"] = DEEPNESS_TYPES[model_type]
    if threshold is not None:
        meta["patchwork:threshold"] = threshold
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise PatchworkError(f"MODEL: '{name}' takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                             "Patchwork feeds a model one input, the raster's pixels. Export it with a single input.")
    rank = len(inputs[0].shape)
    try:
        if rank == 4 and is_detector(session, meta):
            return _on_device(OnnxDetector(session, meta, name), session, warning)
        if rank == 4 and is_embedder(session, meta):
            return _on_device(OnnxEmbedder(session, meta, name), session, warning)
        if rank == 4:
            return _on_device(OnnxImageModel(session, meta, name, head), session, warning)
        if rank == 2:
            return _on_device(OnnxPixelModel(session, meta, name), session, warning)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        keys = ", ".join(sorted(meta)) or "none"
        raise PatchworkError(f"MODEL: '{name}' has metadata Patchwork cannot read ({exc}); its keys: {keys}. Fix the "
                             "values (numbers where numbers are expected, class_names as {index: name}).") from exc
    raise PatchworkError(f"MODEL: '{name}' takes a rank-{rank} input {session.get_inputs()[0].shape}; Patchwork "
                         "runs image models [batch, bands, height, width] and per-pixel models [pixels, bands].")


def _on_device(model: Model, session, warning: str | None) -> Model:
    providers = session.get_providers()
    model.device = "CPU" if providers[0] == CPU else providers[0].replace("ExecutionProvider", "")
    model.device_warning = warning
    return model


def _class_names(meta: dict, count: int | None, name: str, head: int = 0) -> list[str] | None:
    """Deepness `class_names`: a dict {index: name}, or a list of such dicts (one per output head)."""
    names = meta.get("class_names", meta.get("names"))
    if names is None:
        return None
    if isinstance(names, list) and names and isinstance(names[0], dict):
        if head >= len(names):
            return None  # this head has no names in the metadata
        names = names[head]
    if isinstance(names, list):
        names = dict(enumerate(names))
    try:
        names = {int(k): str(v) for k, v in names.items()}
    except (AttributeError, ValueError) as exc:
        raise PatchworkError(f"MODEL: '{name}' has unreadable class_names metadata {names!r}.") from exc
    if sorted(names) != list(range(len(names))) or (count is not None and count > 1 and len(names) != count):
        raise PatchworkError(f"MODEL: the class_names of '{name}' ({names}) do not number the model's "
                             f"{count} outputs 0..{(count or len(names)) - 1}.")
    return [names[i] for i in range(len(names))]


def is_map_output(output, inp) -> bool:
    """Whether `output` is a map [N, H, W], not boxes.

    Its last two dimensions are the input tile's: the same sizes, or the same named free sizes.
    """
    return len(output.shape) >= 3 and len(inp.shape) == 4 and all(
        isinstance(a, (int, str)) and a not in ("", 0) and a == b for a, b in zip(output.shape[-2:], inp.shape[-2:]))


def is_detector(session, meta: dict) -> bool:
    """Deepness's model_type Detector; without metadata, a float output of rank 3 (YOLO's boxes) that is not a map.

    The order, as documented in the README: `model_type` metadata decides; else an output whose last two dimensions
    equal the input tile's is a map (one sigmoid channel [N, H, W]); else a rank-3 float output is boxes.
    """
    model_type = meta.get("model_type")
    if model_type is not None:
        return str(model_type).capitalize() == "Detector"
    out, inp = session.get_outputs()[0], session.get_inputs()[0]
    return len(out.shape) == 3 and out.type == "tensor(float)" and not is_map_output(out, inp)


def _in_fixed_batches(session, input_name: str, output_name: str, batch: np.ndarray, fixed: int | None) -> np.ndarray:
    """The model's output for `batch`, all at once or in the batch size the model fixes.

    The last chunk of a fixed batch is padded with zeros, and the padding's outputs dropped.
    """
    step = fixed or len(batch)
    parts = []
    for start in range(0, len(batch), step):
        chunk = batch[start : start + step]
        n = len(chunk)
        if fixed and n < fixed:
            chunk = np.concatenate([chunk, np.zeros((fixed - n, *chunk.shape[1:]), chunk.dtype)])
        parts.append(session.run([output_name], {input_name: chunk})[0][:n])
    return np.concatenate(parts)


def is_embedder(session, meta: dict) -> bool:
    """Deepness's model_type Recognition, or an image model whose output is one vector per tile [N, D]."""
    if str(meta.get("model_type", "")).capitalize() == "Recognition":
        return True
    out = session.get_outputs()[0]
    return len(out.shape) == 2 and out.type == "tensor(float)"


class OnnxEmbedder(Model):
    """A recognition model: an image tile in, a feature vector (embedding) out, compared with a query's."""

    def __init__(self, session, meta: dict, name: str) -> None:
        self.session = session
        inp, out = session.get_inputs()[0], session.get_outputs()[0]
        self.input_name, self.output_name = inp.name, out.name
        batch, channels, height, width = (_fixed(d) for d in inp.shape)
        if (height is None) != (width is None) or (height and height != width):
            raise PatchworkError(f"MODEL: '{name}' takes {inp.shape[2]}x{inp.shape[3]} tiles; Patchwork runs square "
                                 "tiles (both sides fixed and equal, or both free).")
        tile = height or _fixed(meta.get("tile_size", meta.get("tiles_size"))) or 224
        info = ModelInfo(name=name, task="recognition", n_bands=channels, tile_size=height, default_tile_size=tile,
                         default_overlap=round(tile * float(meta.get("tiles_overlap", 0)) / 100), batch_size=batch,
                         unit_range_input=True, input_dtype=_input_dtype(inp, name))
        _read_input_metadata(meta, info)
        info.output_names = ["similarity"]
        self.info = info

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """(N, D) vectors of a batch of tiles (N, C, h, w), in the batch sizes the model takes."""
        out = _in_fixed_batches(self.session, self.input_name, self.output_name, batch, self.info.batch_size)
        return out.reshape(len(batch), -1).astype(np.float64)


class OnnxDetector(Model):
    """A YOLO-style detector: image tiles in, boxes out.

    Boxes come as [N, boxes, 5 + classes] (YOLOv5/v7: centre x, y, width, height, objectness, class scores) or
    [N, 4 + classes, boxes] (YOLOv8/v11: no objectness).
    """

    def __init__(self, session, meta: dict, name: str) -> None:
        self.session = session
        inp, out = session.get_inputs()[0], session.get_outputs()[0]
        self.input_name, self.output_name = inp.name, out.name
        if len(out.shape) != 3:
            raise PatchworkError(f"MODEL: '{name}' is a detector with a {out.type} output of shape {out.shape}; "
                                 "Patchwork reads YOLO boxes as [batch, boxes, 5 + classes] (YOLOv5/v7) or "
                                 "[batch, 4 + classes, boxes] (YOLOv8/v11).")
        batch, channels, height, width = (_fixed(d) for d in inp.shape)
        names = _class_names(meta, None, name)
        dims = [_fixed(d) for d in out.shape]
        det_type = str(meta.get("det_type", "")).lower()
        if "ultralytics" in det_type or "v8" in det_type or "v11" in det_type:
            self.layout = "v8"
        elif det_type:
            self.layout = "v5"
        elif names and dims[1] == 4 + len(names):
            self.layout = "v8"
        elif names and dims[2] == 5 + len(names):
            self.layout = "v5"
        elif dims[1] and dims[2]:
            self.layout = "v8" if dims[1] < dims[2] else "v5"  # a few channels and many boxes, or the other way
        else:
            raise PatchworkError(f"MODEL: '{name}' gives boxes of shape {out.shape}; with free sizes Patchwork needs "
                                 "its class_names (or det_type) metadata to tell YOLOv5 [N, boxes, 5 + classes] from "
                                 "YOLOv8 [N, 4 + classes, boxes].")
        per_box = dims[2] if self.layout == "v5" else dims[1]
        count = (per_box - (5 if self.layout == "v5" else 4)) if per_box else (len(names) if names else None)
        if count is None or count < 1 or (names and len(names) != count):
            raise PatchworkError(f"MODEL: '{name}' gives boxes of shape {out.shape}, which hold {count} class scores "
                                 f"as {self.layout.upper()}, but its class_names has {len(names or [])}.")
        self.stride = _meta_int(meta, "patchwork:stride", 32, 1, 4096, name)
        tile = height or _fixed(meta.get("tile_size", meta.get("tiles_size"))) or 640
        info = ModelInfo(name=name, task="detection", n_bands=channels, tile_size=height, default_tile_size=tile,
                         default_overlap=round(tile * float(meta.get("tiles_overlap", 15)) / 100), batch_size=batch,
                         unit_range_input=True, input_dtype=_input_dtype(inp, name))
        _read_input_metadata(meta, info)
        info.class_values = list(range(count))
        info.class_names = names or default_class_names(info.class_values)
        self.confidence = float(meta.get("det_conf", 0.3))
        self.iou = float(meta.get("det_iou_thresh", 0.5))
        self.info = info

    def boxes(self, batch: np.ndarray) -> list[np.ndarray]:
        """Per tile, its boxes as rows (x0, y0, x1, y1, score, class) in tile pixels, all scores kept."""
        raw = _in_fixed_batches(self.session, self.input_name, self.output_name, batch,
                                self.info.batch_size).astype(np.float64)
        if self.layout == "v8":
            raw = raw.transpose(0, 2, 1)  # [N, boxes, 4 + classes]
            scores = raw[:, :, 4:]
        else:
            scores = raw[:, :, 5:] * raw[:, :, 4:5]  # class score × objectness
        classes = scores.argmax(axis=2)
        best = np.take_along_axis(scores, classes[:, :, None], axis=2)[:, :, 0]
        cx, cy, w, h = (raw[:, :, i] for i in range(4))
        rows = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, best, classes], axis=2)
        return list(rows)


class OnnxImageModel(Model):
    """An ONNX model over image tiles (Deepness's conventions read from its metadata)."""
    def __init__(self, session, meta: dict, name: str, head: int = 0) -> None:
        self.session = session
        self.one_at_a_time = False  # set when the graph turns out to take one tile per call
        outputs = session.get_outputs()
        if not 0 <= head < len(outputs):
            raise PatchworkError(f"MODEL: '{name}' has {len(outputs)} output head(s); head {head} does not exist.")
        inp, out = session.get_inputs()[0], outputs[head]
        self.input_name, self.output_name = inp.name, out.name
        batch, channels, height, width = (_fixed(d) for d in inp.shape)
        if (height is None) != (width is None) or (height and height != width):
            raise PatchworkError(f"MODEL: '{name}' takes {inp.shape[2]}x{inp.shape[3]} tiles; Patchwork runs square "
                                 "tiles (both sides fixed and equal, or both free).")
        model_type = str(meta.get("model_type", "Segmentor")).capitalize()
        out_dims = [_fixed(d) for d in out.shape]
        factor = meta.get("scale_factor")
        if factor is None and height and len(out_dims) == 4 and out_dims[-1] and out_dims[-1] > height \
                and out_dims[-1] % height == 0:
            factor = out_dims[-1] // height  # a larger output than input: super-resolution
        if model_type == "Superresolution" or factor is not None:
            if factor is None or int(factor) < 2:
                raise PatchworkError(f"MODEL: '{name}' is a super-resolution model whose scale factor Patchwork "
                                     f"cannot tell (input {inp.shape}, output {out.shape}); add scale_factor "
                                     "metadata.")
            model_type = "Superresolution"
        if model_type not in ("Segmentor", "Regressor", "Superresolution"):
            raise PatchworkError(f"MODEL: '{name}' is a Deepness '{model_type}' model; Patchwork runs segmentation "
                                 "(Segmentor), regression (Regressor), super-resolution and detection models.")
        self.labels_out = len(out.shape) == 3 and "int" in out.type
        # A float [N, H, W] output is one sigmoid channel, as Deepness reads it (its [N, 1, H, W] form too).
        self.one_channel_map = len(out.shape) == 3 and not self.labels_out
        channels_out = 1 if len(out.shape) == 3 else out_dims[1]
        margin = int(meta.get("patchwork:receptive_margin", 0))
        if height and out_dims[-1] and out_dims[-1] < height:
            margin = max(margin, (height - out_dims[-1]) // 2)
        self.activation = str(meta.get("patchwork:output_activation", "probabilities"))
        if self.activation not in ("probabilities", "logits"):
            raise PatchworkError(f"MODEL: '{name}' declares patchwork:output_activation '{self.activation}'; "
                                 "use 'probabilities' or 'logits'.")
        self.reg_scaling = float(meta.get("reg_output_scaling", 1.0))
        tile = height or _fixed(meta.get("tile_size", meta.get("tiles_size"))) or 512
        info = ModelInfo(
            name=name, n_bands=channels, tile_size=height, default_tile_size=tile,
            default_overlap=round(tile * float(meta.get("tiles_overlap", 0)) / 100), margin=margin,
            batch_size=batch, unit_range_input=True, input_dtype=_input_dtype(inp, name),
        )
        _read_input_metadata(meta, info)
        info.min_segment = _meta_int(meta, "seg_small_segment", 0, 0, 2**31 - 1, name)
        info.heads, info.head = [o.name for o in outputs], head
        if model_type == "Superresolution":
            info.task, info.scale_factor = "superresolution", int(factor)
            info.output_names = value_names(channels_out or channels or 1)
            info.margin = 0
            self.info = info
            return
        if model_type == "Regressor":
            info.task = "regression"
            info.output_names = value_names(channels_out)
        else:
            self._read_classes(info, meta, name, channels_out, head)
        self.info = info

    def _read_classes(self, info: ModelInfo, meta: dict, name: str, channels_out: int | None, head: int) -> None:
        """A segmentation model's classes: its names and values, and for one sigmoid, where its class starts."""
        names = _class_names(meta, channels_out, name, head)
        one_sigmoid = channels_out == 1 and not self.labels_out
        if meta.get("patchwork:threshold") is not None and not one_sigmoid:
            raise PatchworkError(f"THRESHOLD: '{name}' gives {channels_out or 'several'} class scores, not one "
                                 "sigmoid; a threshold applies to one-class models (class vs background). "
                                 "Leave THRESHOLD empty.")
        if one_sigmoid:  # one sigmoid: the class vs background
            names = ["background", names[0] if names else "class 1"]
            channels_out = 2
            threshold = meta.get("patchwork:threshold", meta.get("seg_thresh"))
            if threshold is not None:  # the class where p > t: argmax of (1 − p)·t, p·(1 − t)
                threshold = float(threshold)
                if not 0.0 < threshold < 1.0:
                    raise PatchworkError(f"THRESHOLD: '{name}' would start its class at p > {threshold}; a "
                                         "sigmoid's threshold lies between 0 and 1.")
                info.decision_weights = [threshold, 1.0 - threshold]
        count = channels_out or (len(names) if names else None)
        if count is None:
            raise PatchworkError(f"MODEL: '{name}' has a free number of output classes and no class_names "
                                 "metadata; add class_names so Patchwork knows the classes.")
        info.class_values = whole_class_values(meta.get("patchwork:class_values", range(count)),
                                               f"'{info.name}' (patchwork:class_values)")
        info.class_names = names or default_class_names(info.class_values)
        colours = meta.get("patchwork:class_colors")  # (a network trained by Patchwork carries its labels' colours)
        if isinstance(colours, list) and len(colours) == len(info.class_values):
            info.class_colors = [str(c) for c in colours]

    def _run(self, batch: np.ndarray) -> np.ndarray:
        fixed = self.info.batch_size
        if fixed is None and len(batch) > 1 and not self.one_at_a_time:
            try:
                return self.session.run([self.output_name], {self.input_name: batch})[0]
            except Exception:  # noqa: BLE001 - a graph may fix batch 1 inside while its input says "any"
                self.one_at_a_time = True  # the next line says whether tile by tile works
        if fixed is None and self.one_at_a_time:
            return np.concatenate([self._call(batch[i : i + 1]) for i in range(len(batch))])
        if fixed is None or len(batch) == fixed:
            return self._call(batch)
        parts = []
        for start in range(0, len(batch), fixed):
            chunk = batch[start : start + fixed]
            n = len(chunk)
            if n < fixed:  # a fixed-batch model gets a full batch; the padding rows are dropped
                chunk = np.concatenate([chunk, np.zeros((fixed - n, *chunk.shape[1:]), chunk.dtype)])
            parts.append(self._call(chunk)[:n])
        return np.concatenate(parts)

    def _call(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self.session.run([self.output_name], {self.input_name: batch})[0]
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise PatchworkError(
                f"MODEL: '{self.info.name}' failed on a batch of {len(batch)} tile(s) of {batch.shape[1]} bands x "
                f"{batch.shape[2]} x {batch.shape[3]} px: {one_line(exc)[:400]}. Check TILE_SIZE and BANDS match "
                "what the model was exported for."
            ) from exc

    def predict(self, batch: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Run the model on a batch of tiles (in the sizes its input takes)."""
        size, m = batch.shape[-1], self.info.margin
        out = self._run(batch)
        if self.one_channel_map:
            out = out[:, None]  # [N, H, W] → [N, 1, H, W]
        if self.info.task == "superresolution":
            expected = size * self.info.scale_factor
            if out.shape[-2:] != (expected, expected):
                raise PatchworkError(f"MODEL: '{self.info.name}' returned {out.shape[-2]}x{out.shape[-1]} px for a "
                                     f"{size} px tile; a x{self.info.scale_factor} super-resolution model gives "
                                     f"{expected}x{expected}.")
            out = out.astype(np.float32, copy=False)
            return out * np.float32(self.reg_scaling) if self.reg_scaling != 1 else out
        if out.shape[-1] == size and m:
            out = out[..., m : size - m, m : size - m]
        elif out.shape[-1] != size - 2 * m:
            raise PatchworkError(
                f"MODEL: '{self.info.name}' returned {out.shape[-1]} px for a {size} px tile; expected {size} or "
                f"{size - 2 * m} (the tile less its receptive margin of {m} px). If its outputs are smaller than its "
                "inputs, declare the margin in its metadata as patchwork:receptive_margin."
            )
        if self.labels_out:
            return out.astype(np.int64)
        out = out.astype(np.float32, copy=False)
        if self.info.task == "regression":
            return out * np.float32(self.reg_scaling) if self.reg_scaling != 1 else out
        if out.shape[1] == 1:
            p = out[:, 0]
            if self.activation == "logits":
                p = 1.0 / (1.0 + np.exp(-p))
            return np.stack([1.0 - p, p], axis=1)
        return _softmax(out, axis=1) if self.activation == "logits" else out


def _area_of_applicability(aoa, n_bands: int | None, name: str) -> dict | None:
    """The `patchwork:aoa` metadata a model trained by Patchwork carries, checked, or None."""
    if aoa is None:
        return None
    keys = ("mean", "std", "weights", "points", "mean_distance", "threshold")
    try:
        bands = len(aoa["mean"])
        ok = all(k in aoa for k in keys) and len(aoa["std"]) == len(aoa["weights"]) == bands \
            and (n_bands is None or bands == n_bands) and all(len(p) == bands for p in aoa["points"]) \
            and float(aoa["mean_distance"]) > 0 and len(aoa["points"]) > 0
    except (TypeError, KeyError, ValueError):
        ok = False
    if not ok:
        raise PatchworkError(f"MODEL: '{name}' has unreadable patchwork:aoa metadata (the area of applicability); "
                             "train it again with patchwork:trainclassifier.")
    return aoa


class OnnxPixelModel(PixelModel):
    """A tabular model, one row per pixel (e.g. scikit-learn exported with skl2onnx)."""

    def __init__(self, session, meta: dict, name: str) -> None:
        self.session = session
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        outputs = session.get_outputs()
        self.prob_output = next((o for o in outputs if o.type.startswith("seq(map") or
                                 (o.type == "tensor(float)" and len(o.shape) == 2 and len(outputs) > 1)), None)
        self.label_output = next((o for o in outputs if o is not self.prob_output and len(o.shape) == 1), None)
        n_bands = _fixed(inp.shape[1])
        self.chunk = int(meta.get("patchwork:max_batch_pixels", 262144))
        info = ModelInfo(name=name, n_bands=n_bands, per_pixel=True, input_dtype=_input_dtype(inp, name))
        _read_input_metadata(meta, info)
        if self.prob_output is None and self.label_output is None:
            self.value_output = outputs[0]
            info.task = "regression"
            count = _fixed(outputs[0].shape[-1]) if len(outputs[0].shape) == 2 else 1
            info.output_names = value_names(count)
        else:
            self.zipmap_keys = None
            if self.prob_output is not None and self.prob_output.type.startswith("seq(map"):
                if n_bands is None:
                    raise PatchworkError(f"MODEL: '{name}' has a free number of input bands; export it with a "
                                         "fixed one.")
                probe = np.zeros((1, n_bands), info.input_dtype)
                first = self.session.run([self.prob_output.name], {self.input_name: probe})[0][0]
                self.zipmap_keys = sorted(first)
                count = len(self.zipmap_keys)
            elif self.prob_output is not None:
                count = _fixed(self.prob_output.shape[1])
            else:
                count = None
            names = _class_names(meta, count, name)
            if self.zipmap_keys is not None and not all(isinstance(k, (int, np.integer)) for k in self.zipmap_keys):
                names = names or [str(k) for k in self.zipmap_keys]
                values = list(range(len(self.zipmap_keys)))
            elif self.zipmap_keys is not None:
                values = [int(k) for k in self.zipmap_keys]
            else:
                count = count or (len(names) if names else None)
                if count is None:
                    raise PatchworkError(f"MODEL: '{name}' does not say how many classes it has; add class_names "
                                         "metadata or export its probabilities.")
                values = whole_class_values(meta.get("patchwork:class_values", range(count)),
                                            f"'{info.name}' (patchwork:class_values)")
            info.class_values, info.class_names = values, names or default_class_names(values)
            colours = meta.get("patchwork:class_colors")
            if isinstance(colours, list) and len(colours) == len(values):
                info.class_colors = [str(c) for c in colours]
        info.aoa = _area_of_applicability(meta.get("patchwork:aoa"), n_bands, name)
        self.info = info

    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Predict pixels (P, C) → class indices or scores."""
        pixels = np.ascontiguousarray(pixels, dtype=self.info.input_dtype)
        if len(pixels) > self.chunk:  # bounded memory, e.g. for nearest-neighbour models (pixels x references)
            return np.concatenate([self.predict_pixels(pixels[i : i + self.chunk])
                                   for i in range(0, len(pixels), self.chunk)])
        if self.info.task == "regression":
            out = self.session.run([self.value_output.name], {self.input_name: pixels})[0]
            return np.asarray(out, np.float32).reshape(len(pixels), -1)
        if self.prob_output is None:
            labels = self.session.run([self.label_output.name], {self.input_name: pixels})[0]
            return np.searchsorted(np.asarray(self.info.class_values), labels).astype(np.int64)
        probs = self.session.run([self.prob_output.name], {self.input_name: pixels})[0]
        if self.zipmap_keys is not None:  # a list of {class: probability} dicts, one per pixel
            keys = self.zipmap_keys
            return np.fromiter((row[k] for row in probs for k in keys), np.float32,
                               count=len(probs) * len(keys)).reshape(len(probs), len(keys))
        return np.asarray(probs, np.float32)
