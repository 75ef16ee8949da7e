"""Super-resolution by tiles, on a grid k times finer than the input's.

The model returns k times more pixels along each axis; its tiles are stitched on the finer grid, georeferenced
exactly (the same corner, pixels k times smaller).

Tiles follow the classify grid (the last ones shifted back onto the raster's edge); overlapping tiles are blended
with the window's weights at the output resolution. The tiles are predicted in groups on worker threads or a Dask
cluster (`engine.tile_groups`) and come back in order; the output is streamed one row of tiles at a time: only the
rows that later tiles can still reach are kept in memory. Output pixels whose input pixel is nodata are NaN.
"""
from __future__ import annotations

import os
import time
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..budget import MAX_BATCH_SIZE, MAX_TILE_SIZE, require_disk, require_int_range
from ..engine.blocks import BlockProgress
from ..engine.executors import make_executor
from ..engine.model_input import input_transform, model_grid
from ..engine.stitching import parse_window, tile_weights
from ..engine.tile_groups import TileGroupJob, loaded_for_tiles, run_tile_groups, tile_groups, tile_journal
from ..engine.tiling import TileGrid
from ..errors import PatchworkError, reports_errors
from ..geometry import Window
from ..io.aoi import Aoi
from ..io.partials import Log
from ..io.raster import RasterSource, no_crs_warning
from ..io.web import XyzSource
from ..io.writer import GeoTiffWriter, require_raster_outputs
from ..models.base import Model
from ..progress import Feedback, SilentFeedback


@dataclass
class SuperResolutionResult:
    """What superresolve wrote."""

    output: str
    scale_factor: int
    width: int
    height: int
    tiles: int
    seconds: float


def finer_geotransform(geotransform, factor: int) -> tuple:
    """The geotransform of a grid `factor` times finer: the same corner, pixels `factor` times smaller."""
    gt = geotransform
    return gt[0], gt[1] / factor, gt[2] / factor, gt[3], gt[4] / factor, gt[5] / factor


