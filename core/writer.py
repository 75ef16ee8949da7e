"""Writing outputs so that nothing half-written is ever left where the user looks.

Files are written under a temporary sibling name and renamed on success; folders of files are
written into a hidden staging folder and moved in on success. Failure or cancel removes the
temporary files and leaves whatever the user had before untouched.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import uuid

import numpy as np
from osgeo import gdal, gdal_array

from .errors import PatchworkError
from .geometry import GeoTransform

gdal.UseExceptions()


def temporary_sibling(path: str) -> str:
    """A hidden name in the same folder (so the final rename is atomic) with the same extension."""
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f".{stem}.partial-{uuid.uuid4().hex[:8]}{ext}")


def require_writable_folder(folder: str, role: str) -> None:
    """The folder (or the nearest existing parent it would be created in) must be writable."""
    target = probe = os.path.abspath(folder)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        where = "is a file, not a folder" if probe == target else f"lies inside the file '{probe}'"
        raise PatchworkError(f"{role}: '{folder}' {where}. Choose a folder.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PatchworkError(
            f"{role}: cannot write to '{probe}' (permission denied). Choose a folder you can write to."
        )


def remove_file(path: str) -> None:
    for p in (path, path + ".aux.xml"):
        if os.path.exists(p):
            os.remove(p)


def replace_file(tmp: str, final: str) -> None:
    """Move `tmp` (and its .aux.xml, e.g. category names) onto `final`."""
    remove_file(final + ".aux.xml")  # stale statistics of an earlier output must not survive
    os.replace(tmp, final)
    if os.path.exists(tmp + ".aux.xml"):
        os.replace(tmp + ".aux.xml", final + ".aux.xml")


def _gdal_type(dtype: np.dtype) -> int:
    if dtype == np.bool_:
        dtype = np.dtype(np.uint8)
    return gdal_array.NumericTypeCodeToGDALTypeCode(np.dtype(dtype))


class GeoTiffWriter:
    """Streams windows into a tiled, compressed GeoTIFF at a temporary name; `commit()` renames it.

    Used as a context manager, it commits when the block ends normally and removes the temporary
    file when it raises.
    """

    def __init__(
        self,
        path: str,
        width: int,
        height: int,
        count: int,
        dtype: np.dtype,
        geotransform: GeoTransform,
        crs_wkt: str,
        nodata: float | None = None,
        block_size: int = 512,
    ) -> None:
        self.path = path
        self.tmp_path = temporary_sibling(path)
        dtype = np.dtype(dtype)
        block = min(block_size, 16 * math.ceil(max(width, height) / 16))
        predictor = "3" if np.issubdtype(dtype, np.floating) else "2"
        options = [
            "TILED=YES", f"BLOCKXSIZE={block}", f"BLOCKYSIZE={block}", "COMPRESS=DEFLATE",
            f"PREDICTOR={predictor}", "BIGTIFF=IF_SAFER",
        ]
        try:
            os.makedirs(os.path.dirname(self.tmp_path), exist_ok=True)
            driver = gdal.GetDriverByName("GTiff")
            self.dataset = driver.Create(self.tmp_path, width, height, count, _gdal_type(dtype), options)
        except (OSError, RuntimeError) as exc:
            raise PatchworkError(f"cannot create '{path}': {exc}. Check the folder is writable.") from exc
        self.dataset.SetGeoTransform(geotransform)
        if crs_wkt:
            self.dataset.SetProjection(crs_wkt)
        if nodata is not None:
            for b in range(1, count + 1):
                self.dataset.GetRasterBand(b).SetNoDataValue(float(nodata))

    def write(self, array: np.ndarray, row_off: int = 0, col_off: int = 0) -> None:
        array = array[None] if array.ndim == 2 else array
        for i in range(array.shape[0]):
            self.dataset.GetRasterBand(i + 1).WriteArray(array[i], xoff=col_off, yoff=row_off)

    def set_band_descriptions(self, descriptions: list[str]) -> None:
        for i, text in enumerate(descriptions):
            if text:
                self.dataset.GetRasterBand(i + 1).SetDescription(text)

    def commit(self) -> str:
        self.dataset.FlushCache()
        self.dataset = None
        replace_file(self.tmp_path, self.path)
        return self.path

    def abort(self) -> None:
        self.dataset = None
        remove_file(self.tmp_path)

    def __enter__(self) -> GeoTiffWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_geotiff(path: str, array: np.ndarray, geotransform: GeoTransform, crs_wkt: str,
                  nodata: float | None = None, band_descriptions: list[str] | None = None) -> str:
    """Write a whole (C, h, w) or (h, w) array, atomically."""
    array = array[None] if array.ndim == 2 else array
    count, height, width = array.shape
    with GeoTiffWriter(path, width, height, count, array.dtype, geotransform, crs_wkt, nodata) as writer:
        writer.write(array)
        if band_descriptions:
            writer.set_band_descriptions(band_descriptions)
    return path


class StagedFolder:
    """Files for `target` are written into a hidden sibling folder and moved in by `commit()`.

    Files already in `target` are only replaced when the run succeeds, and only those with the
    same names; a failed or cancelled run leaves `target` exactly as it was.
    """

    def __init__(self, target: str, role: str = "OUTPUT_DIR") -> None:
        self.target = os.path.abspath(target)
        require_writable_folder(self.target, role)
        parent = os.path.dirname(self.target)
        try:
            os.makedirs(parent, exist_ok=True)
            self.staging = tempfile.mkdtemp(prefix=f".{os.path.basename(self.target)}.partial-", dir=parent)
        except OSError as exc:
            raise PatchworkError(
                f"{role}: cannot write to '{target}' ({exc.strerror}). Choose a folder you can write to."
            ) from exc

    def staged_path(self, relative: str) -> str:
        path = os.path.join(self.staging, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def final_path(self, relative: str) -> str:
        return os.path.join(self.target, relative)

    def commit(self) -> None:
        for folder, _dirs, files in os.walk(self.staging):
            rel = os.path.relpath(folder, self.staging)
            dest = os.path.normpath(os.path.join(self.target, rel))
            os.makedirs(dest, exist_ok=True)
            for name in files:
                replace_file(os.path.join(folder, name), os.path.join(dest, name))
        shutil.rmtree(self.staging, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
