"""Chip datasets on disk: GeoTIFF chips cut from a raster plus a GeoPackage index of their footprints.

Layout of a dataset folder::

    images/chip_000000.tif   image chips (source dtype, bands, nodata; geotransform shifted to the window)
    labels/chip_000000.tif   label chips on the same windows (when a label raster is given)
    dataset.json             how the chips were sampled (re-runnable config) and what came out

The index (a GeoPackage layer ``chips``) has one polygon per chip, in the raster CRS, with the
attributes chip_id, row_off, col_off, height, width, image_path, label_path, nodata_fraction,
boundary, sampler (JSON config), seed and source. Paths are absolute, so the index loads from anywhere.

Here: the index, the manifest, the output folder (staged, all or none) and reading chips back.
"""
from __future__ import annotations

import json
import os
import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from osgeo import ogr, osr

from ..errors import PatchworkError, one_line
from ..geometry import Window, footprint
from ..io.gdal_errors import checked, open_vector, opened
from ..io.palette import read_classes
from ..io.partials import Log, remove_file, replace_file, sweep_debris, temporary_sibling
from ..io.raster import RasterSource, same_crs
from ..io.writer import StagedFolder, require_writable_folder, write_geotiff
from .augment import Sample, nodata_mask
from .mixing import check_donor

INDEX_LAYER = "chips"
INDEX_FIELDS: list[tuple[str, int]] = [
    ("chip_id", ogr.OFTInteger), ("row_off", ogr.OFTInteger), ("col_off", ogr.OFTInteger),
    ("height", ogr.OFTInteger), ("width", ogr.OFTInteger), ("image_path", ogr.OFTString),
    ("label_path", ogr.OFTString), ("nodata_fraction", ogr.OFTReal), ("boundary", ogr.OFTString),
    ("sampler", ogr.OFTString), ("seed", ogr.OFTInteger64), ("source", ogr.OFTString),
]


MANIFEST = "dataset.json"


class FileWriters:
    """GeoTIFF files written on worker threads, a bounded number in flight; errors come back to the caller."""

    def __init__(self, workers: int) -> None:
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="patchwork-chips") if workers > 1 else None
        self.pending: deque[Future] = deque()
        self.limit = 4 * workers  # chips held in memory while they wait for a thread

    def write(self, path: str, *args, **kwargs) -> None:
        """Write one chip file into a StagedFolder, in the background when there are workers.

        Arguments as write_geotiff's.
        """
        kwargs["in_staged_folder"] = True
        if self.pool is None:
            write_geotiff(path, *args, **kwargs)
            return
        self.pending.append(self.pool.submit(write_geotiff, path, *args, **kwargs))
        while len(self.pending) > self.limit:
            self.pending.popleft().result()  # raises the writer's error (e.g. a full disk) here

    def finish(self) -> None:
        """Wait for every file; raise the first error."""
        while self.pending:
            self.pending.popleft().result()
        self.close()

    def close(self) -> None:
        """Stop: what has not started is dropped, what has is waited for."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.pending.clear()


class DatasetOutput:
    """Where a chip dataset is written: files staged in a hidden folder, the index at a temporary name.

    `commit()` moves everything into place; `abort()` removes it, leaving earlier files untouched.
    The index defaults to `out_dir/index.gpkg`. A folder holds one dataset: an existing one is
    replaced whole, and only with `overwrite`.
    """

    def __init__(self, out_dir: str, index_path: str | None, *, overwrite: bool = False,
                 log: Log | None = None) -> None:
        self.index_path = os.path.abspath(index_path or os.path.join(out_dir, "index.gpkg"))
        inside = os.path.relpath(self.index_path, os.path.abspath(out_dir))
        self.in_folder = not inside.startswith(os.pardir) and os.sep not in inside  # staged with the chips
        if not self.index_path.lower().endswith(".gpkg"):
            raise PatchworkError(f"the chip index is written as a GeoPackage: give it a .gpkg name, not '{index_path}'")
        if not self.in_folder:  # checked before the staging folder exists, so a refusal leaves nothing
            require_writable_folder(os.path.dirname(self.index_path), "OUTPUT")
        sweep_debris(out_dir, log)  # first, so a dataset a dead run had moved aside is back before the check
        replace = existing_dataset(out_dir, overwrite)
        if not self.in_folder:
            os.makedirs(os.path.dirname(self.index_path), exist_ok=True)
        self.staged = StagedFolder(out_dir, replace=replace, log=log)
        self.out_dir = os.path.abspath(out_dir)
        self.index_tmp = self.staged.staged_path(inside) if self.in_folder else temporary_sibling(self.index_path, log)

    def write_manifest(self, manifest: dict) -> None:
        """Write the dataset's manifest (dataset.json) into the staging folder."""
        with open(self.staged.staged_path(MANIFEST), "w") as fh:
            json.dump(manifest, fh, indent=2)

    def commit(self) -> None:
        """Move the staged dataset and its index into place."""
        self.staged.commit(None if self.in_folder else lambda: replace_file(self.index_tmp, self.index_path))

    def abort(self) -> None:
        """Remove everything staged; the earlier dataset, if any, is untouched."""
        self.staged.abort()
        remove_file(self.index_tmp)


