"""Stitch per-chip predictions (GeoTIFFs on one pixel grid, e.g. made outside QGIS) into one raster.

Each chip is placed by its geotransform, weighted by the window (tapering only the sides inside the
mosaic) and blended with the aggregation: hard vote of class chips, soft vote of probability chips,
or the weighted mean of value chips. Pixels no chip covers are nodata.
"""
from __future__ import annotations

import bisect
import glob
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from ..budget import require_int_range, require_memory
from ..engine.blocks import MAX_CLASS_VALUE, finished_block
from ..engine.executors import AHEAD_PER_WORKER, make_executor
from ..engine.journal import BlockResult
from ..engine.map_writer import OUTPUT_FORMATS, MapWriter
from ..engine.stitching import AGGREGATIONS, BlockAccumulator, check_choice, parse_window, tile_weights
from ..engine.tiling import Block, block_side, plan_blocks
from ..errors import PatchworkError, reports_errors
from ..geometry import GeoTransform, Window
from ..io.raster import RasterSource, same_crs
from ..io.writer import require_raster_outputs
from ..models.base import ModelInfo, default_class_names, value_names
from ..progress import Feedback, SilentFeedback, check_cancelled


@dataclass
class StitchResult:
    """What stitch_chips wrote: the chips used, the mosaic's size and the part covered."""
    output: str
    chips: int
    width: int
    height: int
    covered_fraction: float
    style: str | None
    seconds: float


@dataclass(frozen=True)
class _Chip:
    path: str
    window: Window  # in the mosaic's pixel grid
    bands: int


def find_chips(folder: str) -> list[str]:
    """The GeoTIFFs in `folder`, sorted; a missing or empty folder is refused."""
    if not os.path.isdir(folder):
        raise PatchworkError(f"INPUT: '{folder}' is not a folder. Choose the folder that holds the chip GeoTIFFs.")
    paths = sorted(p for ext in ("*.tif", "*.tiff", "*.TIF", "*.TIFF") for p in glob.glob(os.path.join(folder, ext)))
    if not paths:
        raise PatchworkError(f"INPUT: no GeoTIFF chips (.tif, .tiff) in '{folder}'.")
    return paths


def _offset(value: float, pixel: float, what: str, path: str) -> int:
    steps = value / pixel
    if abs(steps - round(steps)) > 1e-3:
        raise PatchworkError(
            f"'{os.path.basename(path)}' is off the mosaic's pixel grid by {abs(steps - round(steps)):.3f} px "
            f"in {what}. Chips must share one grid: resample them (gdalwarp -tap -tr) or give a REFERENCE raster."
        )
    return int(round(steps))


def _layout(paths: list[str], reference: str | None) -> tuple[list[_Chip], GeoTransform, int, int, str]:
    headers = []
    for path in paths:
        with RasterSource(path, "INPUT") as src:
            src.require_georeferenced()
            headers.append((path, src.geotransform, src.width, src.height, src.count, src.crs_wkt))
    if reference:
        with RasterSource(reference, "REFERENCE") as ref:
            ref.require_georeferenced()
            gt, width, height, crs = ref.geotransform, ref.width, ref.height, ref.crs_wkt
    else:
        gt0 = headers[0][1]
        x0 = min(h[1][0] for h in headers)
        y0 = max(h[1][3] for h in headers)
        gt = (x0, gt0[1], 0.0, y0, 0.0, gt0[5])
        width = max(_offset(h[1][0] - x0, gt0[1], "x", h[0]) + h[2] for h in headers)
        height = max(_offset(h[1][3] - y0, gt0[5], "y", h[0]) + h[3] for h in headers)
        crs = headers[0][5]
    chips = []
    for path, cgt, w, h, count, cwkt in headers:
        if abs(cgt[1] - gt[1]) > 1e-6 * abs(gt[1]) or abs(cgt[5] - gt[5]) > 1e-6 * abs(gt[5]):
            raise PatchworkError(f"'{os.path.basename(path)}' has {cgt[1]:g} x {abs(cgt[5]):g} pixels, the mosaic "
                                 f"{gt[1]:g} x {abs(gt[5]):g}. Resample the chips to one pixel size first.")
        if cwkt and crs and not same_crs(cwkt, crs):
            raise PatchworkError(f"'{os.path.basename(path)}' is in another CRS than the mosaic. Chips must share "
                                 "one CRS: reproject them first.")
        window = Window(_offset(cgt[3] - gt[3], gt[5], "y", path), _offset(cgt[0] - gt[0], gt[1], "x", path), h, w)
        if window.clip(height, width) is not None:
            chips.append(_Chip(path, window, count))
    if not chips:
        raise PatchworkError("REFERENCE: none of the chips overlaps the reference raster.")
    return chips, gt, width, height, crs


