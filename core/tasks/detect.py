"""Object detection over a raster by tiles: YOLO boxes from every tile, in map coordinates, merged over the raster.

Tiles start every (tile − overlap) px from the top-left corner, a multiple of the model's stride, so each tile
sees the model's cells where one call on the whole raster would; the last tiles reach past the raster and are
padded as nodata. A box that crosses an edge a tile shares with a neighbour is cut there and dropped: the
neighbour sees it whole when the overlap is larger than the object. Non-maximum suppression over the whole raster
(per class) then removes the copies from overlapping tiles. The boxes go to a GeoPackage as polygons in the
raster's CRS (any geotransform, rotated too) with class, name and score, styled by class.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from osgeo import ogr

from ..budget import MAX_BATCH_SIZE, MAX_TILE_SIZE, require_int_range
from ..engine.blocks import BlockProgress
from ..engine.executors import make_executor
from ..engine.journal import BlockJournal
from ..engine.model_input import input_transform, model_grid
from ..engine.tile_groups import TileGroup, TileGroupJob, loaded_for_tiles, run_tile_groups, tile_groups, tile_journal
from ..errors import Cancelled, PatchworkError, reports_errors
from ..geometry import Window
from ..io.aoi import Aoi
from ..io.palette import categorized_qml, class_colours
from ..io.partials import Log
from ..io.paths import check_outputs
from ..io.raster import RasterSource, no_crs_warning
from ..io.vectors import write_styled_layer
from ..io.web import XyzSource
from ..io.writer import require_writable_folder
from ..models.base import Model
from ..progress import Feedback, SilentFeedback, check_cancelled

MAX_CANDIDATE_BOXES = 2_000_000  # boxes above the score merged by NMS (a few seconds of work when they are spread out)
EDGE_PX = 1.0  # a box reaching this close to a shared tile edge counts as cut there


@dataclass
class DetectResult:
    """What detect wrote: the vector layer, its boxes and how it tiled."""

    output: str
    boxes: np.ndarray  # rows (x0, y0, x1, y1, score, class) in the pixels of the grid searched, after NMS
    class_names: list[str]
    tiles: int
    tile_size: int
    overlap: int
    seconds: float


def tile_starts(length: int, tile: int, step: int) -> list[int]:
    """Starts of the tiles along one axis: every `step` px from 0 until a tile reaches the end (padded beyond)."""
    starts = [0]
    while starts[-1] + tile < length:
        starts.append(starts[-1] + step)
    return starts


def non_maximum_suppression(boxes: np.ndarray, iou: float, cancelled: Callable[[], bool] | None = None) -> np.ndarray:
    """The boxes (x0, y0, x1, y1, score, class rows) kept by greedy NMS per class, highest score first.

    Ties in score are broken by position, so the result does not depend on the order tiles came in. Each kept box
    is compared only with the boxes whose x range can reach it (found by bisection in x order), so far-apart boxes
    cost no comparisons; `cancelled` is asked every few hundred boxes.
    """
    if len(boxes) == 0:
        return boxes
    order = np.lexsort((boxes[:, 1], boxes[:, 0], -boxes[:, 4]))
    boxes = boxes[order]
    kept = []
    for cls in np.unique(boxes[:, 5]):
        group = boxes[boxes[:, 5] == cls]
        x0, y0, x1, y1 = group[:, 0], group[:, 1], group[:, 2], group[:, 3]
        areas = np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)
        by_x = np.argsort(x0, kind="stable")
        sorted_x0 = x0[by_x]
        widest = float(np.max(x1 - x0))
        alive = np.ones(len(group), bool)
        for i in range(len(group)):
            if i % 256 == 0 and cancelled is not None and cancelled():
                raise Cancelled("cancelled by the user while overlapping boxes were merged")
            if not alive[i]:
                continue
            kept.append(group[i])
            near = by_x[np.searchsorted(sorted_x0, x0[i] - widest):np.searchsorted(sorted_x0, x1[i])]
            rest = near[(near > i) & alive[near]]
            if len(rest) == 0:
                continue
            w = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
            h = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
            inter = w * h
            union = areas[i] + areas[rest] - inter
            overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
            alive[rest[overlap > iou]] = False
    kept = np.array(kept)
    return kept[np.lexsort((kept[:, 1], kept[:, 0], -kept[:, 4]))]


def usable_boxes(rows: np.ndarray, n_classes: int) -> np.ndarray:
    """Which of a model's boxes are boxes: finite corners and score, x1 > x0 and y1 > y0, a class it has."""
    finite = np.all(np.isfinite(rows[:, :6]), axis=1)
    with np.errstate(invalid="ignore"):
        return finite & (rows[:, 2] > rows[:, 0]) & (rows[:, 3] > rows[:, 1]) & (rows[:, 5] >= 0) \
            & (rows[:, 5] < n_classes) & (rows[:, 5] == np.round(rows[:, 5]))


