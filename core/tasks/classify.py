"""Classify a raster of any size with a model, tile by tile, exactly (patchwork:classify).

A run is a plan, then the blocks: `classify` checks everything a run needs before it writes (what
`check_only` stops after), then computes the blocks (`engine.blocks`) on an executor, journals them with
RESUME (`engine.journal`) and writes them in plan order (`engine.map_writer`). Web layers and other
resolutions are read through a VRT; a model with several heads runs once per head.
"""
from __future__ import annotations

import os
import re
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..budget import MAX_BATCH_SIZE, MAX_TILE_SIZE, require_disk, require_int_range, require_memory
from ..engine.blocks import (
    BlockJob,
    BlockProgress,
    OutputMask,
    class_nodata,
    memory_needed,
)
from ..engine.executors import AHEAD_PER_WORKER, available_cores, make_executor, resolve_workers
from ..engine.halos import HaloExchange
from ..engine.journal import BlockJournal, file_digest
from ..engine.map_writer import OUTPUT_FORMATS, ClassMapSideOutputs, MapWriter
from ..engine.model_input import (
    DASK_NEEDS_A_FILE,
    InputTransform,
    ModelFile,
    input_transform,
    model_grid,
    resampled_vrt,
    target_resolution,
)
from ..engine.postprocess import area_summary
from ..engine.stitching import (
    AGGREGATIONS,
    check_choice,
    parse_window,
)
from ..engine.tiling import Block, TileGrid, block_side, plan_blocks
from ..engine.uncertainty import UNCERTAINTIES, resolve_measure
from ..errors import Cancelled, PatchworkError, reports_errors
from ..geometry import Window
from ..io.aoi import Aoi
from ..io.palette import write_qml, write_uncertainty_qml
from ..io.partials import OutputLock
from ..io.paths import check_outputs
from ..io.raster import RasterSource, no_crs_warning
from ..io.web import XyzSource
from ..io.writer import publish_together, require_raster_outputs, require_writable_folder
from ..models import Model, ModelInfo, load_model
from ..models.base import require_model_file
from ..progress import Feedback, GdalCancel, SilentFeedback
from ..version import PATCHWORK_VERSION


@dataclass
class ClassifyResult:
    """What classify wrote, how it tiled and how long it took."""
    output: str
    probabilities: str | None
    style: str | None  # the .qml written beside a class map
    info: ModelInfo
    tile_size: int
    overlap: int
    tiles: int  # model tiles predicted (per-pixel models: 0, they are predicted block by block)
    seconds: float
    blocks: int = 0
    blocks_resumed: int = 0  # taken from the journal of an earlier run (RESUME)
    executor: str = ""
    areas: list | None = None  # ClassArea per class (postprocess.py); None for values
    polygons: int | None = None  # written to the vector output
    other_heads: list = field(default_factory=list)  # the results of a multi-head model's other heads
    uncertainty: str | None = None  # the uncertainty map written
    aoa: str | None = None  # the area-of-applicability mask written


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


