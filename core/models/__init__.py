"""Model adapters: ONNX (image and per-pixel), scikit-learn (skops; pickle only when trusted), JSON rules.

Example:
    model = load_model("model.onnx")
    model.info          # task, classes, bands, tile size, margin
    model.predict(batch_of_tiles, valid)
"""
from __future__ import annotations

import copy
import os
import threading
from collections import OrderedDict

from ..errors import PatchworkError, reports_errors
from .base import Model, ModelInfo, PixelModel, require_model_file

MODEL_EXTENSIONS = (".onnx", ".skops", ".json", ".joblib", ".pkl", ".pickle")
KEPT_MODELS = 2  # the models last loaded stay loaded: a run's check, then the run, load a file once

_kept: OrderedDict[tuple, Model] = OrderedDict()  # by file (path, size, time changed) and the settings read with
_kept_lock = threading.Lock()


@reports_errors
def load_model(path: str, trust: bool = False, device: str = "cpu", threads: int | None = None,
               head: int = 0, model_type: str = "auto", threshold: float | None = None) -> Model:
    """Load a model by its file extension.

    Args:
        path: An ONNX model (.onnx), a skops file (.skops), a rules model (.json) or a pickle.
        trust: Load a pickle (.pkl, .pickle, .joblib), which can run any code: only from a source you trust.
        device: Where an ONNX model computes: "auto", "cpu" or "cuda" (a GPU that fails falls back to the CPU).
        threads: onnxruntime's intra-op threads for an ONNX model (default: onnxruntime's).
        head: The output head of an ONNX image model with several (0: the first).
        model_type: What an ONNX model is, as Deepness's dialog lets a user say it (`MODEL_TYPES`); "auto": its
            `model_type` metadata, else its output's shape.
        threshold: Where a one-sigmoid model's class starts (p > threshold), in place of its `seg_thresh`.

    Returns:
        The model, with `info` (task, classes, bands, tile size, margin) and `predict`. The last KEPT_MODELS
        models loaded are kept: loading the same unchanged file with the same settings again does not read it again
        (a Processing run checks its model, then runs it); each call gets its own copy of the model object around
        the one loaded graph or estimator.

    Raises:
        PatchworkError: A missing or unreadable file, an untrusted pickle, a skops file with unknown types, or a
            missing package (with how to install it).
    """
    require_model_file(path)
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns, trust, device, threads, head, model_type, threshold)
    with _kept_lock:
        if key in _kept:
            _kept.move_to_end(key)
            return _own_copy(_kept[key])
    model = _loaded(path, trust, device, threads, head, model_type, threshold)
    with _kept_lock:
        _kept[key] = model
        while len(_kept) > KEPT_MODELS:
            _kept.popitem(last=False)
    return _own_copy(model)


def _own_copy(model: Model) -> Model:
    """The kept model for one caller: the loaded graph or estimator shared, its attributes and description its own.

    A caller that sets one (a test's patched method, a batch found too large) leaves the kept model as it is.
    """
    mine = copy.copy(model)
    if getattr(model, "info", None) is not None:
        mine.info = copy.copy(model.info)
    return mine


def _loaded(path: str, trust: bool, device: str, threads: int | None, head: int, model_type: str,
            threshold: float | None) -> Model:
    """The model read from its file (`load_model`, which keeps the last ones)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".onnx":
        from .onnx import load_onnx

        return load_onnx(path, device, threads, head, model_type, threshold)
    if model_type != "auto" or threshold is not None:
        raise PatchworkError(f"MODEL_TYPE, THRESHOLD: they tell how to read an ONNX image model; "
                             f"'{os.path.basename(path)}' is not one. Leave them at auto and empty.")
    if ext == ".json":
        from .rules import RulesModel

        return RulesModel.load(path)
    if ext in (".skops", ".joblib", ".pkl", ".pickle"):
        from .sklearn import SklearnModel

        return SklearnModel.load(path, trust)
    raise PatchworkError(f"MODEL: '{os.path.basename(path)}' is not a model Patchwork reads; use one of "
                         f"{', '.join(MODEL_EXTENSIONS)}.")


MODEL_TYPES = ("auto", "segmentation", "regression", "detection", "superresolution", "recognition")

__all__ = ["MODEL_EXTENSIONS", "MODEL_TYPES", "Model", "ModelInfo", "PixelModel", "load_model"]
