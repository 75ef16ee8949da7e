"""Reading rasters through GDAL: windowed, boundless reads with a validity mask."""
from __future__ import annotations

import os

import numpy as np
from osgeo import gdal, gdal_array, osr

from ..errors import PatchworkError, one_line
from ..geometry import GeoTransform, Window, footprint, is_north_up
from .gdal_errors import checked, open_raster


def numpy_dtype(gdal_type: int) -> np.dtype:
    """The numpy type of a GDAL data type."""
    return np.dtype(gdal_array.GDALTypeCodeToNumericTypeCode(gdal_type))


def default_fill(dtype: np.dtype) -> float:
    """The fill for pixels outside a raster that declares no nodata: NaN for floats, 0 for integers."""
    return float("nan") if np.issubdtype(dtype, np.floating) else 0


class RasterSource:
    """A raster opened for windowed reads. Pixels outside the raster read as the fill value."""

    def __init__(self, path: str, role: str = "INPUT", drivers: list[str] | None = None,
                 known_crs_wkt: str | None = None, open_options: list[str] | None = None) -> None:
        """Open `path`; `drivers` limits the GDAL drivers that may read it (chips: GeoTIFF only, never a VRT).

        `known_crs_wkt`: the raster's CRS when the caller holds it already (a chip index holds its chips'): GDAL's
        CRS lookup, a third of the time of opening a small chip, is then skipped. `open_options`: the driver's.
        """
        self.path = str(path)
        self.role = role
        if not os.path.exists(self.path) and not self.path.startswith("/vsi"):
            raise PatchworkError(f"{role}: no raster at '{self.path}'. Check the path.")
        try:
            self.dataset = open_raster(self.path, drivers, open_options)
        except RuntimeError as exc:
            kind = f"a {' or '.join(drivers)} raster" if drivers else "a raster"
            raise PatchworkError(f"{role}: GDAL cannot open '{self.path}' as {kind} ({one_line(exc)}).") from exc
        ds = self.dataset
        self.width: int = ds.RasterXSize
        self.height: int = ds.RasterYSize
        self.count: int = ds.RasterCount
        if self.count == 0:
            raise PatchworkError(f"{role}: '{self.path}' has no raster bands.")
        band = ds.GetRasterBand(1)
        self.dtype: np.dtype = numpy_dtype(band.DataType)
        if band.GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE") == "SIGNEDBYTE":  # GDAL < 3.7's signed bytes
            self.dtype = np.dtype(np.int8)
        if np.issubdtype(self.dtype, np.complexfloating):  # reading it as real numbers would drop the imaginary part
            kind = gdal.GetDataTypeName(band.DataType)
            band = ds = self.dataset = None
            raise PatchworkError(f"{role}: '{os.path.basename(self.path)}' has complex-valued bands ({kind}), which "
                                 "Patchwork does not read. Make real bands first (e.g. amplitude and phase with the "
                                 "Raster Calculator or gdal_calc).")
        self.geotransform: GeoTransform = tuple(ds.GetGeoTransform())
        self.crs_wkt: str = known_crs_wkt if known_crs_wkt is not None else ds.GetProjection() or ""
        self.nodata: list[float | None] = [ds.GetRasterBand(b).GetNoDataValue() for b in range(1, self.count + 1)]
        self.block_size: tuple[int, int] = tuple(band.GetBlockSize())  # (cols, rows)
        self.band_descriptions = [ds.GetRasterBand(b).GetDescription() for b in range(1, self.count + 1)]
        # GDAL colour interpretations (gdal.GCI_*): what copies of these bands are tagged with
        self.colours = [ds.GetRasterBand(b).GetColorInterpretation() for b in range(1, self.count + 1)]
        self.metadata: dict[str, str] = dict(ds.GetMetadata() or {})  # e.g. a solar zenith angle, kept in chips

    def close(self) -> None:
        """Close the dataset."""
        self.dataset = None

    def __enter__(self) -> RasterSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def fill_value(self) -> float:
        """The value for pixels outside the raster: its nodata, else NaN for floats, else 0."""
        nd = self.nodata[0]
        return default_fill(self.dtype) if nd is None else nd

    @property
    def has_nodata(self) -> bool:
        """True when the first band declares a nodata value."""
        return self.nodata[0] is not None

    def require_georeferenced(self) -> None:
        """Chips must sit on the ground: a CRS and a north-up geotransform are required."""
        if not self.crs_wkt:
            raise PatchworkError(
                f"{self.role}: '{os.path.basename(self.path)}' has no CRS. Assign one first "
                "(QGIS: Raster ▸ Projections ▸ Assign Projection, or gdal_edit.py -a_srs EPSG:xxxx)."
            )
        if not is_north_up(self.geotransform):
            raise PatchworkError(
                f"{self.role}: '{os.path.basename(self.path)}' has a rotated geotransform {self.geotransform}. "
                "Warp it north-up first (gdalwarp, or Processing ▸ Warp (reproject))."
            )

    def grid_differences(self, other: RasterSource) -> list[str]:
        """How `other` is not on this raster's grid: size, geotransform, CRS ([] when it is)."""
        problems = []
        if (other.width, other.height) != (self.width, self.height):
            problems.append(f"size {other.width}x{other.height} instead of {self.width}x{self.height}")
        tol = 1e-6 * max(abs(self.geotransform[1]), abs(self.geotransform[5]))
        if any(abs(a - b) > tol for a, b in zip(other.geotransform, self.geotransform)):
            problems.append(f"geotransform {other.geotransform} instead of {self.geotransform}")
        if other.crs_wkt and self.crs_wkt and not same_crs(other.crs_wkt, self.crs_wkt):
            problems.append("another CRS")
        return problems

    def require_same_grid(self, other: RasterSource) -> None:
        """`other` (e.g. a label raster) must have this raster's size, geotransform and CRS."""
        problems = self.grid_differences(other)
        if problems:
            raise PatchworkError(
                f"{other.role} raster '{os.path.basename(other.path)}' is not on the grid of "
                f"'{os.path.basename(self.path)}': {'; '.join(problems)}. Resample it onto that grid first "
                "(Processing ▸ Align rasters, or gdalwarp -te/-tr/-t_srs with nearest-neighbour)."
            )

    def footprint_wkt(self) -> str:
        """The raster's outline as WKT, in its CRS."""
        ring = footprint(self.geotransform, self.height, self.width)
        return "POLYGON ((" + ", ".join(f"{x!r} {y!r}" for x, y in ring) + "))"

    def read(self, window: Window, bands: list[int] | None = None, fill: float | None = None,
             validity: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Read a window as (C, h, w) plus a (h, w) validity mask (None with `validity` False: not made).

        Pixels outside the raster hold `fill` (default: the nodata value, else NaN or 0) and are
        invalid; so are pixels that GDAL's mask marks (nodata, alpha, internal masks) in any of the
        bands read, and NaNs.
        """
        bands = bands or list(range(1, self.count + 1))
        fill = self.fill_value if fill is None else fill
        inner = window.clip(self.height, self.width)
        if inner is None:
            return np.full((len(bands), window.height, window.width), fill, dtype=self.dtype), \
                np.zeros((window.height, window.width), dtype=bool)
        args = (inner.col_off, inner.row_off, inner.width, inner.height)
        try:
            block = checked(self.dataset.ReadAsArray, *args, band_list=bands)
            if block is None:
                raise RuntimeError("no pixels returned")
            block = block.reshape(len(bands), inner.height, inner.width)
            mask = self._valid(block, bands, args) if validity else None
        except RuntimeError as exc:
            raise PatchworkError(
                f"{self.role}: GDAL cannot read the {inner.width}x{inner.height} px at column {inner.col_off}, row "
                f"{inner.row_off} of '{self.path}' ({one_line(exc)}). The file may be truncated or damaged: check it "
                "with gdalinfo -checksum, or copy it again."
            ) from exc
        if inner == window:  # no border to fill: the array GDAL read is the answer
            return block, mask
        data = np.full((len(bands), window.height, window.width), fill, dtype=self.dtype)
        valid = np.zeros((window.height, window.width), dtype=bool)
        r0, c0 = inner.row_off - window.row_off, inner.col_off - window.col_off
        data[:, r0 : r0 + inner.height, c0 : c0 + inner.width] = block
        if not validity:
            return data, None
        valid[r0 : r0 + inner.height, c0 : c0 + inner.width] = mask
        return data, valid

    def _valid(self, block: np.ndarray, bands: list[int], args: tuple[int, int, int, int]) -> np.ndarray:
        valid = np.ones(block.shape[1:], dtype=bool)
        floating = np.issubdtype(block.dtype, np.floating)
        dataset_mask_done = False
        for i, b in enumerate(bands):  # band by band, in place: each plane is read once, contiguously
            band = self.dataset.GetRasterBand(b)
            flags = band.GetMaskFlags()
            if flags & gdal.GMF_NODATA and not np.isnan(band.GetNoDataValue()):
                np.logical_and(valid, block[i] != band.GetNoDataValue(), out=valid)
            elif not flags & (gdal.GMF_ALL_VALID | gdal.GMF_NODATA) and not (
                    flags & gdal.GMF_PER_DATASET and dataset_mask_done):
                np.logical_and(valid, checked(band.GetMaskBand().ReadAsArray, *args) > 0, out=valid)
                dataset_mask_done = dataset_mask_done or bool(flags & gdal.GMF_PER_DATASET)
            if floating:  # NaN is never data (a NaN nodata value included)
                np.logical_and(valid, block[i] == block[i], out=valid)
        return valid


def no_crs_warning(path: str, output: str) -> str:
    """What a run says when an input without CRS makes an output without one.

    Said where georeferencing is not needed to compute the output; where it is (sampling chips),
    `require_georeferenced` refuses instead.
    """
    return (f"Warning: '{os.path.basename(path)}' has no CRS, so neither has the {output}: it lies on the input's "
            "pixel grid. Assign a CRS (Raster ▸ Projections ▸ Assign Projection) to place it on the map.")


def same_crs(wkt_a: str, wkt_b: str) -> bool:
    """True when the two WKT CRSs are the same (axis order aside)."""
    a, b = osr.SpatialReference(), osr.SpatialReference()
    checked(a.ImportFromWkt, wkt_a)
    checked(b.ImportFromWkt, wkt_b)
    return bool(a.IsSame(b, ["IGNORE_DATA_AXIS_TO_SRS_AXIS_MAPPING=YES"]))
