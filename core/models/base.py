"""What every model adapter offers the tiled classifier: a description and `predict` on a batch of tiles."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..errors import PatchworkError

Task = Literal["classification", "regression", "detection", "superresolution", "recognition"]


@dataclass
class ModelInfo:
    """What the classifier needs to know about a model before it reads a pixel.

    Classification models predict indices into `class_values` (or one score per class, in that
    order); `class_values` are the pixel values written to the class map, sorted ascending so that
    ties, which go to the lowest index, go to the lowest class id.
    """

    name: str
    task: Task = "classification"
    n_bands: int | None = None  # input channels the model expects; None when it takes any number
    band_names: list[str] | None = None  # what each input channel should hold, when the model says
    class_values: list[int] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    class_colors: list[str] | None = None  # "#rrggbb" per class, when the model says
    output_names: list[str] = field(default_factory=list)  # regression outputs
    tile_size: int | None = None  # a tile size the model's input shape fixes
    default_tile_size: int = 256
    default_overlap: int = 0
    margin: int = 0  # pixels at each tile edge the model cannot predict well (receptive field)
    batch_size: int | None = None  # a batch size the model's input shape fixes
    per_pixel: bool = False  # each output pixel depends only on the same input pixel
    mean: list[float] | None = None  # standardisation after SCALE/OFFSET: (x - mean) / std
    std: list[float] | None = None
    unit_range_input: bool = False  # the model expects values in 0..1 (the Deepness convention)
    input_scale: float | None = None  # the SCALE and OFFSET the model was trained with, when it says (Patchwork's)
    input_offset: float | None = None
    input_dtype: str = "float32"  # what the model computes in; rules keep float64 to match numpy exactly
    widens_floats: bool = False  # takes narrower floats as they are and computes in input_dtype itself (rules)
    min_segment: int = 0  # segments of fewer pixels are merged into their neighbour (Deepness seg_small_segment)
    scale_factor: int = 1  # a super-resolution model's output pixels per input pixel, along each axis
    resolution_cm: float | None = None  # the ground pixel size the model was trained at (Deepness `resolution`)
    decision_weights: list[float] | None = None  # class scores × these before the argmax (a sigmoid's seg_thresh)
    heads: list[str] = field(default_factory=list)  # the output heads of a model with several (their names)
    head: int = 0  # the head this model gives
    aoa: dict | None = None  # a per-pixel model's area of applicability (models/applicability.py), when it has one

    def __post_init__(self) -> None:
        duplicated = sorted({v for v in self.class_values if self.class_values.count(v) > 1})
        if duplicated:  # two classes of one value would be one class in the map, silently
            raise PatchworkError(f"MODEL: '{self.name}' gives several classes the value "
                                 f"{', '.join(map(str, duplicated))}; each class needs its own value.")

    def suggested_input(self) -> tuple[float, float]:
        """The SCALE and OFFSET to feed this model: its own, else 1/255 for Deepness's 0–1 models, else (1, 0)."""
        if self.input_scale is not None:
            return self.input_scale, self.input_offset or 0.0
        return (1 / 255 if self.unit_range_input else 1.0), 0.0

    @property
    def n_classes(self) -> int:
        """Classes of a classifier (0 for a regression model)."""
        return len(self.class_values)

    @property
    def n_outputs(self) -> int:
        """Planes the model gives per pixel: classes, or regression outputs."""
        return self.n_classes if self.task == "classification" else len(self.output_names)


def whole_class_values(raw, where: str) -> list[int]:
    """Class values as a model file gives them: distinct whole numbers (1.5 or "a" is refused, not rounded)."""
    values = []
    for value in raw:
        number = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if isinstance(number, bool) or not isinstance(number, (int, float, np.integer, np.floating)) \
                or not float(number).is_integer():
            raise PatchworkError(f"MODEL: {where} gives the class value {value!r}; class values are whole numbers.")
        values.append(int(number))
    duplicated = sorted({v for v in values if values.count(v) > 1})
    if duplicated:
        raise PatchworkError(f"MODEL: {where} gives several classes the value {', '.join(map(str, duplicated))}; "
                             "each class needs its own value.")
    return values


class Model:
    """A loaded model.

    `predict` maps a batch of tiles (N, C, h, w) in `info.input_dtype` plus their validity (N, h, w) to either
    class indices (N, h', w') as integers or scores (N, K, h', w') as float32: class probabilities for
    classifiers, values for regressors. h' may be smaller than h (a centred crop) when the model drops its
    receptive margin.
    """

    info: ModelInfo
    device: str = "CPU"  # where it computes, for the run's log
    device_warning: str | None = None  # e.g. a GPU asked for and not available

    def predict(self, batch: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Predict a batch of tiles (N, C, h, w) with their validity (N, h, w): class indices or scores."""
        raise NotImplementedError


class PixelModel(Model):
    """A model that classifies each pixel from its own band values: only valid pixels are predicted."""

    def predict_planes(self, planes: np.ndarray) -> np.ndarray:
        """(C, P) band planes → (P,) class indices, or (K, P) scores.

        Band-sequential is how rasters are read; adapters that want rows of pixels transpose here.
        """
        return self.predict_pixels(planes.T).T

    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(P, C) pixels → (P,) class indices, or (P, K) scores."""
        raise NotImplementedError

    def predict(self, batch: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Predict each valid pixel of the batch on its own."""
        n, c, h, w = batch.shape
        if valid.all():  # no gather: the planes are predicted as they are
            out = self.predict_planes(np.moveaxis(batch, 1, 0).reshape(c, -1))
            if out.ndim == 1:
                return out.reshape(n, h, w)
            return np.moveaxis(out.reshape(-1, n, h, w), 0, 1)
        planes = np.moveaxis(batch, 1, 0)[:, valid]
        if planes.shape[1] == 0:  # nothing to predict; the classifier ignores invalid pixels
            if self.info.task == "classification":
                return np.zeros((n, h, w), np.int64)
            return np.zeros((n, self.info.n_outputs, h, w), np.float32)
        out = self.predict_planes(planes)
        if out.ndim == 1 and np.issubdtype(out.dtype, np.integer):
            labels = np.zeros((n, h, w), out.dtype)
            labels[valid] = out
            return labels
        out = out.reshape(-1, out.shape[-1])
        scores = np.zeros((out.shape[0], n, h, w), np.float32)
        scores[:, valid] = out
        return np.moveaxis(scores, 0, 1)


def require_model_file(path: str) -> None:
    """Refuse a path that is not a readable model file, with what to do."""
    if not os.path.isfile(path):
        raise PatchworkError(f"MODEL: no model file at '{path}'. Check the path.")


def default_class_names(values: list[int]) -> list[str]:
    """'class 0', 'class 1', … for classes without names."""
    return [f"class {v}" for v in values]


def value_names(count: int | None) -> list[str]:
    """Band names of a regressor's outputs: "value", or "value 1", "value 2", … for several."""
    count = count or 1
    return ["value"] if count == 1 else [f"value {i + 1}" for i in range(count)]