@reports_errors
def superresolve(
    raster: str | XyzSource,
    model: Model | str,
    output: str,
    *,
    bands: list[int] | None = None,
    scale: float = 1.0,
    offset: float = 0.0,
    overlap: int | None = None,
    window: str = "hann",
    batch_size: int = 1,
    resolution: float | None = None,
    mask: Aoi | None = None,
    device: str = "auto",
    workers: int = 0,
    scheduler: Any = None,
    resume: bool = False,
    feedback: Feedback | None = None,
    check_only: bool = False,
) -> SuperResolutionResult | None:
    """Run a super-resolution `model` over `raster` tile by tile into `output`, k times finer.

    Args:
        raster: The raster to enhance (a GDAL-readable path), or an XYZ tile service (XyzSource), read as classify
            reads one: at the zoom of `resolution` or the model's, over its extent or the mask's.
        model: A super-resolution ONNX model (Deepness's model_type Superresolution, or an output k times larger
            than its input).
        output: The float32 GeoTIFF to write, one band per model output.
        bands: The input bands fed to the model, 1-based, in its order (default: all).
        scale: Input values are multiplied by this (1/255 for 8-bit imagery), then `offset` is added.
        offset: See `scale`.
        overlap: Input pixels neighbouring tiles share (default: the model's tiles_overlap, else 0).
        window: How overlapping tiles are weighted: "boxcar", "hann" or "triangular".
        batch_size: Tiles per model call.
        resolution: The pixel size the model reads, in the raster's units: the raster is read resampled to it (a
            GDAL warped VRT), and the output is k times finer than that. Default: the model's `resolution`
            metadata (cm per pixel), else the raster's own.
        mask: Polygons (any CRS): only the tiles that reach their box are computed, and the output is NaN outside
            them (pixels whose centre lies outside); inside it is the output without a mask. For an XYZ service it is
            also the area read (its box and a tile around it).
        device: Where the model computes: "auto", "cpu" or "cuda".
        workers: Threads computing groups of tiles (0: every core); the output is the same bytes for any number.
        scheduler: A Dask scheduler's address (tcp://host:8786) or a distributed.Client, to compute on a cluster.
        resume: Keep the predictions of finished groups of tiles in a journal beside the output, so that the same
            run started again continues (and writes the output an uninterrupted run writes).
        feedback: Progress, cancel and messages (default: silent).
        check_only: Make the checks a run makes before it reads pixels, then return None.

    Returns:
        The file written and its size, or None with `check_only`.

    Raises:
        PatchworkError: Bad input or a model that is not a super-resolution model; nothing is written.
        Cancelled: `feedback` asked to stop; nothing is left behind.
    """
    feedback = feedback or SilentFeedback()
    started = time.perf_counter()
    parse_window(window)
    require_int_range("BATCH_SIZE", batch_size, 1, MAX_BATCH_SIZE)
    require_raster_outputs({"OUTPUT": output}, {"INPUT": raster if isinstance(raster, str) else None,
                                                "MODEL": model if isinstance(model, str) else None})
    model, model_file, local_workers = loaded_for_tiles(model, device, workers, scheduler)
    info = model.info
    if info.task != "superresolution":
        raise PatchworkError(f"MODEL: '{info.name}' is a {info.task} model, not a super-resolution one: use Classify "
                             "raster (patchwork:classify) or Detect objects for it.")
    tile = int(info.tile_size or info.default_tile_size)
    require_int_range("TILE_SIZE", tile, 1, MAX_TILE_SIZE)
    overlap = info.default_overlap if overlap is None else int(overlap)
    if not 0 <= overlap < tile:
        raise PatchworkError(f"OVERLAP: {overlap} px must be at least 0 and below the tile size ({tile} px).")
    if info.batch_size:
        batch_size = info.batch_size
    with model_grid(raster, info, resolution, mask, tile, output, None if check_only else feedback) as (path, _), \
            RasterSource(path) as src:
        transform = input_transform(src, info, bands, scale, offset)
        if check_only:
            return None
        if not src.crs_wkt:
            feedback.info(no_crs_warning(src.path, "output"))
        grid = TileGrid(src.height, src.width, tile, 0, overlap)
        rows, cols = [int(r) for r in grid.rows], [int(c) for c in grid.cols]
        windows = [Window(r, c, tile, tile) for r in rows for c in cols]
        inside = None
        if mask is not None:  # only the tiles that reach the mask's box are computed; outside it, NaN
            inside = mask.transformed(src.crs_wkt)
            box = inside.pixel_window(src.geotransform, src.height, src.width, src.footprint_wkt())  # or refuses
            windows = [w for w in windows if w.overlaps(box)]
        starts = [i for i, w in enumerate(windows) if i == 0 or w.row_off != windows[i - 1].row_off]
        groups = tile_groups(windows, batch_size, breaks=starts)  # row by row
        job = TileGroupJob(src.path, transform, batch_size, _finite_predictions, model_file, model)
        os.makedirs(os.path.dirname(os.path.abspath(output)) or ".", exist_ok=True)
        if resume:  # every tile's prediction is kept until the run completes
            k = info.scale_factor
            require_disk(output, len(windows) * tile * tile * (k * k * 4 * info.n_outputs + 1), "RESUME",
                         "the journal of finished tiles", "Free some space, or run without RESUME.")
        with tile_journal("superresolve", job, windows, output, resume, feedback.info, window=window,
                          groups=[len(g.windows) for g in groups]) as journal, \
                closing(make_executor(local_workers, scheduler)) as executor:
            feedback.info(f"Model '{info.name}': x{info.scale_factor} super-resolution, {len(windows)} tiles of {tile} "
                          f"px, overlap {overlap} px, {window} window: {src.width} x {src.height} px → "
                          f"{src.width * info.scale_factor} x {src.height * info.scale_factor} px; computing on "
                          f"{model.device}, {executor.description}")
            computed = run_tile_groups(job, groups, BlockProgress(feedback, len(windows)), executor, tile * tile,
                                       journal)
            _write_finer(output, src, info, window, tile, computed, feedback.info, inside)
            if journal.done:
                feedback.info(f"RESUME: {len(journal.done)} of {len(groups)} groups of tiles were taken from the "
                              "earlier run.")
    k = info.scale_factor
    return SuperResolutionResult(output, k, src.width * k, src.height * k, len(windows), time.perf_counter() - started)


def _finite_predictions(model: Model, windows: list[Window], x: np.ndarray, valid: np.ndarray) -> tuple:
    """A batch's predictions and validity (on a worker: `engine.tile_groups`), refused when not finite numbers."""
    predictions = model.predict(x, valid)
    if not np.all(np.isfinite(predictions)):  # else a raster of NaN, which reads as nodata
        raise PatchworkError(f"MODEL: '{model.info.name}' gave values that are not finite numbers for the tiles at "
                             f"row {windows[0].row_off}. Check SCALE, OFFSET and BANDS, or the model.")
    return predictions, valid