@reports_errors
def classify(
    raster: str | XyzSource,
    model: Model | str | ModelFile,
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
    workers: int = 0,
    scheduler: Any = None,
    resume: bool = False,
    device: str = "auto",
    output_format: str = "GTiff",
    block_size: int | None = None,
    min_segment: int | None = None,
    vector_output: str | None = None,
    area_table: str | None = None,
    head: int | None = None,
    mask: Aoi | None = None,
    resolution: float | None = None,
    output_grid: str = "model",
    uncertainty: str | None = None,
    uncertainty_measure: str = "auto",
    model_type: str = "auto",
    threshold: float | None = None,
    aoa: str | None = None,
    feedback: Feedback | None = None,
    check_only: bool = False,
) -> ClassifyResult | ClassifyPlan | None:
    """Classify `raster` with `model` tile by tile into `output` (GeoTIFF or COG, on the input's grid).

    Classifiers write a class map (uint8/uint16, palette, class names, `<output>.qml`); regressors write float32
    values. Pixels that are nodata in any input band are nodata in every output. The outputs are byte-identical
    whatever runs the blocks, and appear at their paths only when complete.

    Args:
        raster: The raster to classify (a GDAL-readable path or URL), or an XYZ tile service (XyzSource), read at the
            zoom level closest to `resolution` (or the model's) over its extent or the mask's.
        model: A loaded model, or a model file (.onnx, .skops, .json rules; pickles with `trust_model`), or the
            engine's ModelFile (what workers load; recognize passes its embedder and query so).
        output: The class map (or values) to write.
        bands: The input bands fed to the model, 1-based, in the model's order (default: all).
        scale: Input values are multiplied by this (0.0001 for Sentinel-2 digital numbers, 1/255 for 8-bit).
        offset: …then this is added.
        tile_size: The tile side in pixels (default: the model's, else 256).
        overlap: The overlap of neighbouring tiles in pixels (default: the model's, else 0).
        window: How overlapping tiles are weighted: "boxcar", "hann" or "triangular".
        aggregation: "hardvote", "softvote" (mean probabilities) or "mean" (regression).
        batch_size: Tiles per model call.
        probabilities: A float32 raster of one band per class to write too (mean probabilities or vote shares).
        trust_model: Load a pickle (which can run code): only for files from a source you trust.
        workers: Threads computing blocks (0: every core).
        scheduler: A Dask scheduler's address (tcp://host:8786) or a distributed.Client, to compute on a cluster.
        resume: Keep finished blocks in a journal beside the output, so the same run started again continues.
        device: Where ONNX models compute: "auto", "cpu" or "cuda".
        output_format: "GTiff", or "COG" (Cloud-optimised GeoTIFF with overviews).
        block_size: The side of the blocks in pixels (default about 768 with tiles, 1024 for a per-pixel model).
        min_segment: Class-map segments of fewer pixels take their largest neighbour's class (default: the
            model's seg_small_segment metadata, else 0: none are removed).
        vector_output: A GeoPackage of the class map's polygons to write too (class, name, area_m2).
        area_table: A CSV of each class's pixels, hectares and share to write too (the log always has them).
        head: The output head of a model with several to run; None: every head, the first into `output` and each
            other one beside it, named `<output>_<head>.tif` (its vector and table outputs likewise).
        mask: Polygons (any CRS): only pixels whose centre lies inside are classified, the rest is nodata; blocks
            and tiles that reach no such pixel are not computed. Inside, the map is the map without a mask.
        resolution: The pixel size (in the raster's units) the model runs at: the input is read resampled to it
            (averaged when coarser, bilinear when finer) through a GDAL warped VRT on the raster's extent. Default:
            the model's `resolution` metadata (cm per pixel, on a raster in metres), else the raster's own.
        output_grid: "model": the outputs are on that resampled grid; "input": brought back to the raster's grid
            (nearest for classes, average for values).
        uncertainty: A float32 map of how sure the map is of each pixel to write too (`engine.uncertainty`).
        uncertainty_measure: "entropy", "margin", "least_confidence" or "disagreement" for a class map,
            "variance" for values; "auto": entropy, or variance.
        model_type: What an ONNX model is, as the user says it: "auto" (its metadata, else its shapes),
            "segmentation", "regression", "detection", "superresolution" or "recognition" (Deepness's types).
        threshold: A one-sigmoid model's class starts where p > threshold (default: its seg_thresh, else 0.5).
        aoa: A mask of the model's area of applicability to write too (1 inside, 0 where the pixels are unlike its
            training pixels; `models.applicability`): per-pixel models trained by Patchwork.
        feedback: Progress, cancel and messages (default: silent).
        check_only: Make every check a run makes before it writes (model, bands, tile and margin, memory) and
            return the plan (None for several heads or another grid); Processing's parameter check uses it, so both
            refuse with the same message.

    Returns:
        The outputs written, the model's description, the tiling and the time taken; the plan with `check_only`.

    Raises:
        PatchworkError: Bad input or a model that does not fit it, refused before anything is written; a full
            disk or an unreadable raster during the run (earlier outputs are kept).
        Cancelled: `feedback` asked to stop; nothing is left behind.
    """
    arguments = dict(locals())  # (every head of a multi-head model runs with these)
    feedback = feedback or SilentFeedback()
    if isinstance(raster, XyzSource):  # a web tile service: read through a GDAL VRT over the area asked for
        return _classify_web(arguments, feedback)
    started = time.perf_counter()
    _check_settings(arguments)
    local_workers = 1 if scheduler else resolve_workers(workers)
    model, model_file = _loaded_model(arguments, 0 if scheduler else local_workers)
    info = model.info
    if output_grid not in ("model", "input"):
        raise PatchworkError(f"OUTPUT_GRID: '{output_grid}' — use 'model' (the resampled grid) or 'input'.")
    target = target_resolution(raster, info, resolution)
    if target is not None:
        if output_grid == "input" and head is None and len(info.heads) > 1:
            raise PatchworkError("OUTPUT_GRID: the maps of a multi-head model stay on the model's grid; leave "
                                 "OUTPUT_GRID at 'model' (or run one head with head=).")
        return _classify_resampled(arguments, target, output_grid, feedback)
    _refuse_other_tasks(info)
    if head is None and model_file is not None and len(info.heads) > 1:
        return _every_head(arguments, info.heads, feedback)
    plan = _planned(arguments, model, model_file, feedback)
    src = RasterSource(raster)
    with src, ExitStack() as outputs:
        _lay_out(plan, src, feedback)
        if check_only and scheduler:
            return plan  # the cluster is reached, and its memory known, when the run starts
        executor = make_executor(local_workers, scheduler)
        outputs.callback(executor.close)
        _require_memory(plan, src, executor)
        if check_only:
            return plan
        _log_plan(plan, src, executor, feedback)
        written = _write_blocks(plan, src, executor, outputs, feedback)
    written.journal.remove()
    return _finished(plan, written, executor, feedback, started)