def _cut(rows: np.ndarray, tile: Window, height: int, width: int) -> np.ndarray:
    """Which boxes (in raster pixels) cross an edge of `tile` that lies inside the raster (a neighbour's)."""
    top, left = tile.row_off, tile.col_off
    bottom, right = top + tile.height, left + tile.width
    cut = np.zeros(len(rows), bool)
    if left > 0:
        cut |= rows[:, 0] < left + EDGE_PX
    if top > 0:
        cut |= rows[:, 1] < top + EDGE_PX
    if right < width:
        cut |= rows[:, 2] > right - EDGE_PX
    if bottom < height:
        cut |= rows[:, 3] > bottom - EDGE_PX
    return cut


def _checked_settings(model, tile_size: int | None, overlap: int | None, confidence: float | None,
                      iou: float | None) -> tuple[int, int, float, float]:
    """The tile, overlap, score and IoU thresholds a run uses (given, else the model's), checked."""
    info = model.info
    stride = model.stride
    tile = int(tile_size or info.tile_size or info.default_tile_size)
    require_int_range("TILE_SIZE", tile, stride, MAX_TILE_SIZE)
    if info.tile_size and tile != info.tile_size:
        raise PatchworkError(f"TILE_SIZE: '{info.name}' takes {info.tile_size} px tiles only; set TILE_SIZE to "
                             f"{info.tile_size} or leave it empty.")
    if tile % stride:
        raise PatchworkError(f"TILE_SIZE: {tile} px is not a multiple of the model's stride ({stride} px).")
    overlap = info.default_overlap if overlap is None else int(overlap)
    overlap -= overlap % stride  # tiles keep the model's cells where a whole-raster call has them
    if not 0 <= overlap < tile:
        raise PatchworkError(f"OVERLAP: {overlap} px must be at least 0 and below the tile size ({tile} px).")
    confidence = model.confidence if confidence is None else float(confidence)
    iou = model.iou if iou is None else float(iou)
    for role, value in (("CONFIDENCE", confidence), ("IOU", iou)):
        if not 0.0 <= value <= 1.0:
            raise PatchworkError(f"{role}: {value} is not between 0 and 1.")
    return tile, overlap, confidence, iou


