"""Super-resolution by tiles, on a grid k times finer than the input's.

The model returns k times more pixels along each axis; its tiles are stitched on the finer grid, georeferenced
exactly (the same corner, pixels k times smaller).

Tiles follow the classify grid (the last ones shifted back onto the raster's edge); overlapping tiles are blended
with the window's weights at the output resolution. The output is streamed one row of tiles at a time: only the
rows that later tiles can still reach are kept in memory. Output pixels whose input pixel is nodata are NaN.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from ..budget import MAX_BATCH_SIZE, MAX_TILE_SIZE, require_int_range
from ..engine.model_input import input_transform
from ..engine.stitching import parse_window, tile_weights
from ..engine.tiling import TileGrid
from ..errors import PatchworkError, reports_errors
from ..geometry import Window
from ..io.raster import RasterSource, no_crs_warning
from ..io.writer import GeoTiffWriter, require_raster_outputs
from ..models import load_model
from ..models.base import Model, require_model_file
from ..progress import Feedback, SilentFeedback, check_cancelled


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
    raster: str,
    model: Model | str,
    output: str,
    *,
    bands: list[int] | None = None,
    scale: float = 1.0,
    offset: float = 0.0,
    overlap: int | None = None,
    window: str = "hann",
    batch_size: int = 1,
    device: str = "auto",
    feedback: Feedback | None = None,
    check_only: bool = False,
) -> SuperResolutionResult | None:
    """Run a super-resolution `model` over `raster` tile by tile into `output`, k times finer.

    Args:
        raster: The raster to enhance (a GDAL-readable path).
        model: A super-resolution ONNX model (Deepness's model_type Superresolution, or an output k times larger
            than its input).
        output: The float32 GeoTIFF to write, one band per model output.
        bands: The input bands fed to the model, 1-based, in its order (default: all).
        scale: Input values are multiplied by this (1/255 for 8-bit imagery), then `offset` is added.
        offset: See `scale`.
        overlap: Input pixels neighbouring tiles share (default: the model's tiles_overlap, else 0).
        window: How overlapping tiles are weighted: "boxcar", "hann" or "triangular".
        batch_size: Tiles per model call.
        device: Where the model computes: "auto", "cpu" or "cuda".
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
    require_raster_outputs({"OUTPUT": output}, {"INPUT": raster, "MODEL": model if isinstance(model, str) else None})
    if isinstance(model, str):
        require_model_file(model)
        model = load_model(model, device=device)
    info = model.info
    if info.task != "superresolution":
        raise PatchworkError(f"MODEL: '{info.name}' is a {info.task} model, not a super-resolution one: use Classify "
                             "raster (patchwork:classify) or Detect objects for it.")
    k, tile = info.scale_factor, int(info.tile_size or info.default_tile_size)
    require_int_range("TILE_SIZE", tile, 1, MAX_TILE_SIZE)
    overlap = info.default_overlap if overlap is None else int(overlap)
    if not 0 <= overlap < tile:
        raise PatchworkError(f"OVERLAP: {overlap} px must be at least 0 and below the tile size ({tile} px).")
    if info.batch_size:
        batch_size = info.batch_size
    with RasterSource(raster) as src:
        transform = input_transform(src, info, bands, scale, offset)
        if check_only:
            return None
        if not src.crs_wkt:
            feedback.info(no_crs_warning(src.path, "output"))
        grid = TileGrid(src.height, src.width, tile, 0, overlap)
        rows, cols = [int(r) for r in grid.rows], [int(c) for c in grid.cols]
        channels = info.n_outputs
        height, width = src.height * k, src.width * k
        feedback.info(f"Model '{info.name}': x{k} super-resolution, {len(rows) * len(cols)} tiles of {tile} px, "
                      f"overlap {overlap} px, {window} window: {src.width} x {src.height} px → {width} x {height} px")
        os.makedirs(os.path.dirname(os.path.abspath(output)) or ".", exist_ok=True)
        with GeoTiffWriter(output, width, height, channels, np.float32, finer_geotransform(src.geotransform, k),
                           src.crs_wkt, float("nan"), log=feedback.info) as writer:
            writer.set_band_descriptions(info.output_names)
            # The output rows from strip_top down that tiles still add to (empty until the first row of tiles).
            strip_top = 0
            sums, weight, covered = np.zeros((channels, 0, width)), np.zeros((0, width)), np.zeros((0, width), bool)
            done = 0
            for i, r in enumerate(rows):
                bottom = min(r + tile, src.height)  # this row of tiles reaches input rows [r, bottom)
                need = (bottom - strip_top) * k
                if need > weight.shape[0]:  # grow the strip down to this row of tiles' bottom
                    extra = need - weight.shape[0]
                    sums = np.concatenate([sums, np.zeros((channels, extra, width))], axis=1)
                    weight = np.concatenate([weight, np.zeros((extra, width))])
                    covered = np.concatenate([covered, np.zeros((extra, width), bool)])
                windows = [Window(r, c, tile, tile) for c in cols]
                for start in range(0, len(windows), batch_size):
                    check_cancelled(feedback)
                    batch = windows[start : start + batch_size]
                    pixels = [src.read(w, transform.bands) for w in batch]
                    x = np.stack([transform.apply(data, valid) for data, valid in pixels])
                    predictions = model.predict(x, np.stack([valid for _, valid in pixels]))
                    if not np.all(np.isfinite(predictions)):  # else a raster of NaN, which reads as nodata
                        raise PatchworkError(f"MODEL: '{info.name}' gave values that are not finite numbers for the "
                                             f"tiles at row {batch[0].row_off}. Check SCALE, OFFSET and BANDS, or the "
                                             "model.")
                    for w, (_, valid), prediction in zip(batch, pixels, predictions):
                        flags = (w.row_off == 0, w.row_off + tile >= src.height, w.col_off == 0,
                                 w.col_off + tile >= src.width)
                        weights = tile_weights(tile * k, tile * k, window, *flags)
                        top, left = (w.row_off - strip_top) * k, w.col_off * k
                        h = min(tile * k, sums.shape[1] - top)
                        wd = min(tile * k, width - left)
                        fine_valid = np.repeat(np.repeat(valid, k, axis=0), k, axis=1)[:h, :wd]
                        ww = weights[:h, :wd] * fine_valid
                        sums[:, top : top + h, left : left + wd] += prediction[:, :h, :wd] * ww
                        weight[top : top + h, left : left + wd] += ww
                        covered[top : top + h, left : left + wd] |= fine_valid
                    done += len(batch)
                    feedback.set_progress(100.0 * done / (len(rows) * len(cols)))
                # Rows above the next row of tiles are final: write them and let them go.
                final = ((rows[i + 1] if i + 1 < len(rows) else src.height) - strip_top) * k
                with np.errstate(invalid="ignore", divide="ignore"):
                    values = (sums[:, :final] / weight[:final]).astype(np.float32)
                np.copyto(values, np.nan, where=~covered[:final])
                writer.write_block(values, strip_top * k, 0)
                sums, weight, covered = sums[:, final:], weight[final:], covered[final:]
                strip_top += final // k
    return SuperResolutionResult(output, k, width, height, len(rows) * len(cols), time.perf_counter() - started)