@dataclass
class ClassifyPlan:
    """A run of classify on its own grid, checked before anything is written (what `check_only` returns)."""

    arguments: dict  # the call's own arguments
    model: Model
    model_file: ModelFile | None
    tile: int
    overlap: int
    min_segment: int
    batch_size: int
    measure: str | None  # of the uncertainty map (None: none is written)
    transform: InputTransform | None = None  # from here on: laid out on the raster
    grid: TileGrid | None = None  # None: a per-pixel model, predicted block by block
    side: int = 0  # of the blocks
    blocks: list[Block] = field(default_factory=list)
    output_mask: OutputMask | None = None
    mask_box: Window | None = None  # the pixels the mask reaches (the whole raster without one)

    @property
    def info(self) -> ModelInfo:
        """The model's description."""
        return self.model.info


@dataclass
class _Written:
    """What the block loop leaves for the end of the run."""

    side_outputs: ClassMapSideOutputs
    journal: BlockJournal
    predicted: int
    resumed: int


def _check_settings(arguments: dict) -> None:
    """The settings and outputs, checked before the model is loaded."""
    a = arguments
    parse_window(a["window"])
    check_choice("aggregation", a["aggregation"], AGGREGATIONS)
    check_choice("output format", a["output_format"], OUTPUT_FORMATS)
    require_int_range("BATCH_SIZE", a["batch_size"], 1, MAX_BATCH_SIZE)
    if a["tile_size"] is not None:
        require_int_range("TILE_SIZE", a["tile_size"], 1, MAX_TILE_SIZE)
    if a["block_size"] is not None:
        require_int_range("block_size", a["block_size"], 16, 65536)
    model = a["model"]
    inputs = {"INPUT": a["raster"], "MODEL": model.path if isinstance(model, ModelFile) else
              model if isinstance(model, str) else None}
    require_raster_outputs({"OUTPUT": a["output"], "OUTPUT_PROBABILITIES": a["probabilities"],
                            "OUTPUT_UNCERTAINTY": a["uncertainty"], "OUTPUT_AOA": a["aoa"]}, inputs)
    require_side_outputs(a["output"], a["probabilities"], a["vector_output"], a["area_table"], inputs,
                         a["uncertainty"], a["aoa"])
    check_choice("uncertainty measure", a["uncertainty_measure"], UNCERTAINTIES)
    if a["min_segment"] is not None:
        require_int_range("MIN_SEGMENT", a["min_segment"], 0, 2**31 - 1)


