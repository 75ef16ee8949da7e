"""Blocks: the independent pieces every inference run is cut into, and the job that turns one into finished arrays.

The plan (`tiling`): model tiles on a regular grid, the output cut into independent blocks, each
computed from the tiles that touch it. A `BlockJob` reads a block's pixels, runs the model on its tiles
(or, for a per-pixel model, on its pixels) and stitches them (`stitching`); an executor (`executors`)
runs the jobs here, on worker threads or on a Dask cluster.

For a per-pixel model the result equals one full-scene model call on every pixel: such models are
predicted block by block directly (tiles would not change a pixel). For image models, the tiled
result depends only on the tile grid, never on the blocks or the workers.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from ..errors import Cancelled, PatchworkError
from ..geometry import Window
from ..io.aoi import Aoi
from ..io.raster import RasterSource
from ..models import Model, ModelInfo, load_model
from ..models.applicability import inside as applicable
from ..progress import Feedback
from .journal import BlockResult, Piece
from .model_input import (
    DASK_NEEDS_A_FILE,
    InputTransform,
    ModelFile,
    input_transform,
)
from .stitching import BlockAccumulator, Finished, first_argmax, parse_window, tile_weights
from .tiling import Block, TileGrid
from .uncertainty import FROM_PROBABILITIES, disagreement, single_cover, variance

AOA_NODATA = 255  # the area-of-applicability mask: 1 inside, 0 outside, this where the map is nodata

PIXEL_CHUNK = 1 << 18  # pixels per call of a per-pixel model: progress and cancel are heard between calls


MAX_CLASS_VALUE = 65534  # class maps are uint8 or uint16, with the largest value kept for nodata


def class_nodata(values: list[int]) -> tuple[np.dtype, int]:
    """The smallest unsigned type that holds the classes plus a nodata value above them."""
    if min(values) < 0 or max(values) > MAX_CLASS_VALUE:
        raise PatchworkError(f"MODEL: class values must be between 0 and {MAX_CLASS_VALUE} to be written as a class "
                             f"map, got {min(values)}..{max(values)}. Renumber the classes in the model.")
    return (np.dtype(np.uint8), 255) if max(values) < 255 else (np.dtype(np.uint16), 65535)


def check_prediction(prediction, count: int, height: int, width: int, info: ModelInfo) -> None:
    """A model's output must be what the adapter promises: never write a wrong map silently."""
    k = info.n_outputs
    expected = f"({count}, {height}, {width}) class indices or ({count}, {k}, {height}, {width}) scores"
    shape = getattr(prediction, "shape", None)
    ok = isinstance(prediction, np.ndarray) and (
        (prediction.ndim == 3 and prediction.shape == (count, height, width) and info.task == "classification"
         and np.issubdtype(prediction.dtype, np.integer))
        or (prediction.ndim == 4 and prediction.shape == (count, k, height, width)
            and np.issubdtype(prediction.dtype, np.floating)))
    if not ok:
        what = f"{count} tiles of {height} x {width} px" if count > 1 else f"{height} x {width} px"
        raise PatchworkError(f"MODEL: '{info.name}' returned {type(prediction).__name__} {shape} "
                             f"{getattr(prediction, 'dtype', '')} for {what}; expected {expected}. "
                             "The model does not fit what its metadata says: check its outputs.")
    if prediction.ndim == 3 and prediction.size and (prediction.min() < 0 or prediction.max() >= info.n_classes):
        raise PatchworkError(f"MODEL: '{info.name}' returned class index {int(prediction.max())} (or "
                             f"{int(prediction.min())}) but has {info.n_classes} classes. Check its class metadata.")
    if prediction.ndim == 4 and info.task == "classification" and np.isnan(prediction).any():
        raise PatchworkError(f"MODEL: '{info.name}' returned NaN class scores. Check the input scaling (SCALE, "
                             "OFFSET) and that the bands are the ones it was trained on.")


def memory_needed(src: RasterSource, info: ModelInfo, n_bands: int, grid: TileGrid | None, blocks: list[Block],
                   batch: int, in_flight: int) -> int:
    """Bytes alive at once: per block in flight its input, tiles, sums and outputs; the writer's waiting tiles.

    No more blocks are in flight than there are, and no batch holds more tiles than the grid has.
    """
    in_flight = min(in_flight, len(blocks))
    batch = min(batch, grid.count) if grid else batch
    item = np.dtype(info.input_dtype).itemsize
    k = max(info.n_outputs, 1)
    area = max(b.reach(grid).height * b.reach(grid).width for b in blocks)  # (its tiles' sums reach past it)
    inputs = [b.input_window(grid) if grid else b.window for b in blocks]
    block_input = max(w.height * w.width for w in inputs) * n_bands * (item + src.dtype.itemsize + 1)
    tiles = batch * grid.tile * grid.tile * (n_bands * item * 2 + k * 4 * 3) if grid else area * k * 8
    sums = area * (k + 1) * 8
    outputs = area * (2 + 4 * k)
    waiting = min(src.width, src.height) * 512 * (2 + 4 * k)
    return in_flight * (block_input + tiles + sums + outputs) + waiting


