"""Augmented chip datasets: every chip of an index, augmented `copies` times, written as a new dataset.

The output has the chip-dataset layout (images/, labels/, dataset.json, a GeoPackage index) and the
index schema plus `source_chip_id`, `copy`, `augmentation` (the pipeline config, JSON) and `aug_seed`
(the seed of that copy: `pipeline(chip, seed=aug_seed)` gives it again). Footprints follow the
augmented geotransforms. Copy k of chip i is seeded by (SEED, i, k): the same SEED regenerates the
dataset bit for bit, and chips draw independently of each other and of how many there are.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from osgeo import ogr

from ..budget import MAX_COPIES, require_disk, require_int_range
from ..data.augment import Augmentation, Compose, Sample, chip_seed, load_pipeline
from ..data.chips import (
    INDEX_FIELDS,
    ChipPool,
    DatasetOutput,
    FileWriters,
    _nodata_fraction,
    index_crs_wkt,
    open_chip,
    read_chip_and_bands,
    read_index,
    valid_pixels,
    write_index,
)
from ..data.mixing import Mixing
from ..data.sampling import check_seed
from ..data.stats import BandStatistics
from ..engine.executors import resolve_workers
from ..errors import PatchworkError, reports_errors
from ..io.paths import check_outputs
from ..io.writer import require_writable_folder
from ..progress import Feedback, SilentFeedback, check_cancelled

AUGMENTED_FIELDS = INDEX_FIELDS + [
    ("source_chip_id", ogr.OFTInteger), ("copy", ogr.OFTInteger), ("augmentation", ogr.OFTString),
    ("aug_seed", ogr.OFTInteger64),
]


@dataclass
class AugmentResult:
    """What augment_chips wrote: chip count, folder, index and time taken."""
    chip_count: int
    out_dir: str
    index_path: str
    seconds: float


@reports_errors
def augment_chips(index: str, pipeline: Augmentation | str, out_dir: str, index_path: str | None = None, *,
                  copies: int = 4, seed: int = 0, overwrite: bool = False, workers: int = 0,
                  feedback: Feedback | None = None, check_only: bool = False) -> AugmentResult | None:
    """Write `copies` augmented copies of every chip (and its label) of `index` as a new chip dataset.

    Args:
        index: A chip index written by `sample_chips`.
        pipeline: The augmentation, or its JSON config as text, a .json path or a preset name.
        out_dir: The new chip folder: new or empty, or an earlier chip dataset with `overwrite`.
        index_path: The new chip index; default `<out_dir>/index.gpkg`.
        copies: Augmented copies per chip (1 to MAX_COPIES).
        seed: Each copy's seed comes from (seed, chip, copy): the copies are the same for any number of workers.
        overwrite: Replace the earlier chip dataset in `out_dir`, as a whole.
        workers: Threads writing chip files (0: every core).
        feedback: Progress, cancel and messages (default: silent).
        check_only: Make every check a run makes before it writes (the pipeline is tried on the first chip, so one
            that does not fit the chips fails at once), then return None.

    Returns:
        What was written (chip count, folder, index, time taken); None with `check_only`.

    Raises:
        PatchworkError: Bad input or a pipeline that does not fit the chips; nothing is written.
        Cancelled: `feedback` asked to stop; nothing is left behind.
    """
    feedback = feedback or SilentFeedback()
    started = time.perf_counter()
    require_int_range("COPIES", copies, 1, MAX_COPIES)
    check_seed(seed)
    pipeline_file = pipeline if isinstance(pipeline, str) and os.path.isfile(pipeline) else None
    pipeline = load_pipeline(pipeline) if isinstance(pipeline, str) else pipeline
    records = read_index(index)
    if not records:
        raise PatchworkError(f"INPUT: the chip index '{index}' has no chips.")
    chip_files = [r[key] for r in records for key in ("image_path", "label_path") if r.get(key)]
    check_outputs({"OUTPUT": index_path}, {"INPUT": index, "PIPELINE": pipeline_file, "INPUT chip": chip_files},
                  {"OUTPUT_DIR": out_dir})
    require_writable_folder(out_dir, "OUTPUT_DIR")
    with open_chip(records[0]["image_path"]) as first:
        pixel_bytes = first.count * first.dtype.itemsize + (1 if records[0].get("label_path") else 0)
    chip_bytes = sum(r["height"] * r["width"] for r in records) * pixel_bytes  # uncompressed: an upper bound
    require_disk(out_dir, chip_bytes * copies, "OUTPUT_DIR", f"{len(records):,} chips × {copies} copies",
                 "Lower COPIES, or choose a folder on a disk with more space.")
    pool = ChipPool(records)
    if isinstance(pipeline, (Compose, Mixing)):
        pipeline = pipeline.with_pool(pool)  # CutMix and MixUp draw donors from the same dataset
    config = pipeline.to_config()
    config_json = json.dumps(config)
    index_crs = index_crs_wkt(index)
    if check_only:
        pipeline(read_chip_and_bands(records[0], index_crs)[0], seed=chip_seed(seed, records[0]["chip_id"], 0))
        return None
    files = FileWriters(resolve_workers(workers))
    output = DatasetOutput(out_dir, index_path, overwrite=overwrite, log=feedback.info)
    out_records, crs = [], ""
    stats = None
    try:
        total = len(records) * copies
        for i, record in enumerate(records):
            chip, bands = read_chip_and_bands(record, index_crs)
            crs = crs or chip.crs_wkt
            for copy in range(copies):
                check_cancelled(feedback)
                aug_seed = chip_seed(seed, record["chip_id"], copy)
                out = pipeline(chip, seed=aug_seed)
                stats = stats or BandStatistics(out.image.shape[0], out.image.dtype)
                stats.add(out.image, valid_pixels(out))
                out_records.append(_write_copy(files, output, record, bands, out, len(out_records), copy,
                                               config_json, aug_seed))
                feedback.set_progress(100.0 * (i * copies + copy + 1) / total)
        files.finish()
        write_index(output.index_tmp, crs, out_records, AUGMENTED_FIELDS)
        output.write_manifest({
            "config": {"augmentation": config, "copies": copies, "seed": seed, "source_index": os.path.abspath(index)},
            "chip_count": len(out_records), "index": output.index_path,
            "band_statistics": stats.to_dicts() if stats else [],
        })
        check_cancelled(feedback)
        output.commit()
    except BaseException:
        files.close()  # no thread writes into the staging folder while it is removed
        output.abort()
        raise
    return AugmentResult(len(out_records), output.out_dir, output.index_path, time.perf_counter() - started)


def _write_copy(files: FileWriters, output: DatasetOutput, record: dict, bands: tuple[list[str], list[int]],
                out: Sample, chip_id: int, copy: int, config_json: str, aug_seed: int) -> dict:
    name = f"aug_{record['chip_id']:06d}_{copy:02d}.tif"
    descriptions, colours = bands
    if out.image.shape[0] != len(colours):  # an op changed the band count: the source's tags no longer apply
        descriptions, colours = [], None
    files.write(output.staged.staged_path(f"images/{name}"), out.image, out.geotransform, out.crs_wkt, out.nodata,
                descriptions, colours, metadata=out.attrs)
    label_path = None
    if out.label is not None:
        files.write(output.staged.staged_path(f"labels/{name}"), out.label, out.geotransform, out.crs_wkt,
                    out.label_nodata)
        label_path = output.staged.final_path(f"labels/{name}")
    return {
        **{name_: record.get(name_) for name_, _ in INDEX_FIELDS},
        "chip_id": chip_id, "height": out.height, "width": out.width,
        "image_path": output.staged.final_path(f"images/{name}"), "label_path": label_path,
        "nodata_fraction": _nodata_fraction(out), "source_chip_id": record["chip_id"], "copy": copy,
        "augmentation": config_json, "aug_seed": aug_seed, "geotransform": out.geotransform,
    }