def existing_dataset(out_dir: str, overwrite: bool) -> bool:
    """Whether `out_dir` holds a chip dataset to replace; refuses a folder that cannot be one's.

    A new or empty folder is fine. A folder with a dataset is replaced only with `overwrite`, and only
    when it holds nothing but a dataset Patchwork wrote, recognised by its content (`foreign_entries`):
    replacing it must not delete anybody's other files.
    """
    if not os.path.isdir(out_dir):
        return False
    entries = sorted(e for e in os.listdir(out_dir))
    if not entries:
        return False
    shown = ", ".join(entries[:5]) + (", …" if len(entries) > 5 else "")
    manifest_path = os.path.join(out_dir, MANIFEST)
    if not os.path.isfile(manifest_path):
        raise PatchworkError(f"OUTPUT_DIR: '{out_dir}' is not empty ({shown}) and holds no chip dataset. A chip folder "
                             "holds one dataset and nothing else: choose a new or empty folder.")
    try:
        with open(manifest_path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError):
        manifest = None
    count = manifest.get("chip_count", "?") if isinstance(manifest, dict) else "?"
    if not overwrite:
        raise PatchworkError(f"OUTPUT_DIR: '{out_dir}' already holds a chip dataset ({count} chips). Tick "
                             "'Replace an existing dataset' (OVERWRITE=true) to replace it as a whole, or choose "
                             "another folder.")
    foreign = foreign_entries(out_dir, manifest)
    if foreign:
        raise PatchworkError(f"OUTPUT_DIR: OVERWRITE replaces the whole folder '{out_dir}', and it holds "
                             f"{', '.join(foreign[:5])}{', …' if len(foreign) > 5 else ''}, which Patchwork's chip "
                             "dataset there does not list. Nothing was deleted. Move them out, or choose another "
                             "folder.")
    return True


_SIDECARS = ("-wal", "-shm", "-journal", ".aux.xml")


def foreign_entries(out_dir: str, manifest) -> list[str]:
    """What in `out_dir` is not part of the Patchwork dataset its manifest describes ([] when it is all ours).

    A dataset is Patchwork's when its manifest has Patchwork's keys, names an index that is a plain .gpkg file in
    the folder (or a file elsewhere), and that index lists every chip in images/ and labels/. Anything else (a
    COCO dataset's photos, a note in images/, a sibling named as the index) is foreign.
    """
    if not isinstance(manifest, dict) or not {"config", "chip_count", "index"} <= set(manifest):
        return [f"{MANIFEST} (not the manifest of a Patchwork chip dataset)"]
    index = str(manifest["index"])
    in_folder = os.path.dirname(os.path.abspath(index)) == os.path.abspath(out_dir) or os.sep not in index
    index_name = os.path.basename(index)
    index_path = os.path.join(out_dir, index_name) if in_folder else index
    if not index_name.lower().endswith(".gpkg") or not os.path.isfile(index_path) or os.path.islink(index_path):
        return [f"{MANIFEST} (its index '{index}' is not a chip index file)"]
    try:
        records = read_index(index_path)
    except PatchworkError:
        return [f"{index_name} (not a chip index)"]
    listed = {folder: {os.path.basename(str(r.get(field) or "")) for r in records}
              for folder, field in (("images", "image_path"), ("labels", "label_path"))}
    own = {MANIFEST, "images", "labels"} | ({index_name} if in_folder else set())
    foreign = [e for e in sorted(os.listdir(out_dir)) if e not in own and not _is_sidecar(e, own)]
    for folder, names in listed.items():
        path = os.path.join(out_dir, folder)
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            foreign.append(folder)
        elif os.path.isdir(path):
            foreign += [f"{folder}/{e}" for e in sorted(os.listdir(path))
                        if not (e in names or _is_sidecar(e, names)) or not os.path.isfile(os.path.join(path, e))]
    return foreign