@reports_errors
def stitch_chips(
    chips: str | list[str],
    output: str,
    *,
    window: str = "boxcar",
    aggregation: str = "hardvote",
    n_classes: int = 0,
    reference: str | None = None,
    workers: int = 0,
    output_format: str = "GTiff",
    block_size: int | None = None,
    feedback: Feedback | None = None,
    check_only: bool = False,
) -> StitchResult | None:
    """Blend chips (a folder of GeoTIFFs, or a list of paths) into `output`.

    Args:
        chips: A folder of chip GeoTIFFs on one grid, or a list of their paths.
        output: The mosaic to write.
        window: How overlapping chips are weighted: "boxcar", "hann" or "triangular".
        aggregation: "hardvote" (single-band chips of class ids 0..n_classes-1; other values do not vote),
            "softvote" (chips of n_classes probability bands): both write a class map; "mean" (chips with any
            equal band count) writes float32.
        n_classes: The number of classes, for votes.
        reference: A raster whose grid and extent the mosaic takes (default: the chips' union on their grid).
        workers: Threads computing blocks (0: every core); the result is the same for any number.
        output_format: "GTiff" or "COG".
        block_size: The side of the independent blocks in pixels.
        feedback: Progress, cancel and messages (default: silent).
        check_only: Make the checks a run makes before it writes, on the first chip only (opening thousands
            would take seconds), and return None.

    Returns:
        The mosaic written, its size and the fraction covered; None with `check_only`.

    Raises:
        PatchworkError: No chips, chips off one grid, or band counts that do not fit the aggregation.
        Cancelled: `feedback` asked to stop; nothing is left behind.
    """
    feedback = feedback or SilentFeedback()
    started = time.perf_counter()
    parse_window(window)
    check_choice("aggregation", aggregation, AGGREGATIONS)
    check_choice("output format", output_format, OUTPUT_FORMATS)
    paths = find_chips(chips) if isinstance(chips, str) else list(chips)
    if aggregation != "mean":
        require_int_range("N_CLASSES", n_classes, 1, MAX_CLASS_VALUE + 1, "Votes need the number of classes.")
    if aggregation != "mean" and n_classes < 1:
        raise PatchworkError(f"N_CLASSES: {aggregation} needs the number of classes (class ids 0..N_CLASSES-1).")
    require_raster_outputs({"OUTPUT": output}, {"INPUT chip": paths, "REFERENCE": reference})
    layout, gt, width, height, crs = _layout(paths[:1] if check_only else paths, reference)
    bands = {c.bands for c in layout}
    expected = {"hardvote": 1, "softvote": n_classes}.get(aggregation)
    if (expected is not None and bands != {expected}) or len(bands) != 1:
        need = f"{expected} band(s)" if expected else "the same number of bands"
        raise PatchworkError(f"INPUT: {aggregation} needs chips with {need}; these have {sorted(bands)} bands.")
    if check_only:
        return None
    channels = n_classes if aggregation != "mean" else bands.pop()
    layout.sort(key=lambda c: (c.window.row_off, c.window.col_off))
    feedback.info(f"{len(layout)} chips onto a {width} x {height} px mosaic ({window} window, {aggregation})")

    if aggregation == "mean":
        info = ModelInfo(name="mosaic", task="regression", output_names=value_names(channels))
    else:
        info = ModelInfo(name="mosaic", class_values=list(range(n_classes)),
                         class_names=default_class_names(list(range(n_classes))))
    side = block_side(None, channels, block_size)
    blocks = plan_blocks(height, width, None, side)
    executor = make_executor(workers)
    require_memory((executor.workers * AHEAD_PER_WORKER + 1) * side * side * (channels + 1) * 8 * 2, "N_CLASSES",
                   f"{channels} classes in blocks of {side} px on {executor.description}",
                   "Check N_CLASSES, or lower WORKERS.")
    job = _StitchJob(layout, height, width, window, aggregation, channels, info)
    with ExitStack() as stack:
        stack.callback(executor.close)
        writer = MapWriter(stack, width, height, gt, crs, info, output, aggregation=aggregation, log=feedback.info,
                           cog=output_format == "COG", cancelled=feedback.is_cancelled)
        results = executor.map(job, blocks, lambda: check_cancelled(feedback), item_pixels=side * side)
        stack.callback(results.close)
        for i, result in enumerate(results):
            check_cancelled(feedback)
            writer.write(result)
            feedback.set_progress(100.0 * (i + 1) / len(blocks))
        check_cancelled(feedback)
    return StitchResult(output, len(layout), width, height, writer.covered / (width * height), writer.style,
                        time.perf_counter() - started)


