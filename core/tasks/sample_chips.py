"""Sample training chips from a raster into a chip dataset (patchwork:samplechips).

A sampler proposes windows; each is read, checked against nodata and the AOI, and written with its label chip
(from a label raster, or burnt from polygons) by writer threads; the index and the manifest (`data.chips`) are
written last, and the folder appears only when complete.
"""
from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field

import numpy as np

from ..budget import MAX_CHIP_SIZE, human, require_disk, require_int_range
from ..data.chips import (
    DatasetOutput,
    FileWriters,
    write_index,
)
from ..data.sampling import Coverage, Sampler, coverage
from ..data.stats import BandStatistics
from ..engine.executors import resolve_workers
from ..errors import PatchworkError, reports_errors
from ..geometry import Window, check_boundary, window_geotransform
from ..io.aoi import Aoi
from ..io.labels import VectorLabels
from ..io.paths import check_outputs
from ..io.raster import RasterSource, default_fill
from ..io.writer import StagedFolder, require_writable_folder
from ..progress import Feedback, SilentFeedback, check_cancelled


@dataclass
class SampleResult:
    """What sample_chips wrote: chip count, folder, index, windows, coverage and what was rejected."""
    chip_count: int
    out_dir: str
    index_path: str
    windows: list[Window]
    coverage: Coverage
    candidates_tried: int
    rejected: dict[str, int] = field(default_factory=dict)
    band_statistics: list[dict] = field(default_factory=list)  # per band, over the chips' valid pixels (stats.py)
    class_counts: dict = field(default_factory=dict)  # chips per class (centre pixel) and label pixels per class


def _label_fill(labels: RasterSource) -> float:
    """Padding for label chips: the label nodata, else 'ignore' values that are rarely a class id."""
    if labels.has_nodata:
        return labels.nodata[0]
    if np.issubdtype(labels.dtype, np.integer):
        return int(np.iinfo(labels.dtype).max)
    return default_fill(labels.dtype)