def _is_sidecar(entry: str, owners) -> bool:
    return any(entry == owner + suffix for owner in owners for suffix in _SIDECARS)


def write_index(path: str, crs_wkt: str, records: list[dict], fields: list[tuple[str, int]] = INDEX_FIELDS) -> None:
    """A GeoPackage layer "chips": one footprint polygon per record (from its geotransform and size)."""
    srs = None
    if crs_wkt:
        srs = osr.SpatialReference()
        checked(srs.ImportFromWkt, crs_wkt)
    ds = opened(ogr.GetDriverByName("GPKG").CreateDataSource, path)
    try:
        layer = opened(ds.CreateLayer, INDEX_LAYER, srs, ogr.wkbPolygon)
        for name, kind in fields:
            checked(layer.CreateField, ogr.FieldDefn(name, kind))
        checked(layer.StartTransaction)
        defn = layer.GetLayerDefn()
        for rec in records:
            feature = ogr.Feature(defn)
            for i, (name, _) in enumerate(fields):  # by index: a name lookup per field and chip shows at 100k chips
                if rec[name] is not None:
                    feature.SetField(i, rec[name])
            ring = ogr.Geometry(ogr.wkbLinearRing)
            for x, y in footprint(rec["geotransform"], rec["height"], rec["width"]):
                ring.AddPoint_2D(x, y)
            poly = ogr.Geometry(ogr.wkbPolygon)
            poly.AddGeometry(ring)
            feature.SetGeometry(poly)
            checked(layer.CreateFeature, feature)
        checked(layer.CommitTransaction)
    finally:
        ds = None


def read_manifest(index: str) -> dict:
    """The dataset.json of a chip index (how it was made, band statistics, classes), or {} without one.

    Beside the index, or in the chip folder of an index written elsewhere (Processing's temporary OUTPUT): there
    only when that manifest names this index, so another dataset's classes are never taken.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(index)), MANIFEST)
    if not os.path.exists(path):
        path = _manifest_of_chip_folder(index)
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as exc:
        raise PatchworkError(f"INPUT: the chip dataset's '{path}' cannot be read ({one_line(exc)}). Restore it, or "
                             "sample the chips again.") from exc
    if not isinstance(manifest, dict):
        raise PatchworkError(f"INPUT: the chip dataset's '{path}' is not a dataset manifest (a JSON object). "
                             "Restore it, or sample the chips again.")
    return manifest


def _manifest_of_chip_folder(index: str) -> str | None:
    """The manifest of the chip folder an index's first chip lies in, when that manifest names the index."""
    try:
        ds = open_vector(index)
    except RuntimeError:
        return None
    layer = ds.GetLayerByName(INDEX_LAYER) or ds.GetLayer(0)
    names = [] if layer is None else [layer.GetLayerDefn().GetFieldDefn(i).GetName()
                                      for i in range(layer.GetLayerDefn().GetFieldCount())]
    feature = layer.GetNextFeature() if "image_path" in names else None
    image = feature.GetField("image_path") if feature is not None else None
    ds = None
    if not image or not os.path.isabs(str(image)):
        return None
    path = os.path.join(os.path.dirname(os.path.dirname(str(image))), MANIFEST)
    try:
        with open(path, encoding="utf-8") as fh:
            named = json.load(fh).get("index")
    except (OSError, ValueError, AttributeError):
        return None
    same = isinstance(named, str) and os.path.exists(named) and os.path.samefile(named, index)
    return path if same else None


