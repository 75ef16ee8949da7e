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

import numpy as np
from osgeo import ogr

from ..budget import MAX_COPIES, require_disk, require_int_range
from ..data.augment import Augmentation, Compose, Mixing, Sample, check_donor, chip_seed, load_pipeline, nodata_mask
from ..data.dataset import CHIP_DRIVERS, INDEX_FIELDS, DatasetOutput, FileWriters, read_index, write_index
from ..data.sampling import check_seed
from ..data.stats import BandStatistics
from ..engine.executors import resolve_workers
from ..errors import PatchworkError, reports_errors
from ..geometry import Window, footprint
from ..io.gdal_errors import open_vector, opened
from ..io.paths import check_outputs
from ..io.raster import RasterSource, same_crs
from ..io.writer import require_writable_folder
from ..progress import Feedback, SilentFeedback, check_cancelled

AUGMENTED_FIELDS = INDEX_FIELDS + [
    ("source_chip_id", ogr.OFTInteger), ("copy", ogr.OFTInteger), ("augmentation", ogr.OFTString),
    ("aug_seed", ogr.OFTInteger64),
]


def read_chip(record: dict) -> Sample:
    """One chip of an index as a Sample (image, label, geotransform, nodata, CRS)."""
    return _read_chip(record)[0]


def check_chip_file(src: RasterSource, record: dict, crs_wkt: str | None = None) -> None:
    """A chip file must be what its index row says: its size, its footprint on the ground, the index's CRS."""
    name = os.path.basename(src.path)
    problems = []
    if (src.height, src.width) != (record["height"], record["width"]):
        problems.append(f"it is {src.width}x{src.height} px, the index says {record['width']}x{record['height']}")
    elif record.get("footprint_wkt"):
        ring = footprint(src.geotransform, src.height, src.width)
        expected = opened(ogr.CreateGeometryFromWkt, record["footprint_wkt"])
        actual = opened(ogr.CreateGeometryFromWkt, "POLYGON ((" + ", ".join(f"{x!r} {y!r}" for x, y in ring) + "))")
        gt = src.geotransform
        pixel_area = abs(gt[1] * gt[5] - gt[2] * gt[4])
        if expected.SymmetricDifference(actual).Area() > 0.01 * pixel_area:  # off by more than 1% of a pixel
            problems.append("its georeferencing is not the footprint the index holds")
    if crs_wkt and src.crs_wkt and not same_crs(src.crs_wkt, crs_wkt):
        problems.append("its CRS is not the index's")
    if problems:
        raise PatchworkError(f"INPUT: chip {record['chip_id']} ('{name}') does not match its index row: "
                             f"{'; '.join(problems)}. The index or the chip folder was changed after sampling; "
                             "sample the chips again.")


def _read_chip(record: dict, crs_wkt: str | None = None) -> tuple[Sample, tuple[list[str], list[int]]]:
    """The chip as a Sample, and its bands' descriptions and colour interpretations (kept in augmented copies)."""
    with RasterSource(record["image_path"], "INPUT", CHIP_DRIVERS) as src:
        check_chip_file(src, record, crs_wkt)
        image, _ = src.read(Window(0, 0, src.height, src.width))
        sample = Sample(image, None, src.geotransform, src.nodata[0], None, src.crs_wkt,
                        tuple(src.band_descriptions), src.metadata)
        bands = (src.band_descriptions, src.colours)
    if record.get("label_path"):
        with RasterSource(record["label_path"], "INPUT", CHIP_DRIVERS) as lbl:
            check_chip_file(lbl, record, crs_wkt)
            label, _ = lbl.read(Window(0, 0, lbl.height, lbl.width))
            sample = sample.replace(label=label[0] if label.shape[0] == 1 else label, label_nodata=lbl.nodata[0])
    return sample, bands


class ChipPool:
    """The chips of an index as donors for CutMix and MixUp, read from disk when drawn."""

    def __init__(self, records: list[dict]) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Sample:
        return read_chip(self.records[i])

    def check(self, op: str) -> None:
        """Donors must share a size (from the index) and bands, CRS and pixel size (from two chips)."""
        sizes = {(r["height"], r["width"]) for r in self.records}
        if len(sizes) > 1:
            raise PatchworkError(f"{op}: the chips have different sizes {sorted(sizes)}; donors must all be the "
                                 "same size (sample them with one CHIP_SIZE).")
        if len(self.records) > 1:
            check_donor(self[0], self[len(self) - 1], op)


@dataclass
class AugmentResult:
    """What augment_chips wrote: chip count, folder, index and time taken."""
    chip_count: int
    out_dir: str
    index_path: str
    seconds: float


def valid_pixels(sample: Sample) -> np.ndarray:
    """Pixels that are data in every band: not the nodata value, not NaN."""
    invalid = nodata_mask(sample.image, sample.nodata)
    valid = np.ones(sample.image.shape[1:], bool) if invalid is None else ~invalid.any(axis=0)
    if np.issubdtype(sample.image.dtype, np.floating):
        valid &= np.isfinite(sample.image).all(axis=0)
    return valid


def _nodata_fraction(sample: Sample) -> float:
    invalid = nodata_mask(sample.image, sample.nodata)
    return 0.0 if invalid is None else float(invalid.any(axis=0).mean())


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
    with RasterSource(records[0]["image_path"], "INPUT", CHIP_DRIVERS) as first:
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
        pipeline(_read_chip(records[0], index_crs)[0], seed=chip_seed(seed, records[0]["chip_id"], 0))
        return None
    files = FileWriters(resolve_workers(workers))
    output = DatasetOutput(out_dir, index_path, overwrite=overwrite, log=feedback.info)
    out_records, crs = [], ""
    stats = None
    try:
        total = len(records) * copies
        for i, record in enumerate(records):
            chip, bands = _read_chip(record, index_crs)
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


def index_crs_wkt(index: str) -> str:
    """The CRS of a chip index as WKT ('' when it has none)."""
    ds = open_vector(index)
    srs = ds.GetLayer(0).GetSpatialRef()
    return srs.ExportToWkt() if srs is not None else ""


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