def _loaded_model(arguments: dict, local_workers: int = 0) -> tuple[Model, ModelFile | None]:
    """The model, and the file it came from (what a worker loads again).

    With fewer `local_workers` than cores, a network gets the other cores as onnxruntime threads (WORKERS=1 keeps
    every core busy on a compute-bound model). Its convolutions give the same sums on any thread count (tested:
    the same bytes on WORKERS=1 and 2); per-pixel models keep one thread, as a tree ensemble's sum depends on it.
    """
    model, head = arguments["model"], arguments["head"]
    reading = arguments["model_type"], arguments["threshold"]
    if isinstance(model, ModelFile):  # (recognize's: an embedder and its query)
        return model.read(), model
    if arguments["scheduler"] and not isinstance(model, str):
        raise PatchworkError(DASK_NEEDS_A_FILE)  # before any work, not when the first block is sent
    if not isinstance(model, str):
        if reading != ("auto", None):
            raise PatchworkError("MODEL_TYPE, THRESHOLD: they say how to read a model file; give the model's file.")
        return model, None
    require_model_file(model)
    trust, device = arguments["trust_model"], arguments["device"]
    model_file = ModelFile(os.path.abspath(model), trust, device, file_digest(model), head or 0, *reading)
    loaded = model_file.read()
    threads = available_cores() // local_workers if local_workers else 1
    if threads > 1 and not loaded.info.per_pixel and model_file.path.lower().endswith(".onnx"):
        loaded = model_file.read(threads)
    return loaded, model_file


def _refuse_other_tasks(info: ModelInfo) -> None:
    """Models that make no map on the input's grid have their own algorithms."""
    if info.task == "detection":
        raise PatchworkError(f"MODEL: '{info.name}' is a detector (boxes, not a map): use Detect objects "
                             "(patchwork:detect) for it.")
    if info.task == "recognition":
        raise PatchworkError(f"MODEL: '{info.name}' is a recognition model (an embedding per tile): use Recognize "
                             "(patchwork:recognize) with a query image.")
    if info.task == "superresolution":
        raise PatchworkError(f"MODEL: '{info.name}' is a x{info.scale_factor} super-resolution model (a finer grid, "
                             "not a map on the input's): use Super-resolve raster (patchwork:superresolve) for it.")


def _planned(arguments: dict, model: Model, model_file: ModelFile | None, feedback: Feedback) -> ClassifyPlan:
    """The tiling and the class-map settings, checked against the model."""
    a, info = arguments, model.info
    tile = int(a["tile_size"] or info.tile_size or info.default_tile_size)
    overlap = info.default_overlap if a["overlap"] is None else int(a["overlap"])
    _check_run(info, tile, overlap, a["aggregation"], a["probabilities"])
    if info.task != "classification" and (a["min_segment"] or a["vector_output"] or a["area_table"]):
        raise PatchworkError(f"MODEL: '{info.name}' predicts values, not classes: MIN_SEGMENT, OUTPUT_VECTOR and "
                             "OUTPUT_AREAS apply to class maps. Leave them empty.")
    # (a value model's seg_small_segment metadata, as Deepness's dummy has, does not apply to values)
    min_segment = (info.min_segment if info.task == "classification" else 0) if a["min_segment"] is None else \
        int(a["min_segment"])
    if overlap < 2 * info.margin:
        feedback.info(f"Overlap raised from {overlap} to {2 * info.margin} px: twice the model's receptive margin, "
                      "so the trusted centres of neighbouring tiles meet.")
        overlap = 2 * info.margin
    if model.device_warning:
        feedback.info(f"Warning: {model.device_warning}")
    measure = resolve_measure(a["uncertainty_measure"], info.task) if a["uncertainty"] else None
    if a["aoa"] and info.aoa is None:
        raise PatchworkError(f"OUTPUT_AOA: '{info.name}' carries no area of applicability; it is made for per-pixel "
                             "models trained by Patchwork (patchwork:trainclassifier). Leave OUTPUT_AOA empty.")
    return ClassifyPlan(arguments, model, model_file, tile, overlap, min_segment, a["batch_size"], measure)