CHIP_DRIVERS = ["GTiff"]  # chips are GeoTIFF files; GDAL would open a VRT (which can read any file) named .tif
# Chips carry their georeferencing in their GeoTIFF tags: GDAL need not look for world files and .aux.xml side-cars
# (which took 60% of the time of opening a 64 px chip), and a side-car cannot move a chip on the ground.
CHIP_OPEN_OPTIONS = ["GEOREF_SOURCES=INTERNAL"]


def open_chip(path: str, known_crs_wkt: str | None = None) -> RasterSource:
    """A chip file, opened as chips are: GeoTIFF only, georeferenced by its own tags.

    `known_crs_wkt`: its CRS, when the index gives it (not read from the file then).
    """
    return RasterSource(path, "INPUT", CHIP_DRIVERS, known_crs_wkt, CHIP_OPEN_OPTIONS)


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def chip_file(path: str | None, index: str, chip_id) -> str | None:
    """Where a chip of the index `index` is, checked before anything is opened.

    A GeoTIFF in the index's folder (a relative path is resolved there, never against the working folder) or in a
    chip dataset's images/ or labels/ folder. A tampered index naming other files (`/etc/...`, `/vsicurl/...`, a
    URL) is refused.
    """
    if not path:
        return None
    text = str(path)
    if text.startswith("/vsi") or _URL.match(text):
        raise PatchworkError(f"INPUT: chip {chip_id} of '{index}' names '{text}', which is not a file in the chip "
                             "dataset. Sample the chips again.")
    folder = os.path.dirname(os.path.abspath(index))
    resolved = os.path.realpath(text if os.path.isabs(text) else os.path.join(folder, text))
    parent = os.path.dirname(resolved)
    in_dataset = os.path.basename(parent) in ("images", "labels") and \
        os.path.isfile(os.path.join(os.path.dirname(parent), MANIFEST))
    try:
        inside_index_folder = os.path.commonpath([resolved, os.path.realpath(folder)]) == os.path.realpath(folder)
    except ValueError:  # another drive (Windows)
        inside_index_folder = False
    if not resolved.lower().endswith((".tif", ".tiff")) or not (in_dataset or inside_index_folder):
        raise PatchworkError(f"INPUT: chip {chip_id} of '{index}' names '{text}', which is not a GeoTIFF chip of a "
                             "chip dataset. The index was changed after sampling; sample the chips again.")
    return resolved


def read_index(path: str) -> list[dict]:
    """The chip records of an index (all attributes plus the footprint as WKT), in chip order."""
    try:
        ds = open_vector(path)
    except RuntimeError as exc:
        raise PatchworkError(f"INPUT: cannot open '{path}' as a chip index ({one_line(exc)}).") from exc
    layer = ds.GetLayerByName(INDEX_LAYER) or ds.GetLayer(0)
    if layer is None:
        raise PatchworkError(f"INPUT: '{path}' has no layers: it is not a chip index. Sample chips first "
                             "(patchwork:samplechips).")
    names = [layer.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(layer.GetLayerDefn().GetFieldCount())]
    missing = [name for name, _ in INDEX_FIELDS if name not in names]
    if missing:
        raise PatchworkError(f"INPUT: '{path}' is not a chip index written by Sample chips (no {', '.join(missing)} "
                             "fields). Sample chips first (patchwork:samplechips).")
    rows = []
    for f in layer:
        row = {name: f.GetField(name) for name in names}
        geometry = f.GetGeometryRef()
        if geometry is None:
            raise PatchworkError(f"INPUT: chip {row.get('chip_id')} of '{path}' has no footprint: the index was "
                                 "changed after sampling; sample the chips again.")
        row["footprint_wkt"] = geometry.ExportToWkt()
        ring = geometry.GetGeometryRef(0)
        row["footprint_corners"] = np.array(ring.GetPoints(), float)[:4, :2] if ring is not None else None
        for key in ("image_path", "label_path"):
            row[key] = chip_file(row[key], path, row["chip_id"])
        rows.append(row)
    return sorted(rows, key=lambda r: r["chip_id"])


def read_chip(record: dict, index_crs_wkt: str | None = None) -> Sample:
    """One chip of an index as a Sample (image, label, geotransform, nodata, CRS).

    `index_crs_wkt`: the index's CRS, taken as the chip's without asking GDAL (the chip was written in it; its
    footprint is still checked against the index's).
    """
    return read_chip_and_bands(record, known_crs_wkt=index_crs_wkt)[0]


