"""Tiled inference: classify a raster of any size tile by tile and stitch the tiles exactly.

Plan: output tiles of `tile - 2·margin` px on a regular stride, the last row and column shifted
back to end on the raster edge (so every pixel is predicted, edges included); each tile is read
with its margin around it (boundless at the raster border). Tiles are predicted in batches, one
row of tiles at a time, blended in a `RowAccumulator`, and rows no later tile reaches are written
out at once: memory stays O(tile rows × width).

For a per-pixel model the result equals one full-scene model call on every pixel.
"""
from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from .budget import MAX_BATCH_SIZE, MAX_TILE_SIZE, require_int_range, require_memory
from .errors import PatchworkError, reports_errors
from .geometry import Window
from .models import Model, ModelInfo, load_model
from .palette import apply_colour_table, class_colours, write_qml
from .partials import Log
from .progress import Feedback, SilentFeedback, check_cancelled
from .raster import RasterSource
from .sampling import regular_anchors
from .stitching import AGGREGATIONS, WINDOWS, Finished, RowAccumulator, check_choice, tile_weights
from .writer import GeoTiffWriter, require_raster_outputs


@dataclass(frozen=True)
class InputTransform:
    """Which bands the model sees and how their values are mapped: x·scale + offset, then (x − mean) / std."""

    bands: list[int]
    dtype: str = "float32"
    scale: float = 1.0
    offset: float = 0.0
    mean: list[float] | None = None
    std: list[float] | None = None

    def apply(self, data: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """(C, h, w) raster values → model input; invalid pixels become 0, never data."""
        x = data.astype(self.dtype)
        if self.scale != 1.0:
            x *= x.dtype.type(self.scale)
        if self.offset != 0.0:
            x += x.dtype.type(self.offset)
        if self.mean is not None:
            x -= np.asarray(self.mean, x.dtype)[:, None, None]
            x /= np.asarray(self.std, x.dtype)[:, None, None]
        x[:, ~valid] = 0.0
        return x


def input_transform(src: RasterSource, info: ModelInfo, bands: list[int] | None, scale: float,
                    offset: float) -> InputTransform:
    bands = list(bands) if bands else list(range(1, src.count + 1))
    bad = [b for b in bands if not 1 <= b <= src.count]
    if bad:
        raise PatchworkError(f"BANDS: {bad} not in the input, which has bands 1..{src.count}.")
    if info.n_bands is not None and len(bands) != info.n_bands:
        expected = f" ({', '.join(info.band_names)})" if info.band_names else ""
        raise PatchworkError(
            f"BANDS: the model '{info.name}' takes {info.n_bands} bands{expected} but it would get {len(bands)} "
            f"(bands {','.join(map(str, bands))} of the input). Set BANDS to the {info.n_bands} input bands to use, "
            f"in the model's order, e.g. {','.join(str(i) for i in range(1, info.n_bands + 1))}."
        )
    for name, values in (("standardization_mean", info.mean), ("standardization_std", info.std)):
        if values is not None and len(values) not in (1, len(bands)):
            raise PatchworkError(f"MODEL: '{info.name}' has {len(values)} {name} values for {len(bands)} bands.")
    if info.std is not None and any(s == 0 for s in info.std):
        raise PatchworkError(f"MODEL: '{info.name}' has a standardization_std of 0.")
    if scale == 0:
        raise PatchworkError("SCALE: 0 would turn every pixel into OFFSET. Use 1 to leave values as they are.")
    def per_band(v):
        return None if v is None else (list(v) * len(bands) if len(v) == 1 else list(v))

    return InputTransform(bands, info.input_dtype, float(scale), float(offset), per_band(info.mean),
                          per_band(info.std))


@dataclass
class ClassifyResult:
    output: str
    probabilities: str | None
    style: str | None  # the .qml written beside a class map
    info: ModelInfo
    tile_size: int
    overlap: int
    tiles: int
    seconds: float


MAX_CLASS_VALUE = 65534  # class maps are uint8 or uint16, with the largest value kept for nodata


def class_nodata(values: list[int]) -> tuple[np.dtype, int]:
    """The smallest unsigned type that holds the classes plus a nodata value above them."""
    if min(values) < 0 or max(values) > MAX_CLASS_VALUE:
        raise PatchworkError(f"MODEL: class values must be between 0 and {MAX_CLASS_VALUE} to be written as a class "
                             f"map, got {min(values)}..{max(values)}. Renumber the classes in the model.")
    return (np.dtype(np.uint8), 255) if max(values) < 255 else (np.dtype(np.uint16), 65535)


def _plan(extent: int, size: int, stride: int) -> np.ndarray:
    """Output-tile anchors along one axis: every pixel covered, the last tile ending on the edge."""
    if extent <= size:
        return np.zeros(1, dtype=np.int64)
    return regular_anchors(extent, size, stride, "shift")


def _check_run(info: ModelInfo, tile: int, overlap: int, aggregation: str, probabilities: str | None) -> None:
    if info.tile_size is not None and tile != info.tile_size:
        raise PatchworkError(f"TILE_SIZE: the model '{info.name}' takes {info.tile_size} px tiles only; set TILE_SIZE "
                             f"to {info.tile_size} or leave it empty.")
    if tile <= 2 * info.margin:
        raise PatchworkError(
            f"TILE_SIZE: {tile} px is not larger than the model's receptive margin on both sides "
            f"(2 × {info.margin} px), so no pixel of a tile could be trusted. Use a TILE_SIZE above "
            f"{2 * info.margin}, ideally several times more."
        )
    if not 0 <= overlap < tile:
        raise PatchworkError(f"OVERLAP: {overlap} px must be at least 0 and less than the tile ({tile} px).")
    if info.task == "classification" and aggregation == "mean":
        raise PatchworkError(f"AGGREGATION: 'mean' averages values and is for regression models; '{info.name}' is a "
                             "classifier: use 'softvote' (mean of the class probabilities) or 'hardvote'.")
    if info.task == "regression" and aggregation != "mean":
        raise PatchworkError(f"AGGREGATION: '{info.name}' is a regression model; votes need classes. Use 'mean'.")
    if probabilities and info.task != "classification":
        raise PatchworkError("OUTPUT_PROBABILITIES: a regression model has no class probabilities; leave it empty.")


def check_prediction(prediction, count: int, size: int, info: ModelInfo) -> None:
    """A model's output must be what the adapter promises: never write a wrong map silently."""
    k = info.n_outputs
    expected = f"({count}, {size}, {size}) class indices or ({count}, {k}, {size}, {size}) scores"
    shape = getattr(prediction, "shape", None)
    ok = isinstance(prediction, np.ndarray) and (
        (prediction.ndim == 3 and prediction.shape == (count, size, size) and info.task == "classification"
         and np.issubdtype(prediction.dtype, np.integer))
        or (prediction.ndim == 4 and prediction.shape == (count, k, size, size)
            and np.issubdtype(prediction.dtype, np.floating)))
    if not ok:
        raise PatchworkError(f"MODEL: '{info.name}' returned {type(prediction).__name__} {shape} "
                             f"{getattr(prediction, 'dtype', '')} for {count} tiles of {size} px; expected {expected}. "
                             "The model does not fit what its metadata says: check its outputs.")
    if prediction.ndim == 3 and prediction.size and (prediction.min() < 0 or prediction.max() >= info.n_classes):
        raise PatchworkError(f"MODEL: '{info.name}' returned class index {int(prediction.max())} (or "
                             f"{int(prediction.min())}) but has {info.n_classes} classes. Check its class metadata.")
    if prediction.ndim == 4 and info.task == "classification" and np.isnan(prediction).any():
        raise PatchworkError(f"MODEL: '{info.name}' returned NaN class scores. Check the input scaling (SCALE, "
                             "OFFSET) and that the bands are the ones it was trained on.")


def _memory_needed(src: RasterSource, info: ModelInfo, n_bands: int, tile: int, stride: int, batch: int) -> int:
    """Bytes alive at once: the input strip, a batch of tiles and its prediction, the row accumulator."""
    item = np.dtype(info.input_dtype).itemsize
    k = max(info.n_outputs, 1)
    strip = tile * (max(src.width, tile) + 2 * info.margin) * n_bands * (item + src.dtype.itemsize + 1)
    tiles = batch * tile * tile * (n_bands * item * 2 + k * 4 * 3)
    accumulator = (tile + stride) * src.width * (k + 1) * 8 * 2
    return strip + tiles + accumulator


def tile_values(prediction: np.ndarray, aggregation: str, n_classes: int) -> np.ndarray:
    """One tile's model output in the form its aggregation adds up.

    hardvote: (h, w) class indices; softvote: (K, h, w) probabilities (labels become one-hot);
    mean: (K, h, w) values.
    """
    labels = prediction.ndim == 2
    if aggregation == "hardvote":
        return prediction if labels else np.argmax(prediction, axis=0)
    if labels and aggregation == "softvote":
        return (prediction[None] == np.arange(n_classes)[:, None, None]).astype(np.float32)
    return prediction


@reports_errors
def classify(
    raster: str,
    model: Model | str,
    output: str,
    *,
    bands: list[int] | None = None,
    scale: float = 1.0,
    offset: float = 0.0,
    tile_size: int | None = None,
    overlap: int | None = None,
    window: str = "boxcar",
    aggregation: str = "hardvote",
    batch_size: int = 4,
    probabilities: str | None = None,
    trust_model: bool = False,
    feedback: Feedback | None = None,
) -> ClassifyResult:
    """Classify `raster` with `model` tile by tile into `output` (GeoTIFF, on the input's grid).

    Classifiers write a class map (uint8/uint16, palette, class names, `<output>.qml`) and, if
    `probabilities` is given, a float32 raster with one band per class (soft vote: mean class
    probabilities; hard vote: weighted vote shares). Regressors write float32 values. Pixels that
    are nodata in any input band are nodata in every output.
    """
    feedback = feedback or SilentFeedback()
    started = time.perf_counter()
    check_choice("window", window, WINDOWS)
    check_choice("aggregation", aggregation, AGGREGATIONS)
    require_int_range("BATCH_SIZE", batch_size, 1, MAX_BATCH_SIZE)
    if tile_size is not None:
        require_int_range("TILE_SIZE", tile_size, 1, MAX_TILE_SIZE)
    require_raster_outputs({"OUTPUT": output, "OUTPUT_PROBABILITIES": probabilities},
                           {"INPUT": raster, "MODEL": model if isinstance(model, str) else None})
    model = load_model(model, trust_model) if isinstance(model, str) else model
    info = model.info
    tile = int(tile_size or info.tile_size or info.default_tile_size)
    overlap = info.default_overlap if overlap is None else int(overlap)
    _check_run(info, tile, overlap, aggregation, probabilities)
    if overlap < 2 * info.margin:
        feedback.info(f"Overlap raised from {overlap} to {2 * info.margin} px: twice the model's receptive margin, "
                      "so the trusted centres of neighbouring tiles meet.")
        overlap = 2 * info.margin
    src = RasterSource(raster)
    with src, ExitStack() as outputs:
        transform = input_transform(src, info, bands, scale, offset)
        if info.unit_range_input and transform.scale == 1.0 and src.dtype == np.uint8 and info.mean is None:
            feedback.info("Note: this model expects input values 0–1 (Deepness convention) and the input is 8-bit: "
                          "set SCALE to 0.00392156862745098 (1/255) unless the model says otherwise.")
        if info.batch_size and info.batch_size != batch_size:
            feedback.info(f"The model fixes its batch at {info.batch_size} tiles; BATCH_SIZE {batch_size} is not used.")
            batch_size = info.batch_size
        largest = max(src.height, src.width) + 2 * info.margin
        if info.per_pixel and tile > largest:  # a per-pixel model gives the same pixels with a tile of the raster
            feedback.info(f"TILE_SIZE {tile} px is larger than the raster; using {largest} px (same result).")
            overlap = min(overlap, largest - 1)
            tile = largest
        require_memory(_memory_needed(src, info, len(transform.bands), tile, tile - overlap, batch_size),
                       "TILE_SIZE", f"{batch_size} tiles of {tile} px", "Lower TILE_SIZE or BATCH_SIZE.")

        margin, size = info.margin, tile - 2 * info.margin  # size: the output part of a tile
        stride = tile - overlap
        row_anchors = _plan(src.height, size, stride)
        col_anchors = _plan(src.width, size, stride)
        n_tiles = len(row_anchors) * len(col_anchors)
        feedback.info(f"Model '{info.name}': {info.task}, {info.n_outputs} "
                      f"{'classes' if info.task == 'classification' else 'outputs'}; input bands "
                      f"{','.join(map(str, transform.bands))} × {transform.scale:g} + {transform.offset:g}")
        feedback.info(f"{n_tiles} tiles of {tile} px ({len(row_anchors)} rows × {len(col_anchors)} columns), overlap "
                      f"{overlap} px, {window} window, {aggregation}")

        writers = MapWriter(outputs, src.width, src.height, src.geotransform, src.crs_wkt, info, output,
                            probabilities, aggregation, log=feedback.info)
        acc = RowAccumulator(src.width, info.n_outputs, aggregation)
        plan = _TilePlan(tile, margin, size, window, aggregation, info.n_outputs, src.height, src.width)
        done_tiles = 0
        for i, row in enumerate(row_anchors):
            strip_width = max(src.width + 2 * margin, tile)  # a raster narrower than a tile is padded
            strip, valid = src.read(Window(int(row) - margin, -margin, tile, strip_width), transform.bands)
            strip = transform.apply(strip, valid)
            for start in range(0, len(col_anchors), batch_size):
                check_cancelled(feedback)
                cols = [int(c) for c in col_anchors[start : start + batch_size]]
                plan.predict_and_add(model, acc, strip, valid, int(row), cols)
                done_tiles += len(cols)
                feedback.set_progress(100.0 * done_tiles / n_tiles)
            next_row = int(row_anchors[i + 1]) if i + 1 < len(row_anchors) else src.height
            writers.write(acc.finish_above(next_row))
        check_cancelled(feedback)
        if getattr(model, "one_at_a_time", False):
            feedback.info(f"The model's graph takes one tile per call although its input says any batch: "
                          f"BATCH_SIZE {batch_size} was lowered to 1 (set BATCH_SIZE=1 to skip the first try).")
    style = writers.write_style()
    return ClassifyResult(output, probabilities, style, info, tile, overlap, n_tiles, time.perf_counter() - started)


@dataclass(frozen=True)
class _TilePlan:
    """How one row of tiles turns into accumulator contributions."""

    tile: int  # input side, px
    margin: int  # cut from each side of a tile's prediction
    size: int  # the predicted (output) side: tile - 2·margin
    window: str
    aggregation: str
    channels: int
    height: int
    width: int

    def predict_and_add(self, model: Model, acc: RowAccumulator, strip: np.ndarray, valid: np.ndarray, row: int,
                        cols: list[int]) -> None:
        """Predict the tiles of `strip` (model input, read with the margin) at `cols` and add them at `row`."""
        t, m, size = self.tile, self.margin, self.size
        batch_valid = np.stack([valid[:, c : c + t] for c in cols])
        keep = [j for j in range(len(cols)) if batch_valid[j].any()]  # all-nodata tiles stay nodata
        if not keep:
            return
        predictions = model.predict(np.stack([strip[:, :, cols[j] : cols[j] + t] for j in keep]), batch_valid[keep])
        check_prediction(predictions, len(keep), size, model.info)
        h = min(size, self.height - row)
        top, bottom = row == 0, row + size >= self.height
        for j, prediction in zip(keep, predictions):
            c = cols[j]
            w = min(size, self.width - c)
            weights = tile_weights(size, size, self.window, top, bottom, c == 0, c + size >= self.width)
            values = tile_values(prediction, self.aggregation, self.channels)[..., :h, :w]
            acc.add(row, c, values, weights[:h, :w], batch_valid[j, m : m + h, m : m + w])


class MapWriter:
    """The rasters a run writes, on `stack` (removed unless the run completes), fed rows as they finish.

    Classification: a class map (palette, class names, `.qml` after the run) and optional probabilities;
    regression: float32 values. Shared by tiled classification and chip stitching.
    """

    def __init__(self, stack: ExitStack, width: int, height: int, geotransform, crs_wkt: str, info: ModelInfo,
                 output: str, probabilities: str | None = None, aggregation: str = "hardvote",
                 log: Log | None = None) -> None:
        self.info, self.output = info, output
        gt, crs, k = geotransform, crs_wkt, info.n_outputs
        self.probabilities = None
        self.covered = 0  # pixels written with data
        if info.task == "classification":
            self.dtype, self.nodata = class_nodata(info.class_values)
            self.main = stack.enter_context(GeoTiffWriter(output, width, height, 1, self.dtype, gt, crs, self.nodata,
                                                          log=log))
            self.colours = class_colours(info.n_classes, info.class_colors)
            apply_colour_table(self.main.dataset.GetRasterBand(1), info.class_values, info.class_names, self.colours)
            self.main.set_band_descriptions(["class"])
            self.lut = np.asarray(info.class_values, dtype=self.dtype)
            if probabilities:
                self.probabilities = stack.enter_context(GeoTiffWriter(probabilities, width, height, k, np.float32,
                                                                       gt, crs, float("nan"), log=log))
                kind = "P" if aggregation == "softvote" else "vote share"
                self.probabilities.set_band_descriptions([f"{kind}({name})" for name in info.class_names])
        else:
            self.main = stack.enter_context(GeoTiffWriter(output, width, height, k, np.float32, gt, crs,
                                                          float("nan"), log=log))
            self.main.set_band_descriptions(info.output_names)

    def write(self, done: Finished | None) -> None:
        if done is None:
            return
        covered = done.covered
        self.covered += int(covered.sum())
        if self.info.task != "classification":
            self.main.write(done.mean(), done.row_off, 0)
            return
        classes = self.lut[done.winners()]
        classes[~covered] = self.nodata
        self.main.write(classes, done.row_off, 0)
        if self.probabilities is not None:
            self.probabilities.write(done.mean(), done.row_off, 0)

    def write_style(self) -> str | None:
        """The class map's .qml (after the rasters are in place)."""
        if self.info.task != "classification":
            return None
        return write_qml(self.output, self.info.class_values, self.info.class_names, self.colours)


def full_scene_prediction(raster: str, model: Model | str, *, bands: list[int] | None = None, scale: float = 1.0,
                          offset: float = 0.0, trust_model: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The reference tiled inference must match: one model call on the whole raster, in memory.

    Returns the (h, w) class indices or (K, h, w) scores as the model gives them, and the validity
    mask. Only for rasters that fit in memory and models that take any tile size.
    """
    model = load_model(model, trust_model) if isinstance(model, str) else model
    with RasterSource(raster) as src:
        transform = input_transform(src, model.info, bands, scale, offset)
        data, valid = src.read(Window(0, 0, src.height, src.width), transform.bands)
        x = transform.apply(data, valid)
    return model.predict(x[None], valid[None])[0], valid