@reports_errors
def sample_chips(
    source: str,
    sampler: Sampler,
    chip_size: int,
    out_dir: str,
    index_path: str | None = None,
    *,
    boundary: str = "shift",
    labels: str | VectorLabels | None = None,
    aoi: Aoi | None = None,
    max_nodata: float = 0.5,
    overwrite: bool = False,
    protect: dict[str, str | None] | None = None,
    workers: int = 0,
    feedback: Feedback | None = None,
    check_only: bool = False,
) -> SampleResult | None:
    """Cut chips from `source` where `sampler` says and write a chip dataset to `out_dir`.

    Nothing is written unless the whole run succeeds: chips are staged and moved into `out_dir` at the end, and
    the index is renamed into place.

    Args:
        source: The raster to cut chips from (a GDAL-readable path), with a CRS and a north-up grid.
        sampler: Where chips go: RegularSampler, JitteredSampler, PoissonDiskSampler or RandomSampler.
        chip_size: The side of each chip, in pixels (1 to MAX_CHIP_SIZE).
        out_dir: The chip folder: new or empty, or an earlier chip dataset with `overwrite`.
        index_path: The chip index (a GeoPackage); default `<out_dir>/index.gpkg`.
        boundary: At the raster's edges: "shift" the last chips inside, "pad" with nodata, or "drop" them.
        labels: A label raster on the same grid, or polygons with classes (VectorLabels, any CRS) burnt onto each
            chip's grid: label chips alongside the image chips.
        aoi: An area of interest: chips must overlap it, and pixels outside it count as nodata.
        max_nodata: The largest fraction of nodata, padding or outside-AOI pixels a chip may have (0 to 1).
        overwrite: Replace the earlier chip dataset in `out_dir`, as a whole.
        protect: Further files the run reads (e.g. the AOI's file), by role, that no output may overwrite.
        workers: Threads writing chip files (0: every core); the files are the same for any number.
        feedback: Progress, cancel and messages (default: silent).
        check_only: Make every check a run makes before it writes, then return None.

    Returns:
        What was written (chip count, folder, index, windows, coverage, rejections); None with `check_only`.

    Raises:
        PatchworkError: Bad input, refused before anything is written, or no chip passing the filters.
        Cancelled: `feedback` asked to stop; nothing is left behind.
    """
    feedback = feedback or SilentFeedback()
    check_boundary(boundary)
    require_int_range("CHIP_SIZE", chip_size, 1, MAX_CHIP_SIZE)
    if not 0.0 <= max_nodata <= 1.0:
        raise PatchworkError(f"MAX_NODATA is a fraction between 0 and 1, got {max_nodata}")
    label_file = labels if isinstance(labels, str) else None
    check_outputs({"OUTPUT": index_path}, {"INPUT": source, "LABELS": label_file, **(protect or {})},
                  {"OUTPUT_DIR": out_dir})
    src = RasterSource(source, "INPUT")
    src.require_georeferenced()
    lbl, vector = open_labels(labels, src)
    aoi_box = None
    if aoi is not None:
        aoi = aoi.transformed(src.crs_wkt)
        aoi_box = aoi.pixel_window(src.geotransform, src.height, src.width, src.footprint_wkt())
    # Samplers are lazy: drawing the first batch runs their checks (chip larger than the raster)
    # before anything is created on disk.
    drawn = None
    if getattr(sampler, "needs_labels", False):  # chips chosen by the label class at their centre
        drawn = _drawn_by_class(sampler, src, lbl, vector, chip_size, boundary, aoi_box, feedback, check_only)
        batches = iter([drawn])
    else:
        batches = sampler.candidates(src.height, src.width, chip_size, boundary, aoi_box)
    first = next(batches, None)
    stream = itertools.chain([] if first is None else [first], batches)
    require_writable_folder(out_dir, "OUTPUT_DIR")
    most = len(drawn) if drawn is not None else _most_chips(src.height, src.width, chip_size, boundary, sampler)
    require_useful_overlap(most, chip_size, src.height, src.width, sampler)
    label_bytes = lbl.dtype.itemsize if lbl else (vector.dtype.itemsize if vector else 0)
    chip_bytes = chip_size * chip_size * (src.count * src.dtype.itemsize + label_bytes)
    require_disk(out_dir, most * (chip_bytes + 4096), "OUTPUT_DIR", f"{most:,} chips of {human(chip_bytes)}",
                 "Lower COUNT, raise STEP or use a smaller CHIP_SIZE, or choose a folder on a disk with more space.")
    if check_only:
        src.close()
        if lbl:
            lbl.close()
        return None

    config_text = json.dumps(sampler.to_config()["config"])
    feedback.info(f"Sampler: {type(sampler).__name__} {config_text[:200]}{'…' if len(config_text) > 200 else ''}")
    for note in sampler.notes(src.height, src.width):
        feedback.info(note)
    if vector:
        _warn_if_classes_are_ids(vector, feedback)
    output = DatasetOutput(out_dir, index_path, overwrite=overwrite, log=feedback.info)
    writer = _ChipWriter(src, lbl, output.staged, boundary, sampler, resolve_workers(workers), vector)
    try:
        stats = BandStatistics(src.count, src.dtype)
        records, windows, tried, rejected = _cut_chips(
            src, sampler.limit, chip_size, aoi, aoi_box, max_nodata, stream, writer, stats, feedback
        )
        writer.files.finish()
        if not records:
            raise PatchworkError(
                f"no chip passed the filters ({tried} candidate windows: {rejected['nodata']} with more than "
                f"{max_nodata:.0%} nodata/outside-AOI pixels, {rejected['outside_aoi']} outside the AOI). "
                "Raise MAX_NODATA, enlarge the AOI, or use a smaller CHIP_SIZE."
            )
        cover = coverage(windows, src.height, src.width)
        feedback.info(f"Overlap: a covered pixel lies in {cover.chips_per_pixel:.1f} chips on average, in {cover.most} "
                      "at most." + (" Many chips are near-copies of each other: they add little to training and "
                                    "leave few chips apart for validation; sample fewer chips, smaller ones, or "
                                    "label more places." if cover.chips_per_pixel > 4 else ""))
        config = {
            "sampler": sampler.to_config(), "chip_size": int(chip_size), "boundary": boundary,
            "max_nodata": max_nodata, "source": os.path.abspath(source),
            "labels": os.path.abspath(label_file) if label_file else (
                f"{vector.count} polygons" if vector else None), "aoi": aoi is not None,
        }
        write_index(output.index_tmp, src.crs_wkt, records)
        band_statistics = stats.to_dicts()
        manifest = {"config": config, "chip_count": len(records), "index": output.index_path,
                    "coverage": cover.fraction, "chips_per_covered_pixel": round(cover.chips_per_pixel, 3),
                    "most_chips_on_a_pixel": cover.most, "candidates_tried": tried, "rejected": rejected,
                    "band_statistics": band_statistics}
        if vector:
            manifest["classes"] = [{"id": c.id, "name": c.name, "colour": c.colour} for c in vector.classes]
        class_counts = writer.classes.to_dict() if labels else {}
        manifest.update(class_counts)
        output.write_manifest(manifest)
        check_cancelled(feedback)
        output.commit()
    except BaseException:
        writer.files.close()  # no thread writes into the staging folder while it is removed
        output.abort()
        raise
    finally:
        src.close()
        if lbl:
            lbl.close()
    if labels:
        feedback.info(writer.classes.describe())
    if sampler.limit and len(records) < sampler.limit:
        feedback.info(f"Warning: only {len(records)} of the {sampler.limit} chips asked for passed the filters.")
    feedback.set_progress(100)
    return SampleResult(len(records), os.path.abspath(out_dir), output.index_path, windows, cover, tried, rejected,
                        band_statistics, class_counts)