def check_chip_file(src: RasterSource, record: dict, crs_wkt: str | None = None) -> None:
    """A chip file must be what its index row says: its size, its footprint on the ground, the index's CRS.

    The footprint's corners (read exactly from the index's geometry) must be the file's to a ten-thousandth of a
    pixel, in any order (an augmented chip's geotransform may turn its corners).
    """
    name = os.path.basename(src.path)
    problems = []
    if (src.height, src.width) != (record["height"], record["width"]):
        problems.append(f"it is {src.width}x{src.height} px, the index says {record['width']}x{record['height']}")
    elif record.get("footprint_corners") is not None:
        corners = np.array(footprint(src.geotransform, src.height, src.width)[:4], float)
        expected = record["footprint_corners"]
        gt = src.geotransform
        pixel = np.sqrt(abs(gt[1] * gt[5] - gt[2] * gt[4]))
        apart = np.abs(corners[:, None, :] - expected[None, :, :]).max(axis=2)  # each file corner to each expected
        if expected.shape != (4, 2) or apart.min(axis=1).max() > 1e-4 * pixel or apart.min(axis=0).max() > 1e-4 * pixel:
            problems.append("its georeferencing is not the footprint the index holds")
    if crs_wkt and src.crs_wkt and not same_crs(src.crs_wkt, crs_wkt):
        problems.append("its CRS is not the index's")
    if problems:
        raise PatchworkError(f"INPUT: chip {record['chip_id']} ('{name}') does not match its index row: "
                             f"{'; '.join(problems)}. The index or the chip folder was changed after sampling; "
                             "sample the chips again.")


def read_chip_and_bands(record: dict, crs_wkt: str | None = None, known_crs_wkt: str | None = None
                        ) -> tuple[Sample, tuple[list[str], list[int]]]:
    """The chip as a Sample, and its bands' descriptions and colour interpretations (kept in augmented copies).

    `crs_wkt`: the CRS the chip files must have (checked); `known_crs_wkt`: the CRS to take as theirs, unread.
    """
    with open_chip(record["image_path"], known_crs_wkt) as src:
        check_chip_file(src, record, crs_wkt)
        image, _ = src.read(Window(0, 0, src.height, src.width), validity=False)  # (the Sample's nodata tells)
        sample = Sample(image, None, src.geotransform, src.nodata[0], None, src.crs_wkt,
                        tuple(src.band_descriptions), src.metadata)
        bands = (src.band_descriptions, src.colours)
    if record.get("label_path"):
        with open_chip(record["label_path"], known_crs_wkt) as lbl:
            if (lbl.height, lbl.width, lbl.geotransform) != (src.height, src.width, src.geotransform) or crs_wkt:
                check_chip_file(lbl, record, crs_wkt)  # (else it lies where the image, just checked, lies)
            label, _ = lbl.read(Window(0, 0, lbl.height, lbl.width), validity=False)
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


def index_crs_wkt(index: str) -> str:
    """The CRS of a chip index as WKT ('' when it has none)."""
    ds = open_vector(index)
    srs = ds.GetLayer(0).GetSpatialRef()
    return srs.ExportToWkt() if srs is not None else ""


def dataset_classes(index: str) -> dict[int, tuple[str, str | None]]:
    """The class names and colours of a chip dataset's labels.

    Its class table (label polygons), or those of the label raster it was cut from, following augmented datasets
    to their source.
    """
    for _ in range(5):
        content = read_manifest(index)
        if not content:
            return {}
        if content.get("classes"):
            return {int(c["id"]): (c["name"], c.get("colour")) for c in content["classes"]}
        config = content.get("config", {})
        if config.get("labels"):
            return category_names(config["labels"])
        index = config.get("source_index") or ""
        if not index:
            return {}
    return {}


def category_names(path: str | None) -> dict[int, tuple[str, str | None]]:
    """Class names (and "#rrggbb" colours) a label raster carries, as Patchwork's class maps do."""
    if not path or not os.path.exists(path):
        return {}
    with RasterSource(path, "LABELS") as src:
        return read_classes(src.dataset.GetRasterBand(1))