def _lay_out(plan: ClassifyPlan, src: RasterSource, feedback: Feedback) -> None:
    """The plan on the raster: the model's input, the tile grid, the blocks and the mask's pixels."""
    a, info = plan.arguments, plan.info
    plan.transform = input_transform(src, info, a["bands"], a["scale"], a["offset"])
    if info.unit_range_input and plan.transform.scale == 1.0 and src.dtype == np.uint8 and info.mean is None:
        feedback.info("Note: this model expects input values 0–1 (Deepness convention) and the input is 8-bit: "
                      "set SCALE to 0.00392156862745098 (1/255) unless the model says otherwise.")
    if info.batch_size and info.batch_size != plan.batch_size:
        feedback.info(f"The model fixes its batch at {info.batch_size} tiles; BATCH_SIZE {plan.batch_size} is not "
                      "used.")
        plan.batch_size = info.batch_size
    plan.grid = None if info.per_pixel else TileGrid(src.height, src.width, plan.tile, info.margin, plan.overlap)
    plan.side = block_side(plan.grid, info.n_outputs, a["block_size"])
    plan.blocks = plan_blocks(src.height, src.width, plan.grid, plan.side)
    plan.mask_box = Window(0, 0, src.height, src.width)
    mask = a["mask"]
    if mask is not None:
        mask = mask.transformed(src.crs_wkt)
        plan.mask_box = mask.pixel_window(src.geotransform, src.height, src.width, src.footprint_wkt())  # or refuses
        plan.output_mask = OutputMask(mask.union.ExportToWkt(), mask.crs_wkt, tuple(src.geotransform))


def _require_memory(plan: ClassifyPlan, src: RasterSource, executor) -> None:
    """Refuses a run whose blocks in flight would not fit in memory."""
    blocks, grid, batch_size = plan.blocks, plan.grid, plan.batch_size
    require_memory(memory_needed(src, plan.info, len(plan.transform.bands), grid, blocks, batch_size,
                                 executor.workers * AHEAD_PER_WORKER + 1),
                   "TILE_SIZE", f"{len(blocks)} block{'s' if len(blocks) > 1 else ''} of about {plan.side} px"
                   + (f" with {batch_size} tiles of {plan.tile} px" if grid else "") + f" on {executor.description}",
                   "Lower TILE_SIZE, BATCH_SIZE or WORKERS.")


def _log_plan(plan: ClassifyPlan, src: RasterSource, executor, feedback: Feedback) -> None:
    """What the run will do, in the log."""
    a, info, transform, grid = plan.arguments, plan.info, plan.transform, plan.grid
    if not src.crs_wkt:
        feedback.info(no_crs_warning(src.path, "map"))
    feedback.info(f"Model '{info.name}': {info.task}, {info.n_outputs} "
                  f"{'classes' if info.task == 'classification' else 'outputs'}; input bands "
                  f"{','.join(map(str, transform.bands))} × {transform.scale:g} + {transform.offset:g}; "
                  f"computing on {plan.model.device}")
    if info.decision_weights is not None:
        feedback.info(f"'{info.class_names[1]}' where the model's sigmoid gives p > {info.decision_weights[0]:g} "
                      "(its seg_thresh).")
    for note in executor.notes:
        feedback.info(note)
    if grid:
        feedback.info(f"{grid.count} tiles of {plan.tile} px ({len(grid.rows)} rows × {len(grid.cols)} columns), "
                      f"overlap {plan.overlap} px, {a['window']} window, {a['aggregation']}; {len(plan.blocks)} "
                      f"blocks on {executor.description}")
    else:
        feedback.info(f"Per-pixel model: predicted in {len(plan.blocks)} blocks of up to {plan.side} px on "
                      f"{executor.description} (tiles, overlap and window do not change a per-pixel model's "
                      "result)")