@reports_errors
def detect(
    raster: str | XyzSource,
    model: Model | str,
    output: str,
    *,
    bands: list[int] | None = None,
    scale: float = 1.0,
    offset: float = 0.0,
    tile_size: int | None = None,
    overlap: int | None = None,
    confidence: float | None = None,
    iou: float | None = None,
    batch_size: int = 4,
    mask: Aoi | None = None,
    resolution: float | None = None,
    device: str = "auto",
    workers: int = 0,
    scheduler: Any = None,
    resume: bool = False,
    feedback: Feedback | None = None,
    check_only: bool = False,
) -> DetectResult | None:
    """Detect objects in `raster` with a YOLO-style ONNX `model`, tile by tile, into the GeoPackage `output`.

    Args:
        raster: The raster to search (a GDAL-readable path), or an XYZ tile service (XyzSource), read as classify
            reads one: at the zoom of `resolution` or the model's, over its extent or the mask's.
        model: A detector (.onnx with Deepness's model_type Detector, or YOLO box outputs).
        output: The GeoPackage of boxes to write (layer "detections": class, name, score).
        bands: The input bands fed to the model, 1-based, in its order (default: all).
        scale: Input values are multiplied by this (1/255 for 8-bit imagery), then `offset` is added.
        offset: See `scale`.
        tile_size: The tile side in pixels (default: the model's, else 640).
        overlap: Pixels neighbouring tiles share (default: the model's tiles_overlap, else 15 %): larger than the
            objects, so that each object lies whole in a tile; rounded down to the model's stride.
        confidence: The lowest score kept (default: the model's det_conf, else 0.3).
        iou: Boxes of a class overlapping more than this (intersection over union) are one object (default: the
            model's det_iou_thresh, else 0.5).
        batch_size: Tiles per model call.
        mask: Polygons (any CRS): only boxes whose centre lies inside are kept; tiles that miss them are skipped.
        resolution: The pixel size the detector runs at, in the raster's units: the raster is read resampled to it
            (a GDAL warped VRT). Default: the model's `resolution` metadata (cm per pixel), else the raster's own.
            The boxes are in map coordinates either way.
        device: Where the model computes: "auto", "cpu" or "cuda".
        workers: Threads computing groups of tiles (0: every core); the boxes are the same for any number.
        scheduler: A Dask scheduler's address (tcp://host:8786) or a distributed.Client, to compute on a cluster.
        resume: Keep the boxes of finished groups of tiles in a journal beside the output, so that the same run
            started again continues.
        feedback: Progress, cancel and messages (default: silent).
        check_only: Make the checks a run makes before it reads pixels, then return None.

    Returns:
        The file written and its boxes (raster pixels), or None with `check_only`.

    Raises:
        PatchworkError: Bad input or a model that is not a detector; nothing is written.
        Cancelled: `feedback` asked to stop; nothing is left behind.
    """
    feedback = feedback or SilentFeedback()
    started = time.perf_counter()
    require_int_range("BATCH_SIZE", batch_size, 1, MAX_BATCH_SIZE)
    if not output.lower().endswith(".gpkg"):
        raise PatchworkError(f"OUTPUT: '{os.path.basename(output)}' — detections are written as a GeoPackage: give "
                             "it a .gpkg name.")
    check_outputs({"OUTPUT": output}, {"INPUT": raster if isinstance(raster, str) else None,
                                       "MODEL": model if isinstance(model, str) else None})
    require_writable_folder(os.path.dirname(os.path.abspath(output)) or ".", "OUTPUT")
    model, model_file, local_workers = loaded_for_tiles(model, device, workers, scheduler)
    info = model.info
    if info.task != "detection":
        raise PatchworkError(f"MODEL: '{info.name}' is a {info.task} model, not a detector: use Classify raster "
                             "(patchwork:classify) for it.")
    tile, overlap, confidence, iou = _checked_settings(model, tile_size, overlap, confidence, iou)
    with model_grid(raster, info, resolution, mask, tile_size, output, None if check_only else feedback) as (path, _):
        with RasterSource(path) as src:
            transform = input_transform(src, info, bands, scale, offset)
            inside_box = None
            if mask is not None:
                mask = mask.transformed(src.crs_wkt)
                inside_box = mask.pixel_window(src.geotransform, src.height, src.width, src.footprint_wkt())
            if check_only:
                return None
            if not src.crs_wkt:
                feedback.info(no_crs_warning(src.path, "detections"))
            step = tile - overlap
            rows, cols = tile_starts(src.height, tile, step), tile_starts(src.width, tile, step)
            windows = [Window(r, c, tile, tile) for r in rows for c in cols]
            if inside_box is not None:  # the tiles around the mask too: they see whole the objects cut at its box
                around = Window(inside_box.row_off - tile, inside_box.col_off - tile, inside_box.height + 2 * tile,
                                inside_box.width + 2 * tile)
                windows = [w for w in windows if w.overlaps(around)]
            job = TileGroupJob(src.path, transform, batch_size, partial(_usable_boxes_of_batch, confidence, src.height,
                                                                        src.width), model_file, model)
            with tile_journal("detect", job, windows, output, resume, feedback.info, confidence=confidence) as \
                    journal, closing(make_executor(local_workers, scheduler)) as executor:
                feedback.info(f"Detector '{info.name}' ({model.layout.upper()} boxes, {len(info.class_names)} "
                              f"classes): {len(windows)} tiles of {tile} px, overlap {overlap} px; scores ≥ "
                              f"{confidence:g}, NMS IoU {iou:g}; computing on {model.device}, {executor.description}")
                candidates = _boxes_of_tiles(job, tile_groups(windows, batch_size), executor, journal, confidence,
                                             tile, feedback)
                boxes = non_maximum_suppression(candidates, iou, feedback.is_cancelled)
                if mask is not None and len(boxes):
                    boxes = boxes[_centres_inside(mask, src, boxes)]
                check_cancelled(feedback)
                write_detections(output, boxes, src.geotransform, src.crs_wkt, info.class_names,
                                 class_colours(len(info.class_names), info.class_colors), feedback.info)
    counts = np.bincount(boxes[:, 5].astype(int), minlength=len(info.class_names)) if len(boxes) else \
        np.zeros(len(info.class_names), int)
    feedback.info("Detections: " + "; ".join(f"{n}: {k}" for n, k in zip(info.class_names, counts)))
    feedback.set_progress(100)
    return DetectResult(output, boxes, info.class_names, len(windows), tile, overlap, time.perf_counter() - started)


