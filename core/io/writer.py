"""Writing outputs so that nothing half-written is ever left where the user looks.

Files are written under a temporary sibling name and renamed on success; folders of files are
written into a hidden staging folder and moved in whole on success. Failure or cancel removes the
temporary files and leaves whatever the user had before untouched; what a killed run left behind is
removed by the next run of the same target (see `partials`).
"""
from __future__ import annotations

import errno
import math
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
from osgeo import gdal, gdal_array

from ..budget import free_disk_bytes
from ..errors import DISK_FULL_TEXT, Cancelled, PatchworkError, one_line
from ..geometry import GeoTransform
from ..progress import GdalCancel
from .gdal_errors import checked, gdal_failures, open_raster, opened
from .partials import (
    Log,
    OutputLock,
    owned_name,
    publish_file,
    remove_file,
    replace_file,
    sweep_debris,
    temporary_sibling,
)
from .paths import check_outputs

GEOTIFF_EXTENSIONS = (".tif", ".tiff")


# DEFLATE's fastest level: twice as fast to write as GDAL's default (6), float rasters within 1% of its size,
# class maps about 30% larger (still some 30x smaller than raw). Any reader of DEFLATE reads it.
DEFLATE_LEVEL = 1


RGB = [gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand]


def photometric(count: int, dtype: np.dtype, colours: list[int] | None) -> list[str]:
    """GeoTIFF creation options for how readers see the bands.

    GDAL's default makes any 3 or 4 byte bands RGB, the 4th one alpha: a near-infrared band then shows as
    transparency in GDAL, QGIS and rasterio. Bands are RGB(A) only when the source's were; else greyscale bands.
    """
    if count < 2:
        return []  # one band: greyscale, or a palette once a colour table is set
    if np.dtype(dtype) == np.uint8 and colours in (RGB, [*RGB, gdal.GCI_AlphaBand]):
        return ["PHOTOMETRIC=RGB", *(["ALPHA=YES"] if len(colours) == 4 else [])]
    return ["PHOTOMETRIC=MINISBLACK"]


def require_geotiff_name(path: str, role: str) -> None:
    """Patchwork writes GeoTIFF: a raster output must be named so (a .png holding a GeoTIFF misleads everyone)."""
    if not path.lower().endswith(GEOTIFF_EXTENSIONS):
        raise PatchworkError(f"{role}: '{os.path.basename(path)}' — Patchwork writes GeoTIFF rasters; give the "
                             "output a .tif name (convert it afterwards with gdal_translate if you need another "
                             "format).")


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


def require_raster_outputs(outputs: dict[str, str | None], inputs: dict[str, str | None]) -> None:
    """Raster outputs: GeoTIFF names, in writable folders, none of them an input or another output."""
    check_outputs(outputs, inputs)
    for role, path in outputs.items():
        if path:
            require_geotiff_name(path, role)
            require_writable_folder(os.path.dirname(os.path.abspath(path)) or ".", role)


def _gdal_type(dtype: np.dtype) -> int:
    if dtype == np.bool_:
        dtype = np.dtype(np.uint8)
    return gdal_array.NumericTypeCodeToGDALTypeCode(np.dtype(dtype))