def _write_blocks(plan: ClassifyPlan, src: RasterSource, executor, outputs: ExitStack,
                  feedback: Feedback) -> _Written:
    """Every block computed (or taken from the journal) and written, in plan order."""
    a, info, blocks = plan.arguments, plan.info, plan.blocks
    output, probabilities = a["output"], a["probabilities"]
    progress = BlockProgress(feedback, sum(b.work for b in blocks))
    job = BlockJob(src.path, plan.transform, plan.grid, a["window"], a["aggregation"], plan.batch_size, info,
                   bool(probabilities), plan.model_file, plan.model, progress, plan.output_mask, plan.measure,
                   bool(a["aoa"]))
    # Blocks whose tiles reach no pixel inside the mask are nodata, computed from nothing.
    skipped = {b.index for b in blocks if not b.reach(plan.grid).overlaps(plan.mask_box)}
    if plan.output_mask is not None:
        feedback.info(f"Mask: {len(blocks) - len(skipped)} of {len(blocks)} blocks reach inside it; outside, the "
                      "map is nodata.")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    if a["resume"]:
        _require_journal_space(src, info, output, probabilities, a["uncertainty"], a["aoa"])
    lock = OutputLock(output, "OUTPUT", feedback.info).acquire()  # one run at a time writes an output
    outputs.callback(lock.release)
    journal = BlockJournal(output, _run_description(src, plan.model_file, job, output, probabilities,
                                                    a["output_format"], plan.side, a["uncertainty"], a["aoa"]),
                           a["resume"], feedback.info)
    if plan.min_segment >= 2:
        feedback.info(f"Segments of fewer than {plan.min_segment} px will take their largest neighbour's class.")
    writers = MapWriter(outputs, src.width, src.height, src.geotransform, src.crs_wkt, info, output,
                        probabilities, a["aggregation"], log=feedback.info, cog=a["output_format"] == "COG",
                        cancelled=feedback.is_cancelled, min_segment=plan.min_segment,
                        count_areas=plan.min_segment < 2,  # (merging changes the counts)
                        uncertainty=a["uncertainty"], measure=plan.measure, aoa=a["aoa"])
    computed = executor.map(job, [b for b in blocks if b.index not in journal.done and b.index not in skipped],
                            progress.poll, item_pixels=plan.side * plan.side)
    outputs.callback(progress.cancelled.set)  # an error or cancel stops the workers at their next tile
    outputs.callback(computed.close)  # … and what has not started
    halos = HaloExchange(blocks, job)  # what tiles add past their block's edges, handed on to the next blocks
    predicted = resumed = 0
    for block in blocks:
        progress.poll()
        if block.index in skipped:
            result = job.nothing(block)
        elif block.index in journal.done:
            result = journal.load(block.index, block.window)
            resumed += result is not None
            if result is None:  # an unreadable journal entry: computed again, here, and saved again
                result = job(block)
                journal.save(result)
        else:
            result = next(computed)
            journal.save(result)  # (as computed: a resumed run completes its border again, the same way)
        writers.write(halos.complete(block, result))
        predicted += result.tiles
        progress.block_written(block)
    progress.poll()
    if getattr(plan.model, "one_at_a_time", False):
        feedback.info(f"The model's graph takes one tile per call although its input says any batch: "
                      f"BATCH_SIZE {plan.batch_size} was lowered to 1 (set BATCH_SIZE=1 to skip the first try).")
    side = ClassMapSideOutputs(writers, a["area_table"], a["vector_output"], feedback)  # committed with the maps
    return _Written(side, journal, predicted, resumed)


def _require_journal_space(src: RasterSource, info: ModelInfo, output: str, probabilities: str | None,
                           uncertainty: str | None, aoa: str | None) -> None:
    """The journal keeps blocks uncompressed: that much must fit besides the outputs."""
    pixels = src.width * src.height
    classes = info.task == "classification"
    journal_bytes = pixels * (class_nodata(info.class_values)[0].itemsize if classes else 4 * info.n_outputs) \
        + (pixels * 4 * info.n_outputs if probabilities else 0) \
        + (pixels * 4 * (1 if classes else info.n_outputs) if uncertainty else 0) + (pixels if aoa else 0)
    require_disk(output, journal_bytes, "RESUME", "the journal of finished blocks",
                 "Free some space, or run without RESUME (a crash then means starting again).")


def _finished(plan: ClassifyPlan, written: _Written, executor, feedback: Feedback,
              started: float) -> ClassifyResult:
    """The run's result, with its areas and polygons told in the log."""
    a, side = plan.arguments, written.side_outputs
    areas = side.areas(a["output"])
    if areas is not None:
        feedback.info("Area per class: " + "; ".join(area_summary(areas) or ["no classified pixels"]))
    if side.polygons is not None:
        feedback.info(f"{side.polygons.result:,} polygons written to '{a['vector_output']}'.")
    if plan.measure:
        feedback.info(f"Uncertainty ({plan.measure}) written to '{a['uncertainty']}'.")
    if a["aoa"]:
        feedback.info(f"Area of applicability written to '{a['aoa']}' (1 inside, 0 where the pixels are unlike the "
                      "model's training pixels).")
    return ClassifyResult(a["output"], a["probabilities"], side.style, plan.info, plan.tile, plan.overlap,
                          written.predicted, time.perf_counter() - started, len(plan.blocks), written.resumed,
                          executor.description, areas, side.polygons.result if side.polygons else None,
                          uncertainty=a["uncertainty"], aoa=a["aoa"])