def _usable_boxes_of_batch(confidence: float, height: int, width: int, model, windows: list[Window], x: np.ndarray,
                           _valid: np.ndarray) -> tuple[np.ndarray, int]:
    """A batch's usable boxes scoring ≥ `confidence`, in raster pixels, less those cut at a shared tile edge.

    Also how many boxes the model gave that were not usable. Runs on a worker (`engine.tile_groups`).
    """
    found, unusable = [], 0
    n_classes = len(model.info.class_names)
    for window, rows in zip(windows, model.boxes(x)):
        usable = usable_boxes(rows, n_classes)
        unusable += int(np.count_nonzero(~usable))
        rows = rows[usable]
        rows = rows[rows[:, 4] >= confidence]
        rows[:, [0, 2]] += window.col_off
        rows[:, [1, 3]] += window.row_off
        found.append(rows[~_cut(rows, window, height, width)])
    return (np.concatenate(found) if found else np.zeros((0, 6))), unusable


def _boxes_of_tiles(job: TileGroupJob, groups: list[TileGroup], executor, journal: BlockJournal, confidence: float,
                    tile: int, feedback: Feedback) -> np.ndarray:
    """Every tile's usable boxes scoring ≥ `confidence`, in the tiles' order, whatever computed them."""
    found, unusable = [], 0
    progress = BlockProgress(feedback, sum(g.work for g in groups))
    for _group, batches in run_tile_groups(job, groups, progress, executor, tile * tile, journal):
        for rows, dropped in batches:
            found.append(rows)
            unusable += int(dropped)
    if journal.done:
        feedback.info(f"RESUME: {len(journal.done)} of {len(groups)} groups of tiles were taken from the earlier run.")
    if unusable:
        feedback.info(f"{unusable:,} boxes the model gave were dropped: a corner or score that is not a finite "
                      "number, no width or height (or flipped corners), or a class the model does not have.")
    candidates = int(sum(len(f) for f in found))
    if candidates > MAX_CANDIDATE_BOXES:
        raise PatchworkError(f"CONFIDENCE: {candidates:,} boxes score ≥ {confidence:g}, more than the "
                             f"{MAX_CANDIDATE_BOXES:,} Patchwork merges; raise CONFIDENCE.")
    return np.concatenate(found) if found else np.zeros((0, 6))


def _centres_inside(mask: Aoi, src: RasterSource, boxes: np.ndarray) -> np.ndarray:
    """Which boxes have their centre pixel inside the mask."""
    inside = mask.inside_mask(src.geotransform, Window(0, 0, src.height, src.width))
    r = np.clip(((boxes[:, 1] + boxes[:, 3]) / 2).astype(int), 0, src.height - 1)
    c = np.clip(((boxes[:, 0] + boxes[:, 2]) / 2).astype(int), 0, src.width - 1)
    return inside[r, c]


def write_detections(path: str, boxes: np.ndarray, geotransform, crs_wkt: str, names: list[str],
                     colours: list[str], log: Log | None = None) -> str:
    """The boxes as polygons in the raster's CRS (layer "detections": class, name, score), atomically.

    What killed runs left for `path` is removed first (and logged).
    """
    gt = geotransform

    def polygons():
        for x0, y0, x1, y1, score, cls in boxes:
            ring = ogr.Geometry(ogr.wkbLinearRing)
            for col, row in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)):
                ring.AddPoint_2D(gt[0] + col * gt[1] + row * gt[2], gt[3] + col * gt[4] + row * gt[5])
            polygon = ogr.Geometry(ogr.wkbPolygon)
            polygon.AddGeometry(ring)
            yield (int(cls), names[int(cls)], float(score)), polygon

    return write_styled_layer(path, "detections", crs_wkt, ogr.wkbPolygon,
                              (("class", ogr.OFTInteger), ("name", ogr.OFTString), ("score", ogr.OFTReal)),
                              polygons(), categorized_qml(list(range(len(names))), names, colours,
                                                          outline_only=True), log)