@dataclass
class _StitchJob:
    """One block of the mosaic from the chips that reach into it, added in the layout's order."""

    layout: list[_Chip]  # sorted by (row, column)
    height: int
    width: int
    window: str
    aggregation: str
    channels: int
    info: ModelInfo

    def __post_init__(self) -> None:
        self.rows = [c.window.row_off for c in self.layout]
        self.tallest = max(c.window.height for c in self.layout)

    def __call__(self, block: Block) -> BlockResult:
        b = block.window
        acc = BlockAccumulator(b, self.channels, self.aggregation)
        # Only chips starting less than the tallest chip above the block can reach it.
        first = bisect.bisect_right(self.rows, b.row_off - self.tallest)
        last = bisect.bisect_left(self.rows, b.row_end)
        for chip in self.layout[first:last]:
            w = chip.window
            r0, c0 = max(w.row_off, b.row_off), max(w.col_off, b.col_off)
            r1, c1 = min(w.row_end, b.row_end), min(w.col_end, b.col_end)
            if r1 <= r0 or c1 <= c0:
                continue
            with RasterSource(chip.path, "INPUT") as src:
                data, valid = src.read(Window(r0 - w.row_off, c0 - w.col_off, r1 - r0, c1 - c0))
            weights = tile_weights(w.height, w.width, self.window, w.row_off <= 0, w.row_end >= self.height,
                                   w.col_off <= 0, w.col_end >= self.width)
            weights = weights[r0 - w.row_off : r1 - w.row_off, c0 - w.col_off : c1 - w.col_off]
            if self.aggregation == "hardvote":
                values = np.where(valid, data[0].astype(np.int64), -1)  # int64 first: numpy 2 would wrap -1 in uint8
                beyond = values[(values >= self.channels) | (values < -1)]
                if beyond.size:  # such a value votes for no class: its pixels would silently become nodata
                    value = int(beyond.max()) if beyond.max() >= self.channels else int(beyond.min())
                    fix = f"Set N_CLASSES to at least {value + 1}" if value > 0 else "Give the chips class ids from 0"
                    raise PatchworkError(
                        f"N_CLASSES: the chip '{os.path.basename(chip.path)}' holds class {value}, but "
                        f"N_CLASSES={self.channels} means classes 0 to {self.channels - 1}. {fix} (or mark that value "
                        "as the chips' nodata).")
            else:
                values = data.astype(np.float64)
            acc.add(r0, c0, values, weights, valid)
        return finished_block(block.index, acc.finish(), self.info, False)