def class_sampled_windows(source: str, sampler: Sampler, chip: int, boundary: str, labels: str | VectorLabels,
                          feedback: Feedback | None = None) -> tuple[list[Window], list[str]]:
    """The chips a class sampler draws from the labels, and its notes (classes with too few candidates).

    As sample_chips draws them, before the nodata filter: for previews.
    """
    with RasterSource(source, "INPUT") as src:
        lbl, vector = open_labels(labels, src)
        try:
            anchors, notes = sampler.candidates_from_labels(
                src.height, src.width, chip, boundary, _label_strips(src, lbl, vector, feedback or SilentFeedback()))
        finally:
            if lbl is not None:
                lbl.close()
    return [Window(int(row), int(col), chip, chip) for row, col in anchors], notes


def _label_strips(src: RasterSource, lbl: RasterSource | None, vector: VectorLabels | None, feedback: Feedback,
                  rows: int = 256):
    """The labels on the raster's grid, a strip of rows at a time: (row_off, class ids, valid).

    Reading them is the first part of a class sampler's run, and hears cancel.
    """
    for row in range(0, src.height, rows):
        check_cancelled(feedback)
        window = Window(row, 0, min(rows, src.height - row), src.width)
        if lbl is not None:
            data, valid = lbl.read(window)
            yield row, data[0], valid
        else:
            labels = vector.rasterize(window_geotransform(src.geotransform, window), window.height, window.width)
            yield row, labels, labels != vector.nodata


def open_labels(labels: str | VectorLabels | None, src: RasterSource) -> tuple[RasterSource | None,
                                                                             VectorLabels | None]:
    """(label raster on `src`'s grid, or label polygons in its CRS): one of them, or neither."""
    if isinstance(labels, VectorLabels):
        return None, labels.transformed(src.crs_wkt)
    if not labels:
        return None, None
    lbl = RasterSource(labels, "LABELS")
    try:
        src.require_same_grid(lbl)
    except PatchworkError:
        lbl.close()
        raise
    return lbl, None


def _warn_if_classes_are_ids(vector: VectorLabels, feedback: Feedback) -> None:
    """Say so when each label polygon has a class of its own: the class field is most likely an id."""
    polygon_classes = [c for c in vector.classes if c.name != "background"]
    if vector.count > 2 and len(polygon_classes) == vector.count:
        feedback.info(f"Warning: each of the {vector.count} label polygons has a class of its own: is the class field "
                      "an id (such as fid) rather than the class? Pick the field that holds the class.")


