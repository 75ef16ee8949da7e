"""Model adapters: ONNX (image and per-pixel), scikit-learn (skops; pickle only when trusted), JSON rules.

    model = load_model("model.onnx")
    model.info          # task, classes, bands, tile size, margin
    model.predict(batch_of_tiles, valid)
"""
from __future__ import annotations

import os

from ..errors import PatchworkError, reports_errors
from .base import Model, ModelInfo, PixelModel, require_model_file

MODEL_EXTENSIONS = (".onnx", ".skops", ".json", ".joblib", ".pkl", ".pickle")


@reports_errors
def load_model(path: str, trust: bool = False, device: str = "cpu", threads: int | None = None) -> Model:
    """Load a model by its file extension. Pickles (.pkl, .pickle, .joblib) need `trust=True`.

    `device` and `threads` apply to ONNX models (onnxruntime's execution provider and intra-op threads).
    """
    require_model_file(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".onnx":
        from .onnx import load_onnx

        return load_onnx(path, device, threads)
    if ext == ".json":
        from .rules import RulesModel

        return RulesModel.load(path)
    if ext in (".skops", ".joblib", ".pkl", ".pickle"):
        from .sklearn import SklearnModel

        return SklearnModel.load(path, trust)
    raise PatchworkError(f"MODEL: '{os.path.basename(path)}' is not a model Patchwork reads; use one of "
                         f"{', '.join(MODEL_EXTENSIONS)}.")


__all__ = ["MODEL_EXTENSIONS", "Model", "ModelInfo", "PixelModel", "load_model"]