class _FinerStrip:
    """The output rows (k times finer) that tiles still add to, from input row `top` down.

    It holds their weighted sums, weights and coverage; rows above are written as soon as no later tile reaches them.
    """

    def __init__(self, writer: GeoTiffWriter, src: RasterSource, k: int, channels: int, tile: int, window: str,
                 inside: Aoi | None) -> None:
        self.writer, self.src, self.k, self.tile, self.window, self.inside = writer, src, k, tile, window, inside
        self.width = src.width * k
        self.top = 0
        self.sums, self.weight = np.zeros((channels, 0, self.width)), np.zeros((0, self.width))
        self.covered = np.zeros((0, self.width), bool)

    def reach(self, end: int) -> None:
        """Hold the rows down to input row `end`."""
        extra = (end - self.top) * self.k - self.weight.shape[0]
        if extra > 0:
            self.sums = np.concatenate([self.sums, np.zeros((self.sums.shape[0], extra, self.width))], axis=1)
            self.weight = np.concatenate([self.weight, np.zeros((extra, self.width))])
            self.covered = np.concatenate([self.covered, np.zeros((extra, self.width), bool)])

    def add(self, w: Window, prediction: np.ndarray, valid: np.ndarray) -> None:
        """One tile's prediction, weighted by the window (at the output resolution) where its input is valid."""
        k, tile, src = self.k, self.tile, self.src
        flags = (w.row_off == 0, w.row_off + tile >= src.height, w.col_off == 0, w.col_off + tile >= src.width)
        weights = tile_weights(tile * k, tile * k, self.window, *flags)
        top, left = (w.row_off - self.top) * k, w.col_off * k
        h, wd = min(tile * k, self.sums.shape[1] - top), min(tile * k, self.width - left)
        fine_valid = np.repeat(np.repeat(valid, k, axis=0), k, axis=1)[:h, :wd]
        ww = weights[:h, :wd] * fine_valid
        self.sums[:, top : top + h, left : left + wd] += prediction[:, :h, :wd] * ww
        self.weight[top : top + h, left : left + wd] += ww
        self.covered[top : top + h, left : left + wd] |= fine_valid

    def write_down_to(self, end: int) -> None:
        """Rows above input row `end` are final: write them (NaN where no tile covers, or outside the mask)."""
        self.reach(end)
        final = (end - self.top) * self.k
        if final == 0:
            return
        with np.errstate(invalid="ignore", divide="ignore"):
            values = (self.sums[:, :final] / self.weight[:final]).astype(np.float32)
        np.copyto(values, np.nan, where=~self.covered[:final])
        if self.inside is not None and final:
            finer = finer_geotransform(self.src.geotransform, self.k)
            np.copyto(values, np.nan, where=~self.inside.inside_mask(finer, Window(self.top * self.k, 0, final,
                                                                                   self.width)))
        self.writer.write_block(values, self.top * self.k, 0)
        self.sums, self.weight, self.covered = self.sums[:, final:], self.weight[final:], self.covered[final:]
        self.top = end


def _write_finer(output: str, src: RasterSource, info, window: str, tile: int, computed, log: Log,
                 inside: Aoi | None = None) -> None:
    """The tiles' predictions blended on the k times finer grid, written one row of tiles at a time.

    Only the output rows that later tiles can still reach are kept in memory. `computed`: the groups of tiles and
    their batches' (predictions, validity), in row order (`run_tile_groups`). Outside `inside`, NaN.
    """
    k = info.scale_factor
    with GeoTiffWriter(output, src.width * k, src.height * k, info.n_outputs, np.float32,
                       finer_geotransform(src.geotransform, k), src.crs_wkt, float("nan"), log=log) as writer:
        writer.set_band_descriptions(info.output_names)
        strip, row = _FinerStrip(writer, src, k, info.n_outputs, tile, window, inside), None
        for group, batches in computed:
            if group.windows[0].row_off != row:  # a new row of tiles: the rows above it are final
                row = group.windows[0].row_off
                strip.write_down_to(row)
                strip.reach(min(row + tile, src.height))
            tiles = iter(group.windows)
            for predictions, valids in batches:
                for prediction, valid in zip(predictions, valids):
                    strip.add(next(tiles), prediction, valid)
        strip.write_down_to(src.height)