def _drawn_by_class(sampler: Sampler, src: RasterSource, lbl: RasterSource | None, vector: VectorLabels | None,
                    chip_size: int, boundary: str, aoi_box, feedback: Feedback, check_only: bool) -> np.ndarray:
    """A class sampler's chip anchors, drawn from the labels.

    None in a parameter check: reading every label pixel is the run's work.
    """
    if lbl is None and vector is None:
        raise PatchworkError(f"SAMPLER: the {type(sampler).__name__} chooses chips by their label class: give "
                             "LABELS (a label raster or label polygons).")
    if check_only:
        return np.zeros((0, 2), np.int64)
    drawn, notes = sampler.candidates_from_labels(src.height, src.width, chip_size, boundary,
                                                  _label_strips(src, lbl, vector, feedback), aoi_box)
    for note in notes:
        feedback.info(note)
    return drawn


MAX_COVER = 16  # chips a drawing sampler may lay over each pixel on average: beyond, they are near-copies


def require_useful_overlap(chips: int, chip: int, height: int, width: int, sampler: Sampler) -> None:
    """Refuse a COUNT that would cover every pixel more than MAX_COVER times.

    Near-copies of the same windows fill the disk (every window of a small raster, gigabytes) and teach a model
    nothing more.
    """
    if getattr(sampler, "points", None) is not None or not getattr(sampler, "limit", 0):
        return  # grids and chips on given locations are what the user laid out
    cover = chips * chip * chip / max(1, height * width)
    if cover > MAX_COVER:
        useful = int(MAX_COVER * height * width / (chip * chip))
        raise PatchworkError(f"COUNT: {sampler.limit:,} asks for {chips:,} chips of {chip} px on this {width} x "
                             f"{height} px raster, which would cover "
                             f"each pixel {cover:.0f} times on average, mostly with near-copies of the same windows. "
                             f"Lower COUNT to at most {useful:,}, or use a smaller CHIP_SIZE.")