def decide(scores: np.ndarray, info: ModelInfo) -> np.ndarray:
    """The class index of (K, h, w) scores: the largest, after the model's decision weights (seg_thresh)."""
    if info.decision_weights is None:
        return first_argmax(scores)
    return first_argmax(scores * np.asarray(info.decision_weights, scores.dtype)[:, None, None])


def tile_values(prediction: np.ndarray, aggregation: str, info: ModelInfo) -> np.ndarray:
    """One tile's model output in the form its aggregation adds up.

    hardvote: (h, w) class indices; softvote: (K, h, w) probabilities (labels become one-hot);
    mean: (K, h, w) values.
    """
    n_classes = info.n_outputs
    labels = prediction.ndim == 2
    if aggregation == "hardvote":
        return prediction if labels else decide(prediction, info)
    if labels and aggregation == "softvote":
        return (prediction[None] == np.arange(n_classes)[:, None, None]).astype(np.float32)
    return prediction


class BlockProgress:
    """Work done across the workers of this process (tiles, or pixels).

    Feedback is only called from the run's own thread (QGIS's feedback and a Python user's object need not be
    thread-safe); workers see a cancel flag.
    """

    def __init__(self, feedback: Feedback, total: int) -> None:
        self.feedback, self.total = feedback, total
        self.finished = 0  # weight of the blocks written
        self.partial: dict[int, int] = {}  # tiles done in blocks still being computed
        self.lock = threading.Lock()
        self.cancelled = threading.Event()
        self.thread = threading.get_ident()

    def tiles(self, block: int, count: int) -> None:
        """A worker did `count` more units of `block`'s work (tiles, or pixels of a per-pixel model)."""
        with self.lock:
            self.partial[block] = self.partial.get(block, 0) + count
        if threading.get_ident() == self.thread:
            self.poll()
        elif self.cancelled.is_set():
            raise Cancelled("cancelled by the user")

    def block_written(self, block: Block) -> None:
        """A block was written: its work counts as done."""
        with self.lock:
            self.partial.pop(block.index, None)
            self.finished += block.work

    def poll(self) -> None:
        """In the run's thread: report progress; raise Cancelled (and stop the workers) when cancelled."""
        with self.lock:
            done = self.finished + sum(self.partial.values())
        self.feedback.set_progress(100.0 * done / self.total)
        if self.feedback.is_cancelled():
            self.cancelled.set()
            raise Cancelled("cancelled by the user")


@dataclass(frozen=True)
class OutputMask:
    """Polygons (WKT, in the raster's CRS) outside which the map is nodata; picklable, for any worker."""

    wkt: str
    crs_wkt: str
    geotransform: tuple

    def inside(self, window: Window) -> np.ndarray:
        """Which pixels of `window` have their centre inside the polygons.

        Rasterised here, per call: GDAL objects are not shared between threads.
        """
        return Aoi([self.wkt], self.crs_wkt).inside_mask(self.geotransform, window)

    def applied(self, result: BlockResult, inside: np.ndarray, info: ModelInfo) -> BlockResult:
        """The block's arrays with the pixels outside made nodata."""
        outside = ~inside
        main = result.main.copy()
        if info.task == "classification":
            main[outside] = class_nodata(info.class_values)[1]
        else:
            main[:, outside] = np.nan
        covered = covered_pixels(main, info)
        probabilities, uncertainty = result.probabilities, result.uncertainty
        if probabilities is not None:
            probabilities = probabilities.copy()
            probabilities[:, outside] = np.nan
        if uncertainty is not None:
            uncertainty = uncertainty.copy()
            uncertainty[..., outside] = np.nan
        aoa = result.aoa
        if aoa is not None:
            aoa = np.where(outside, np.uint8(AOA_NODATA), aoa)
        return BlockResult(result.index, result.window, main, probabilities, covered, result.tiles, uncertainty, aoa,
                           result.pieces)