def creation_options(dtype: np.dtype, block: int, cog_overviews: str | None = None) -> list[str]:
    """How Patchwork's rasters are stored: tiled, DEFLATE with the predictor for `dtype`.

    With `cog_overviews` (a GDAL resampling, e.g. "MODE" for classes): the options of GDAL's COG driver, whose
    overviews are made with that resampling; else those of a plain tiled GeoTIFF.
    """
    predictor = "3" if np.issubdtype(np.dtype(dtype), np.floating) else "2"
    if cog_overviews:
        return ["COMPRESS=DEFLATE", f"LEVEL={DEFLATE_LEVEL}", f"PREDICTOR={predictor}", f"BLOCKSIZE={block}",
                f"OVERVIEW_RESAMPLING={cog_overviews}", "BIGTIFF=IF_SAFER"]
    return ["TILED=YES", f"BLOCKXSIZE={block}", f"BLOCKYSIZE={block}", "COMPRESS=DEFLATE", f"ZLEVEL={DEFLATE_LEVEL}",
            f"PREDICTOR={predictor}", "BIGTIFF=IF_SAFER"]


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
        log: Log | None = None,
        cog_overviews: str | None = None,
        colours: list[int] | None = None,
        in_staged_folder: bool = False,
        before_commit: Callable[[str], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        """Create the temporary file.

        `cog_overviews`: write a Cloud-Optimised GeoTIFF with overviews made by this GDAL resampling (e.g. "MODE"
        for classes, "AVERAGE" for values); None writes a plain tiled GeoTIFF. `colours`: the source bands' GDAL
        colour interpretations, for copies of them (see `photometric`). `in_staged_folder`: the file goes into a
        StagedFolder this run owns, where no dead run can have left debris: the folder is not swept for it (a
        sweep lists the folder, which made writing n chips cost n² directory entries). `before_commit`: a last step
        on the complete temporary file (e.g. removing small segments), before it is renamed onto `path`.
        `cancelled`: asked during the COG rewrite, which takes a while on large outputs; True stops it, removes
        everything and raises Cancelled.
        """
        self.before_commit = before_commit
        self.cancelled = cancelled
        self.path = path
        self.cog_overviews = cog_overviews
        self.width, self.height = width, height
        self.tmp_path = owned_name(path) if in_staged_folder else temporary_sibling(path, log)
        dtype = np.dtype(dtype)
        self.block = block = min(block_size, 16 * math.ceil(max(width, height) / 16))
        self.waiting: dict[tuple[int, int], tuple[np.ndarray, int]] = {}  # file tiles written in part
        self.dtype = dtype
        options = [*creation_options(dtype, block), *photometric(count, dtype, colours)]
        if dtype == np.int8 and not hasattr(gdal, "GDT_Int8"):  # GDAL < 3.7 stores signed bytes as tagged Byte
            options.append("PIXELTYPE=SIGNEDBYTE")
        try:
            os.makedirs(os.path.dirname(self.tmp_path), exist_ok=True)
            driver = gdal.GetDriverByName("GTiff")
            self.dataset = opened(driver.Create, self.tmp_path, width, height, count, _gdal_type(dtype), options)
        except (OSError, RuntimeError) as exc:
            raise PatchworkError(f"cannot create '{path}': {one_line(exc)}. Check the folder is writable.") from exc
        try:
            checked(self.dataset.SetGeoTransform, geotransform)
            if crs_wkt:
                checked(self.dataset.SetProjection, crs_wkt)
            if nodata is not None:
                for b in range(1, count + 1):
                    checked(self.dataset.GetRasterBand(b).SetNoDataValue, float(nodata))
        except BaseException:
            self.abort()  # e.g. a CRS GDAL cannot read: the new file is removed at once
            raise

    def write(self, array: np.ndarray, row_off: int = 0, col_off: int = 0) -> None:
        """Write a (C, h, w) or (h, w) array at (row_off, col_off)."""
        array = array[None] if array.ndim == 2 else array
        for i in range(array.shape[0]):
            checked(self.dataset.GetRasterBand(i + 1).WriteArray, array[i], xoff=col_off, yoff=row_off)

    def write_block(self, array: np.ndarray, row_off: int, col_off: int) -> None:
        """Write one block of a streamed output and hand the finished file tiles to GDAL at once.

        The file's tiles the block fills completely are written now; the parts of tiles it shares
        with blocks still to come wait here until those arrive. Then GDAL's cache is flushed: every
        tile is compressed and written once, never read back, and the output holds no more memory
        than the waiting tiles, whatever GDAL's cache size (a setting of the user's, not ours).
        """
        try:
            self._write_block(array[None] if array.ndim == 2 else array, row_off, col_off)
        except RuntimeError as exc:  # e.g. a disk that fills up while the blocks are written
            raise self._write_error([one_line(exc)]) from exc

    def _write_block(self, array: np.ndarray, row_off: int, col_off: int) -> None:
        _count, h, w = array.shape
        bs = self.block
        # The rectangle of whole file tiles inside the block (a tile cut by the raster's edge is whole there).
        r0, c0 = -(-row_off // bs) * bs, -(-col_off // bs) * bs
        r1 = row_off + h if row_off + h == self.height else (row_off + h) // bs * bs
        c1 = col_off + w if col_off + w == self.width else (col_off + w) // bs * bs
        if r1 > r0 and c1 > c0:
            self.write(array[:, r0 - row_off : r1 - row_off, c0 - col_off : c1 - col_off], r0, c0)
        for ti in range(row_off // bs, (row_off + h - 1) // bs + 1):
            for tj in range(col_off // bs, (col_off + w - 1) // bs + 1):
                tr0, tc0 = ti * bs, tj * bs
                if r0 <= tr0 < r1 and c0 <= tc0 < c1:
                    continue  # written above
                tr1, tc1 = min(tr0 + bs, self.height), min(tc0 + bs, self.width)
                a0, a1 = max(tr0, row_off), min(tr1, row_off + h)
                b0, b1 = max(tc0, col_off), min(tc1, col_off + w)
                tile, filled = self.waiting.get((ti, tj), (None, 0))
                if tile is None:
                    tile = np.empty((array.shape[0], tr1 - tr0, tc1 - tc0), array.dtype)
                tile[:, a0 - tr0 : a1 - tr0, b0 - tc0 : b1 - tc0] = array[:, a0 - row_off : a1 - row_off,
                                                                          b0 - col_off : b1 - col_off]
                filled += (a1 - a0) * (b1 - b0)
                if filled == tile.shape[1] * tile.shape[2]:
                    self.waiting.pop((ti, tj), None)
                    self.write(tile, tr0, tc0)
                else:
                    self.waiting[(ti, tj)] = (tile, filled)
        checked(self.dataset.FlushCache)

    def set_band_descriptions(self, descriptions: list[str]) -> None:
        """Name the bands."""
        for i, text in enumerate(descriptions):
            if text:
                self.dataset.GetRasterBand(i + 1).SetDescription(text)

    def commit(self) -> str:
        """Close the temporary file, check GDAL wrote all of it, and rename it onto `path`."""
        self.finish()
        return self.publish()

    def finish(self) -> None:
        """Everything but the rename: close and check the temporary file, then `before_commit` and the COG rewrite.

        On any failure the temporary file is removed and the error raised.
        """
        failures: list[str] = []
        try:
            checked(self.dataset.FlushCache)
        except RuntimeError as exc:
            failures.append(one_line(exc))
        failures += self._close()  # closing writes the last blocks and the header
        if not failures:
            try:
                check = open_raster(self.tmp_path)
                if (check.RasterXSize, check.RasterYSize) != (self.width, self.height):
                    failures.append("the written file does not read back")
                check = None
            except RuntimeError as exc:
                failures.append(f"the written file does not read back ({one_line(exc)})")
        if not failures and self.before_commit is not None:
            try:
                self.before_commit(self.tmp_path)
            except BaseException:
                self.abort()
                raise
        if not failures and self.cog_overviews:
            try:
                failures += self._to_cog()
            except BaseException:  # a cancel: the temporary file goes too
                self.abort()
                raise
        if failures:
            error = self._write_error(failures)
            self.abort()
            raise error

    def publish(self) -> str:
        """Rename the finished temporary file onto `path`."""
        return publish_file(self.tmp_path, self.path)

    def _write_error(self, failures: list[str]) -> OSError:
        """What GDAL's write failures mean: a full disk (ENOSPC, which the core explains as such), or EIO."""
        free = free_disk_bytes(self.tmp_path)
        full = (free is not None and free < 1024 * 1024) or any(DISK_FULL_TEXT.search(f) for f in failures)
        return OSError(errno.ENOSPC if full else errno.EIO,
                       f"GDAL could not finish writing it ({'; '.join(failures[:3])})", self.path)

    def _to_cog(self) -> list[str]:
        """Rewrite the finished temporary file as a COG (GDAL's COG driver: tiles, overviews, layout) in place."""
        cog = owned_name(self.path)
        options = creation_options(self.dtype, self.block, self.cog_overviews)
        going_on = GdalCancel(self.cancelled)
        try:
            with gdal_failures() as failures:
                made = gdal.Translate(cog, self.tmp_path, format="COG", creationOptions=options, callback=going_on)
                done = made is not None
                made = None  # closing writes it
            if going_on.stopped:
                remove_file(cog)
                raise Cancelled("cancelled by the user while the COG was written")
            if failures or not done:
                remove_file(cog)
                return [f"the COG copy failed ({'; '.join(failures) or 'no dataset'})"]
            replace_file(cog, self.tmp_path)
        except BaseException:
            remove_file(cog)
            raise
        return []

    def abort(self) -> None:
        """Throw the temporary file away."""
        self._close()  # the file is thrown away: its write errors do not matter
        remove_file(self.tmp_path)

    def _close(self) -> list[str]:
        """Drop the dataset (GDAL closes it) and return the errors GDAL met writing its last bytes.

        GDAL reports them only to its error handler, or, with exceptions on, as an exception raised in a
        destructor, which Python prints as "Exception ignored": both are collected here instead.
        """
        with gdal_failures() as failures:
            previous_hook = sys.unraisablehook
            sys.unraisablehook = lambda info: failures.append(str(info.exc_value))
            try:
                self.dataset = None
            finally:
                sys.unraisablehook = previous_hook
        return failures

    def __enter__(self) -> GeoTiffWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_geotiff(path: str, array: np.ndarray, geotransform: GeoTransform, crs_wkt: str,
                  nodata: float | None = None, band_descriptions: list[str] | None = None,
                  colours: list[int] | None = None, palette: tuple[list, list, list] | None = None,
                  metadata: dict[str, str] | None = None, in_staged_folder: bool = False) -> str:
    """Write a whole (C, h, w) or (h, w) array, atomically.

    `colours`, `in_staged_folder`: see GeoTiffWriter; `palette`: (class values, names, "#rrggbb" colours) of a
    class band; `metadata`: the dataset's metadata items (e.g. copied from the source raster).
    """
    array = array[None] if array.ndim == 2 else array
    count, height, width = array.shape
    with GeoTiffWriter(path, width, height, count, array.dtype, geotransform, crs_wkt, nodata,
                       colours=colours, in_staged_folder=in_staged_folder) as writer:
        if palette:  # before any pixel: a colour table makes the TIFF paletted, which it cannot become later
            from .palette import apply_colour_table  # (palette writes its .qml files with this module)

            apply_colour_table(writer.dataset.GetRasterBand(1), *palette)
        if metadata:
            checked(writer.dataset.SetMetadata, dict(metadata))
        writer.write(array)
        if band_descriptions:
            writer.set_band_descriptions(band_descriptions)
    return path


def write_text(path: str, text: str) -> str:
    """`text` into the file `path` (UTF-8)."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    return path


class DerivedFile:
    """A file made from a run's finished maps (polygons, an area table, a style), committed with them.

    `make(temporary_path)` writes it under a temporary name once the maps are finished; it is renamed only when
    every output of the run is ready (see `MapWriter`), and removed if any fails.
    """

    def __init__(self, path: str, make: Callable[[str], object]) -> None:
        self.path, self.make = path, make
        self.tmp_path = temporary_sibling(path)
        self.result = None

    def finish(self) -> None:
        """Make the file under its temporary name."""
        try:
            self.result = self.make(self.tmp_path)
        except BaseException:
            remove_file(self.tmp_path)
            raise

    def publish(self) -> str:
        """Rename it onto its path."""
        return publish_file(self.tmp_path, self.path)

    def abort(self) -> None:
        """Throw it away."""
        remove_file(self.tmp_path)


# Finished outputs waiting for the rest of a larger run (every head of a multi-head model) before any is renamed.
_waiting: ContextVar[list | None] = ContextVar("patchwork_waiting_outputs", default=None)


@contextmanager
def publish_together() -> Iterator[None]:
    """Several runs' outputs land all or none.

    Runs inside this block finish their outputs but rename none; at its end all are renamed, or on an error or a
    cancel all are removed.
    """
    waiting: list = []
    token = _waiting.set(waiting)
    try:
        yield
    except BaseException:
        for output in waiting:
            output.abort()
        raise
    finally:
        _waiting.reset(token)
    publish_all(waiting)


def publish_all(outputs: list) -> None:
    """Rename every finished output onto its path (or, inside `publish_together`, leave them for its end)."""
    waiting = _waiting.get()
    if waiting is not None:
        waiting.extend(outputs)
        return
    for output in outputs:
        output.publish()


class StagedFolder:
    """Files for the folder `target` are written into a hidden sibling folder, moved in whole by `commit()`.

    The target must not exist or be empty, unless `replace` is set: then the old folder is moved aside,
    the new one moved in and the old one deleted (a run that dies in between has the old folder put
    back by the next run). One run at a time writes a target (a lock beside it). A failed or
    cancelled run (`abort()`) leaves `target` exactly as it was.
    """

    def __init__(self, target: str, role: str = "OUTPUT_DIR", *, replace: bool = False,
                 log: Log | None = None) -> None:
        self.target = os.path.abspath(target)
        self.role = role
        self.replace = replace
        require_writable_folder(self.target, role)
        parent = os.path.dirname(self.target)
        try:
            os.makedirs(parent, exist_ok=True)
            self.lock = OutputLock(self.target, role, log).acquire()
        except OSError as exc:
            raise PatchworkError(
                f"{role}: cannot write to '{target}' ({exc.strerror}). Choose a folder you can write to."
            ) from exc
        try:
            sweep_debris(self.target, log)
            self.staging = owned_name(self.target)
            os.mkdir(self.staging)
        except BaseException:
            self.lock.release()
            raise

    def staged_path(self, relative: str) -> str:
        """Where a file of the dataset is written while the run lasts."""
        path = os.path.join(self.staging, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def final_path(self, relative: str) -> str:
        """Where that file ends up."""
        return os.path.join(self.target, relative)

    def commit(self, also: Callable[[], None] | None = None) -> None:
        """Move the staged folder into place (an earlier dataset replaced as a whole).

        `also` commits the run's other outputs (an index outside the folder) while the earlier folder is still
        kept aside: if it fails, the earlier folder is put back and the new one returned to staging for
        `abort()`, so a run's outputs land all or none.
        """
        aside = None
        try:
            if os.path.isdir(self.target) and not os.listdir(self.target):
                os.rmdir(self.target)
            if os.path.lexists(self.target):
                if not self.replace:
                    raise PatchworkError(f"{self.role}: '{self.target}' appeared during the run; nothing was "
                                         "replaced. Run again with a new folder.")
                aside = owned_name(self.target, "replaced")
                os.rename(self.target, aside)
            os.rename(self.staging, self.target)
            try:
                if also is not None:
                    also()
            except BaseException:
                os.rename(self.target, self.staging)
                if aside is not None:
                    os.rename(aside, self.target)
                raise
            if aside is not None:
                shutil.rmtree(aside, ignore_errors=True)
        except OSError as exc:
            raise PatchworkError(
                f"{self.role}: cannot move the new files into '{self.target}' ({exc.strerror}). Close layers or "
                "programs that hold files of that folder open, and run again."
            ) from exc
        finally:
            self.lock.release()

    def abort(self) -> None:
        """Remove the staged folder; the target is untouched."""
        shutil.rmtree(self.staging, ignore_errors=True)
        self.lock.release()