def _classify_resampled(arguments: dict, target: float, output_grid: str, feedback: Feedback) -> ClassifyResult:
    """Classify through a warped VRT at `target` px size; the outputs there, or brought back to the input grid."""
    from osgeo import gdal

    from ..io.partials import owned_name, remove_file, replace_file, sweep_debris
    from ..io.writer import creation_options

    raster, output = arguments["raster"], arguments["output"]
    with RasterSource(raster) as src:
        gt, width, height = src.geotransform, src.width, src.height
    native = abs(gt[1])
    bounds = (gt[0], gt[3] + gt[5] * height, gt[0] + gt[1] * width, gt[3])
    require_raster_outputs({"OUTPUT": output, "OUTPUT_PROBABILITIES": arguments["probabilities"],
                            "OUTPUT_UNCERTAINTY": arguments["uncertainty"], "OUTPUT_AOA": arguments["aoa"]},
                           {"INPUT": raster})
    if not arguments["check_only"]:  # what killed runs left: the VRT, the model grid's maps and their temporaries
        for path in (output, arguments["probabilities"], arguments["uncertainty"], arguments["aoa"]):
            if path:
                sweep_debris(path, feedback.info)
    vrt = resampled_vrt(raster, target, output)
    made = []
    try:
        if not arguments["check_only"]:
            feedback.info(f"Input resampled from {native:g} to {target:g} per pixel "
                          f"({'averaged' if target > native else 'bilinear'}); outputs on the "
                          f"{'resampled' if output_grid == 'model' else 'input'} grid.")
        run = dict(arguments, raster=vrt, resolution=target, feedback=feedback)
        if output_grid == "model" or arguments["check_only"]:
            return classify(**run)
        for key in ("output", "probabilities", "uncertainty", "aoa"):
            if run[key]:
                run[key] = owned_name(run[key])
                made.append(run[key])
        result = classify(**dict(run, output_format="GTiff"))  # a COG is made as the maps come back
        classes = result.info.task == "classification"
        cog = arguments["output_format"] == "COG"
        back_on_input = []  # (brought back, final path): renamed only once every output is back, all or none
        map_type = class_nodata(result.info.class_values)[0] if classes else np.float32
        going_on = GdalCancel(feedback.is_cancelled)
        for key, resampling, dtype, overviews in (
                ("output", "near" if classes else "average", map_type, "MODE" if classes else "AVERAGE"),
                ("probabilities", "average", np.float32, "AVERAGE"),
                ("uncertainty", "average", np.float32, "AVERAGE"), ("aoa", "near", np.uint8, "MODE")):
            if not arguments[key]:
                continue
            temporary = owned_name(arguments[key])
            made.append(temporary)
            back = gdal.Warp(temporary, run[key], format="COG" if cog else "GTiff", xRes=native, yRes=abs(gt[5]),
                             outputBounds=bounds, resampleAlg=resampling,
                             creationOptions=creation_options(dtype, 512, overviews if cog else None),
                             callback=going_on)
            if back is None:
                if going_on.stopped:
                    raise Cancelled("cancelled by the user while the maps were brought back to the input grid")
                raise PatchworkError(f"OUTPUT: GDAL could not bring the map back to the input grid ({run[key]}).")
            back = None
            back_on_input.append((temporary, arguments[key]))
        for temporary, final in back_on_input:
            replace_file(temporary, final)
        return _styled_on_input_grid(result, arguments)
    finally:
        for path in [vrt, *made]:
            remove_file(path)
            remove_file(os.path.splitext(path)[0] + ".qml")


def _styled_on_input_grid(result: ClassifyResult, arguments: dict) -> ClassifyResult:
    """The result of a run brought back to the input grid: at the paths asked for, with their styles there."""
    if result.info.task == "classification":
        from ..io.palette import class_colours

        result.style = write_qml(arguments["output"], result.info.class_values, result.info.class_names,
                                 class_colours(result.info.n_classes, result.info.class_colors))
        if arguments["uncertainty"]:
            write_uncertainty_qml(arguments["uncertainty"])
    result.output, result.probabilities = arguments["output"], arguments["probabilities"]
    result.uncertainty, result.aoa = arguments["uncertainty"], arguments["aoa"]
    return result