@dataclass
class BlockJob:
    """Everything needed to compute any block of one run; picklable (the loaded model stays behind)."""

    raster: str
    transform: InputTransform
    grid: TileGrid | None  # None: a per-pixel model, predicted block by block without tiles
    window: str
    aggregation: str
    batch_size: int
    info: ModelInfo
    probabilities: bool
    model_file: ModelFile | None
    model: Model | None = field(default=None, repr=False)
    progress: BlockProgress | None = field(default=None, repr=False)  # this process only: tiles done, cancel
    mask: OutputMask | None = None  # classify only inside these polygons
    uncertainty: str | None = None  # the measure of the uncertainty map to make (see `uncertainty`), or none
    aoa: bool = False  # make the mask of the model's area of applicability (per-pixel models trained by Patchwork)

    def __getstate__(self) -> dict:
        if self.model_file is None:
            raise PatchworkError(DASK_NEEDS_A_FILE)
        return {**self.__dict__, "model": None, "progress": None}

    def __call__(self, block: Block) -> BlockResult:
        """Read and compute one block (a Dask worker's task)."""
        return self.compute(block, self.read(block))

    def read(self, block: Block) -> tuple[np.ndarray, np.ndarray]:
        """The block's input pixels (its tiles' margins included) and their validity."""
        window = block.input_window(self.grid) if self.grid else block.window
        with RasterSource(self.raster) as src:  # one per block: thread-safe, and its GDAL cache is freed after
            return src.read(window, self.transform.bands)

    def compute(self, block: Block, pixels: tuple[np.ndarray, np.ndarray]) -> BlockResult:
        """The finished arrays of one block, from its prepared input."""
        model = self.model or self.model_file.load()
        if self.mask is None:
            return self._pixels(block, model, *pixels) if self.grid is None else self._tiles(block, model, *pixels)
        source = block.input_window(self.grid) if self.grid else block.window
        inside = self.mask.inside(source)
        data, valid = pixels
        if self.grid is None:  # a per-pixel model need not predict outside
            result = self._pixels(block, model, data, valid & inside)
        else:  # outside pixels still feed the tiles that reach inside: the same classes as without a mask there
            result = self._tiles(block, model, data, valid, inside)
        b = block.window
        return self.mask.applied(result, inside[b.row_off - source.row_off : b.row_off - source.row_off + b.height,
                                                b.col_off - source.col_off : b.col_off - source.col_off + b.width],
                                 self.info)

    def nothing(self, block: Block) -> BlockResult:
        """A block outside the mask: nodata, computed from no pixel."""
        b = block.window
        inside = np.zeros((b.height, b.width), bool)
        uncertainty = single_cover(self.uncertainty, inside, np.full((self.info.n_outputs, *inside.shape), np.nan),
                                   self.info.n_outputs) if self.uncertainty else None
        aoa = np.full(inside.shape, AOA_NODATA, np.uint8) if self.aoa else None
        if self.info.task != "classification":
            return BlockResult(block.index, b, np.full((self.info.n_outputs, b.height, b.width), np.nan, np.float32),
                               None, 0, 0, uncertainty, aoa)
        probabilities = np.full((self.info.n_outputs, b.height, b.width), np.nan, np.float32) \
            if self.probabilities else None
        return BlockResult(block.index, b, class_map(self.info, np.zeros(inside.shape, np.intp), inside),
                           probabilities, 0, 0, uncertainty, aoa)

    def _tiles(self, block: Block, model: Model, data: np.ndarray, valid: np.ndarray,
               inside: np.ndarray | None = None) -> BlockResult:
        grid, info, b = self.grid, self.info, block.window
        source = block.input_window(grid)
        x = self.transform.apply(data, valid)
        t, m, size = grid.tile, grid.margin, grid.size
        # Its tiles' sums cover its reach (past its bottom and right edges with overlap); what lies past its edges,
        # and its border strips that earlier blocks' tiles reach too, go on as pieces (`halos`).
        reach, shared = block.reach(grid), block.border(grid) + block.outgoing(grid)
        single = self.aggregation == "hardvote" and block.single_cover(grid) and not shared
        if single:  # one vote per pixel: the tile's class is the pixel's, no sums needed
            labels = np.full((b.height, b.width), -1, np.int32)
        else:
            acc = BlockAccumulator(reach, info.n_outputs, self.aggregation,
                                   counts=parse_window(self.window)[0] == "boxcar")
        # what the uncertainty map needs besides: each tile's class (disagreement), its values squared (variance)
        votes = BlockAccumulator(reach, info.n_outputs, "hardvote", counts=True) \
            if self.uncertainty == "disagreement" and not single else None
        squares = BlockAccumulator(reach, info.n_outputs, "mean") if self.uncertainty == "variance" else None
        ones = np.ones((size, size)) if votes is not None else None
        weights: dict[tuple[bool, ...], np.ndarray] = {}
        anchors = [(r, c) for r in block.tile_rows for c in block.tile_cols]  # row-major, in every block
        predicted = 0
        for start in range(0, len(anchors), self.batch_size):
            batch = anchors[start : start + self.batch_size]
            cuts = [(slice(r - m - source.row_off, r - m - source.row_off + t),
                     slice(c - m - source.col_off, c - m - source.col_off + t)) for r, c in batch]
            if self.progress:
                self.progress.tiles(block.index, len(batch))  # raises Cancelled when the user cancelled
            keep = [j for j, cut in enumerate(cuts) if valid[cut].any()  # all-nodata tiles stay nodata
                    and (inside is None or inside[cut][m : m + size, m : m + size].any())]  # as tiles outside a mask
            if not keep:
                continue
            tiles_valid = np.stack([valid[cuts[j]] for j in keep])
            predictions = model.predict(np.stack([x[(slice(None), *cuts[j])] for j in keep]), tiles_valid)
            check_prediction(predictions, len(keep), size, size, info)
            predicted += len(keep)
            for j, prediction, tile_valid in zip(keep, predictions, tiles_valid):
                r, c = batch[j]
                inner_valid = tile_valid[m : m + size, m : m + size]
                if single:
                    _place(labels, b, r, c, tile_values(prediction, "hardvote", info), inner_valid)
                    continue
                flags = (r == 0, r + size >= grid.height, c == 0, c + size >= grid.width)
                if flags not in weights:
                    weights[flags] = tile_weights(size, size, self.window, *flags)
                acc.add(r, c, tile_values(prediction, self.aggregation, info), weights[flags], inner_valid)
                if votes is not None:  # every tile's vote counts once
                    votes.add(r, c, tile_values(prediction, "hardvote", info), ones, inner_valid)
                if squares is not None:
                    squares.add(r, c, prediction.astype(np.float64) ** 2, weights[flags], inner_valid)
        if single:
            return self._from_labels(block, labels, predicted)
        sums, votes, squares = (None if a is None else a.finish() for a in (acc, votes, squares))
        mine = [None if f is None else f.part(b, copy=False) for f in (sums, votes, squares)]
        result = finished_block(block.index, mine[0], info, self.probabilities, predicted, self.aggregation,
                                self.uncertainty, mine[1], mine[2])
        result.pieces = [Piece(w, *(None if f is None else f.part(w) for f in (sums, votes, squares)))
                         for w in shared]
        return result

    def _one_hot(self, labels: np.ndarray, covered: np.ndarray) -> np.ndarray:
        """Vote shares of single votes: 1 for the class voted, 0 for the others, NaN where no vote."""
        shares = tile_values(labels, "softvote", self.info)  # labels as soft votes: one-hot
        np.copyto(shares, np.nan, where=~covered)
        return shares

    def _from_labels(self, block: Block, labels: np.ndarray, predicted: int) -> BlockResult:
        """A block of single votes: each pixel's class is its one tile's (or its one prediction's)."""
        covered = labels >= 0
        shares = self._one_hot(labels, covered) if self.probabilities or self.uncertainty in FROM_PROBABILITIES \
            else None
        uncertainty = single_cover(self.uncertainty, covered, shares, 1) if self.uncertainty else None
        classes = class_map(self.info, np.maximum(labels, 0), covered)
        return BlockResult(block.index, block.window, classes, shares if self.probabilities else None,
                           int(covered.sum()), predicted, uncertainty)

    def _pixels(self, block: Block, model: Model, data: np.ndarray, valid: np.ndarray) -> BlockResult:
        """A per-pixel model's block: what any tiling of it gives (each tile votes the same; weights cancel).

        Predicted in bands of rows, so that progress and cancel are heard during a slow model's block.
        """
        b = block.window
        rows = max(1, PIXEL_CHUNK // b.width)
        parts = []
        classes_only = self.info.task == "classification" and not self.probabilities and not self.uncertainty
        aoa = np.full((b.height, b.width), AOA_NODATA, np.uint8) if self.aoa else None
        for r in range(0, b.height, rows):  # transformed band by band: no block-sized copy in the model's type
            part_valid = valid[r : r + rows]
            x = self.transform.apply(data[:, r : r + rows], part_valid)
            if aoa is not None:  # the pixels as the model takes them, against the pixels it was trained on
                aoa[r : r + rows][part_valid] = applicable(x[:, part_valid].T, self.info.aoa)
            part = model.predict(x[None], part_valid[None])
            check_prediction(part, 1, min(rows, b.height - r), b.width, self.info)
            if self.progress:
                self.progress.tiles(block.index, part.shape[-2] * b.width)
            part = part[0]
            if classes_only and part.ndim == 2:  # class indices → class map, in its own small type, band by band
                part = class_map(self.info, part, part_valid)
            parts.append(part)
        prediction = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-2)
        covered = int(valid.sum())
        if classes_only and prediction.ndim == 2:
            return BlockResult(block.index, block.window, prediction, None, covered, 0, None, aoa)
        if self.info.task != "classification":
            values = prediction.astype(np.float32)
            np.copyto(values, np.nan, where=~valid)
            uncertainty = single_cover(self.uncertainty, valid, None, len(values)) if self.uncertainty else None
            return BlockResult(block.index, block.window, values, None, covered, 0, uncertainty, aoa)
        if prediction.ndim == 2:
            # np.int32(-1): with a Python -1, numpy 2 keeps uint8 labels uint8 and "no vote" would become 255
            result = self._from_labels(block, np.where(valid, prediction, np.int32(-1)), 0)
            result.aoa = aoa
            return result
        labels = decide(prediction, self.info)
        shares = None
        if (self.probabilities or self.uncertainty in FROM_PROBABILITIES) and self.aggregation == "softvote":
            shares = prediction.astype(np.float32)
            np.copyto(shares, np.nan, where=~valid)
        elif self.probabilities or self.uncertainty in FROM_PROBABILITIES:
            shares = self._one_hot(labels, valid)
        uncertainty = single_cover(self.uncertainty, valid, shares, 1) if self.uncertainty else None
        return BlockResult(block.index, block.window, class_map(self.info, labels, valid),
                           shares if self.probabilities else None, covered, 0, uncertainty, aoa)