def _most_chips(height: int, width: int, chip: int, boundary: str, sampler: Sampler) -> int:
    """An upper bound of the chips a run writes: the sampler's limit, or its anchors on whole pixels."""
    if getattr(sampler, "points", None) is not None:
        return len(sampler.points)
    rows, cols = (max(1, n - chip + 1) if boundary != "pad" else n for n in (height, width))
    spacing = max(1, int(getattr(sampler, "step", 0) or getattr(sampler, "min_distance", 1)))
    grid = -(-rows // spacing) * -(-cols // spacing)
    return min(sampler.limit or grid, rows * cols)


def _cut_chips(src, limit, chip, aoi, aoi_box, max_nodata, stream, writer, stats, feedback):
    """Read candidate windows, keep those that pass the filters, write them; stop at `limit`."""
    total = None
    if limit is None:  # a finite candidate set: gather it so progress can be reported
        stream = list(stream)
        total = sum(len(b) for b in stream)
    records: list[dict] = []
    windows: list[Window] = []
    rejected = {"nodata": 0, "outside_aoi": 0}
    tried = 0
    for batch in stream:
        for row, col in batch.tolist():
            if limit is not None and len(records) >= limit:
                return records, windows, tried, rejected
            check_cancelled(feedback)
            tried += 1
            window = Window(row, col, chip, chip)
            if aoi_box is not None and not window.overlaps(aoi_box):
                rejected["outside_aoi"] += 1
                continue
            data, valid = src.read(window)
            usable = valid
            if aoi is not None:
                inside = aoi.inside_mask(src.geotransform, window)
                if not inside.any():
                    rejected["outside_aoi"] += 1
                    continue
                usable = valid & inside
            nodata_fraction = 1.0 - float(usable.mean())
            if nodata_fraction > max_nodata:
                rejected["nodata"] += 1
                continue
            records.append(writer.write(window, data, len(records), nodata_fraction))
            stats.add(data, valid)
            windows.append(window)
            done = len(records) / limit if limit else tried / max(total, 1)
            feedback.set_progress(min(99.0, 100.0 * done))
    return records, windows, tried, rejected


class ClassCounts:
    """Label pixels per class, and chips per class of their centre pixel, over the label chips written."""

    def __init__(self) -> None:
        self.pixels: dict[int, int] = {}
        self.chips: dict[int, int] = {}

    def add(self, label: np.ndarray, nodata: float | None) -> None:
        """Count one label chip (h, w)."""
        data = label if nodata is None else label[label != nodata]
        for value, count in zip(*np.unique(data, return_counts=True)):
            self.pixels[int(value)] = self.pixels.get(int(value), 0) + int(count)
        centre = label[label.shape[0] // 2, label.shape[1] // 2]
        if nodata is None or centre != nodata:
            self.chips[int(centre)] = self.chips.get(int(centre), 0) + 1

    def to_dict(self) -> dict:
        """{"chips_per_class": {id: chips}, "label_pixels": {id: pixels}}, ids as text (JSON keys), sorted."""
        return {"chips_per_class": {str(k): self.chips[k] for k in sorted(self.chips)},
                "label_pixels": {str(k): self.pixels[k] for k in sorted(self.pixels)}}

    def describe(self) -> str:
        """The counts in words, for the log."""
        chips = ", ".join(f"{k}: {v:,}" for k, v in sorted(self.chips.items()))
        return f"Chips per class (of their centre pixel): {chips or 'none'}; label pixels per class: " + \
            ", ".join(f"{k}: {v:,}" for k, v in sorted(self.pixels.items()))


class _ChipWriter:
    """Writes one chip (image, and label when there are labels) into the staging folder.

    Reading and choosing chips stays in order in the caller's thread; compressing and writing the files, the
    slow part, runs on `workers` threads (GDAL releases the GIL), so chip ids and files are the same for any number.
    """

    def __init__(self, src: RasterSource, labels: RasterSource | None, staged: StagedFolder, boundary: str,
                 sampler: Sampler, workers: int = 1, vector: VectorLabels | None = None) -> None:
        self.src, self.labels, self.staged, self.boundary = src, labels, staged, boundary
        self.vector = vector
        self.classes = ClassCounts()
        self.files = FileWriters(workers)
        # Padding needs a nodata value to be told apart; without padding, the source's own (or none).
        self.image_nodata = src.nodata[0] if src.has_nodata else (src.fill_value if boundary == "pad" else None)
        self.label_fill = self.label_nodata = None
        if labels is not None:
            self.label_fill = _label_fill(labels)
            self.label_nodata = labels.nodata[0] if labels.has_nodata else (
                self.label_fill if boundary == "pad" else None)
        if vector is not None:
            self.label_nodata = vector.nodata
            self.palette = ([c.id for c in vector.classes], [c.name for c in vector.classes],
                            [c.colour for c in vector.classes])
        self.sampler_json = json.dumps(sampler.to_config())
        self.seed = getattr(sampler, "seed", None)

    def write(self, window: Window, data: np.ndarray, chip_id: int, nodata_fraction: float) -> dict:
        src, name = self.src, f"chip_{chip_id:06d}.tif"
        gt = window_geotransform(src.geotransform, window)
        self.files.write(self.staged.staged_path(f"images/{name}"), data, gt, src.crs_wkt, self.image_nodata,
                         src.band_descriptions, src.colours, metadata=src.metadata)
        label_path = None
        if self.labels is not None:
            label, _ = self.labels.read(window, fill=self.label_fill)
            self.files.write(self.staged.staged_path(f"labels/{name}"), label, gt, src.crs_wkt, self.label_nodata,
                             self.labels.band_descriptions)
            label_path = self.staged.final_path(f"labels/{name}")
        elif self.vector is not None:  # burnt here, in order; written on the workers
            label = self.vector.rasterize(gt, window.height, window.width)
            self.files.write(self.staged.staged_path(f"labels/{name}"), label, gt, src.crs_wkt, self.label_nodata,
                             ["class"], None, self.palette)
            label_path = self.staged.final_path(f"labels/{name}")
        if label_path is not None:
            self.classes.add(label[0] if label.ndim == 3 else label, self.label_nodata)
        return {
            "chip_id": chip_id, "row_off": window.row_off, "col_off": window.col_off, "height": window.height,
            "width": window.width, "image_path": self.staged.final_path(f"images/{name}"), "label_path": label_path,
            "nodata_fraction": nodata_fraction, "boundary": self.boundary, "sampler": self.sampler_json,
            "seed": self.seed, "source": os.path.abspath(src.path), "geotransform": gt,
        }