def _classify_web(arguments: dict, feedback: Feedback) -> ClassifyResult | None:
    """Classify an XYZ service at one zoom level over its extent (or the mask's), through a temporary VRT."""
    model = arguments["model"]
    if isinstance(model, str):
        model = load_model(model, arguments["trust_model"], model_type=arguments["model_type"],
                           threshold=arguments["threshold"])
    info = (model.read() if isinstance(model, ModelFile) else model).info
    with model_grid(arguments["raster"], info, arguments["resolution"], arguments["mask"], arguments["tile_size"],
                    arguments["output"], None if arguments["check_only"] else feedback, resample=False) as (vrt, _):
        return classify(**dict(arguments, raster=vrt, feedback=feedback))


def head_output(path: str | None, head_name: str) -> str | None:
    """Where an output of a model's other head goes: beside `path`, named after the head."""
    if not path:
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', head_name)}{ext}"


def _every_head(arguments: dict, heads: list[str], feedback: Feedback) -> ClassifyResult | None:
    """Classify with each head of a multi-head model; the first head's result, the others' in `other_heads`."""
    results = []
    with publish_together():  # no head's maps replace earlier ones until every head's are finished
        for index, name in enumerate(heads):
            run = dict(arguments, head=index, feedback=feedback)
            if index:
                for key in ("output", "probabilities", "vector_output", "area_table", "uncertainty", "aoa"):
                    run[key] = head_output(run[key], name)
            if not arguments["check_only"]:
                feedback.info(f"Output head {index + 1} of {len(heads)}, '{name}' → {run['output']}")
            results.append(classify(**run))
    if arguments["check_only"]:
        return None
    results[0].other_heads = results[1:]
    return results[0]


def require_side_outputs(output: str, probabilities: str | None, vector_output: str | None, area_table: str | None,
                         inputs: dict, uncertainty: str | None = None, aoa: str | None = None) -> None:
    """The polygons go to a GeoPackage and the areas to a CSV, neither an input nor another output."""
    if vector_output and not vector_output.lower().endswith(".gpkg"):
        raise PatchworkError(f"OUTPUT_VECTOR: '{os.path.basename(vector_output)}' — the polygons are written as a "
                             "GeoPackage: give it a .gpkg name.")
    if area_table and not area_table.lower().endswith(".csv"):
        raise PatchworkError(f"OUTPUT_AREAS: '{os.path.basename(area_table)}' — the table is written as CSV: give it "
                             "a .csv name.")
    check_outputs({"OUTPUT": output, "OUTPUT_PROBABILITIES": probabilities, "OUTPUT_VECTOR": vector_output,
                   "OUTPUT_AREAS": area_table, "OUTPUT_UNCERTAINTY": uncertainty, "OUTPUT_AOA": aoa}, inputs)
    for role, path in (("OUTPUT_VECTOR", vector_output), ("OUTPUT_AREAS", area_table)):
        if path:
            require_writable_folder(os.path.dirname(os.path.abspath(path)) or ".", role)


def _run_description(src: RasterSource, model_file: ModelFile | None, job: BlockJob, output: str,
                     probabilities: str | None, output_format: str, side: int, uncertainty: str | None,
                     aoa: str | None) -> dict:
    """What makes two runs the same run: a journal is reused only for an identical description."""
    stat = os.stat(src.path) if os.path.exists(src.path) else None
    return {
        "patchwork": PATCHWORK_VERSION,
        "raster": os.path.abspath(src.path), "raster_bytes": stat.st_size if stat else None,
        "raster_mtime_ns": stat.st_mtime_ns if stat else None,
        "model": model_file.identity if model_file else job.info.name, "head": job.info.head,
        "mask": job.mask.wkt if job.mask else None,
        "transform": repr(job.transform), "grid": repr(job.grid), "window": job.window,
        "aggregation": job.aggregation, "batch_size": job.batch_size, "block_side": side,
        "blocks": "own the tiles that start in them; halos handed on",  # (a journal of blocks made otherwise: not ours)
        "outputs": [os.path.abspath(p) for p in (output, probabilities) if p], "format": output_format,
        **({"uncertainty": [job.uncertainty, os.path.abspath(uncertainty)]} if uncertainty else {}),
        **({"aoa": os.path.abspath(aoa)} if aoa else {}),
        **({"reading": [model_file.model_type, model_file.threshold]}
           if model_file and (model_file.model_type, model_file.threshold) != ("auto", None) else {}),
    }