def covered_pixels(main: np.ndarray, info: ModelInfo) -> int:
    """Pixels with data in (a part of) a block's main array: classes other than nodata, or values not NaN."""
    if info.task == "classification":
        return int((main != class_nodata(info.class_values)[1]).sum())
    return int((~np.isnan(main[0])).sum())


def class_map(info: ModelInfo, winners: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Class indices → the class map's values, nodata where no vote."""
    dtype, nodata = class_nodata(info.class_values)
    if info.class_values == list(range(info.n_classes)):
        classes = winners.astype(dtype)  # the values are the indices: no lookup
    else:
        classes = np.asarray(info.class_values, dtype=dtype)[winners]
    np.putmask(classes, ~covered, nodata)
    return classes


def finished_block(index: int, done: Finished, info: ModelInfo, probabilities: bool, tiles: int = 0,
                   aggregation: str = "hardvote", uncertainty: str | None = None, votes: Finished | None = None,
                   squares: Finished | None = None) -> BlockResult:
    """A block's sums → what is written: classes (and probabilities, vote shares), or mean values; and how sure.

    Votes were decided tile by tile; summed probabilities (softvote) are decided here, with the model's decision
    weights. The uncertainty map's probability measures come from the very shares written as probabilities.
    """
    covered = done.covered
    if info.task != "classification":
        mean = done.mean()
        return BlockResult(index, done.window, mean, None, int(covered.sum()), tiles,
                           variance(squares, mean) if uncertainty else None)
    winners = decide(done.sums, info) if aggregation == "softvote" else done.winners()
    shares = done.mean() if probabilities or uncertainty in FROM_PROBABILITIES else None
    sureness = None
    if uncertainty in FROM_PROBABILITIES:
        sureness = single_cover(uncertainty, covered, shares, 1)
    elif uncertainty == "disagreement":
        sureness = disagreement(votes, winners)
    return BlockResult(index, done.window, class_map(info, winners, covered),
                       shares if probabilities else None, int(covered.sum()), tiles, sureness)


def _place(labels: np.ndarray, b: Window, r: int, c: int, tile_labels: np.ndarray, tile_valid: np.ndarray) -> None:
    """Copy the part of one tile's classes (output at row r, column c) inside block `b`; invalid pixels: -1."""
    r0, c0 = max(r, b.row_off), max(c, b.col_off)
    r1, c1 = min(r + tile_labels.shape[0], b.row_end), min(c + tile_labels.shape[1], b.col_end)
    if r1 > r0 and c1 > c0:
        part = (slice(r0 - r, r1 - r), slice(c0 - c, c1 - c))
        labels[r0 - b.row_off : r1 - b.row_off, c0 - b.col_off : c1 - b.col_off] = np.where(
            tile_valid[part], tile_labels[part], np.int32(-1))  # a typed -1: uint8 labels must not wrap to 255



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
