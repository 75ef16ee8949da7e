"""What a GIS user does with a class map next: small segments removed, polygons, and the area of each class.

- `sieve_in_place`: segments smaller than a number of pixels take the class of their largest neighbour (GDAL's
  sieve filter, 8-connected); nodata stays nodata. Classify runs it on its temporary file, before the map appears.
- `polygonize`: one polygon per connected segment (GDAL's polygonize), with the class id, its name and its area,
  into a GeoPackage written under a temporary name and renamed when complete.
- `class_areas`: pixels, hectares and share of the mapped area per class, read block by block; pixel areas are
  exact on a projected grid and computed on the authalic sphere for a geographic one (no hectares without a CRS).
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass

import numpy as np
from osgeo import gdal, ogr, osr

from ..errors import PatchworkError, one_line
from ..io.gdal_errors import checked, gdal_failures, open_raster, opened
from ..io.partials import owned_name, remove_file, replace_file
from ..io.vectors import geopackage_layer
from ..progress import Feedback, SilentFeedback, check_cancelled

AUTHALIC_RADIUS_M = 6_371_007.2  # the sphere of the WGS 84 ellipsoid's area
BLOCK_ROWS = 512


def sieve_in_place(path: str, min_pixels: int) -> None:
    """Merge the segments of fewer than `min_pixels` pixels of band 1 into their largest neighbour."""
    if min_pixels < 2:
        return
    ds = opened(gdal.OpenEx, path, gdal.OF_RASTER | gdal.OF_UPDATE | gdal.OF_VERBOSE_ERROR)
    band = ds.GetRasterBand(1)
    with gdal_failures() as failures:
        code = gdal.SieveFilter(band, band.GetMaskBand(), band, int(min_pixels), 8)
        band.FlushCache()
        ds = band = None
    if code != 0 or failures:
        raise PatchworkError(f"MIN_SEGMENT: GDAL's sieve filter failed on '{os.path.basename(path)}' "
                             f"({'; '.join(failures) or f'error {code}'}).")


@dataclass
class ClassArea:
    """One class's share of a class map."""

    value: int
    name: str
    pixels: int
    hectares: float
    percent: float  # of the pixels with a class


def row_pixel_areas(geotransform, srs, rows: int) -> np.ndarray:
    """The area of one pixel in square metres, per row (all equal on a projected grid).

    NaN without a CRS (`srs` None) or on a rotated geographic grid: then only pixels and shares are known.
    """
    gt = geotransform
    if srs is None:  # (classify warns about it): pixels and shares only
        return np.full(rows, np.nan)
    if srs.IsGeographic():
        if gt[2] or gt[4]:  # a rotated geographic grid (rare): pixels and shares only
            return np.full(rows, np.nan)
        radians = srs.GetAngularUnits()  # one unit of the grid (a degree) in radians
        edges = gt[3] + gt[5] * np.arange(rows + 1)
        sines = np.sin(np.clip(edges * radians, -math.pi / 2, math.pi / 2))
        return AUTHALIC_RADIUS_M ** 2 * abs(gt[1]) * radians * np.abs(np.diff(sines))
    metres = srs.GetLinearUnits()
    return np.full(rows, abs(gt[1] * gt[5] - gt[2] * gt[4]) * metres * metres)


FEW_CLASSES = 32  # up to this many class values, AreaCounter counts with one comparison pass per class


class AreaCounter:
    """Pixels and square metres per class, a block of a class map at a time (as it is written, or read back)."""

    def __init__(self, geotransform, crs_wkt: str, rows: int, class_values: list[int], nodata: float | None) -> None:
        """Count the classes `class_values` of a map of `rows` rows on this grid; `nodata` is left out."""
        srs = None
        if crs_wkt:
            srs = osr.SpatialReference()
            checked(srs.ImportFromWkt, crs_wkt)
        self.row_areas = row_pixel_areas(geotransform, srs, rows)
        self.uniform = bool(np.all(self.row_areas == self.row_areas[0])) or bool(np.isnan(self.row_areas[0]))
        self.nodata = nodata
        self.size = max(class_values) + 2  # the last bin: nodata
        self.pixels = np.zeros(self.size, np.int64)
        self.area = np.zeros(self.size, np.float64)

    def add(self, block: np.ndarray, row_off: int) -> None:
        """Count a (rows, cols) block of class values whose first row is `row_off`."""
        if self.size <= FEW_CLASSES + 1 and block.dtype.kind in "ui":
            self._add_few(block, row_off)
            return
        valid = block != self.nodata if self.nodata is not None else np.ones(block.shape, bool)
        values = np.where(valid & (block < self.size - 1), block, self.size - 1).astype(np.intp)
        self.pixels += np.bincount(values.ravel(), minlength=self.size)
        if not self.uniform:  # a geographic grid's pixels shrink toward the poles: row by row
            for r in range(block.shape[0]):
                self.area += np.bincount(values[r], minlength=self.size) * self.row_areas[row_off + r]

    def _add_few(self, block: np.ndarray, row_off: int) -> None:
        """`add` for a few classes: one comparison pass per class over the block's own small integers.

        The general way's masks and 8-byte indexes took a tenth of a cheap model's run, in the thread that writes.
        """
        rows = None if self.uniform else self.row_areas[row_off : row_off + block.shape[0]]
        counted, counted_area = 0, 0.0
        for value in range(self.size - 1):
            if value == self.nodata:
                continue
            if rows is None:
                found = int(np.count_nonzero(block == value))
            else:
                per_row = np.count_nonzero(block == value, axis=1)
                found = int(per_row.sum())
                area = per_row @ rows
                self.area[value] += area
                counted_area += area
            self.pixels[value] += found
            counted += found
        self.pixels[-1] += block.size - counted  # nodata, and values of no class
        if rows is not None:
            self.area[-1] += block.shape[1] * rows.sum() - counted_area

    def areas(self, class_values: list[int], class_names: list[str]) -> list[ClassArea]:
        """Each class's pixels, hectares and percent of the counted class pixels."""
        area = self.pixels * self.row_areas[0] if self.uniform else self.area
        total = self.pixels[:-1].sum()
        return [ClassArea(v, n, int(self.pixels[v]), float(area[v] / 10_000),
                          100.0 * self.pixels[v] / total if total else 0.0)
                for v, n in zip(class_values, class_names)]


def class_areas(class_map: str, class_values: list[int], class_names: list[str],
                feedback: Feedback | None = None) -> list[ClassArea]:
    """Pixels, hectares and percent of each class of `class_map` (band 1), nodata left out, read block by block."""
    feedback = feedback or SilentFeedback()
    ds = open_raster(class_map)
    band = ds.GetRasterBand(1)
    counter = AreaCounter(ds.GetGeoTransform(), ds.GetProjection(), ds.RasterYSize, class_values,
                          band.GetNoDataValue())
    for row in range(0, ds.RasterYSize, BLOCK_ROWS):
        check_cancelled(feedback)
        counter.add(checked(band.ReadAsArray, 0, row, ds.RasterXSize, min(BLOCK_ROWS, ds.RasterYSize - row)), row)
    return counter.areas(class_values, class_names)


def area_summary(areas: list[ClassArea]) -> list[str]:
    """Log lines: one per class present (no hectares for a map without a CRS)."""
    return [f"{a.name} ({a.value}): " + (f"{a.hectares:,.2f} ha, " if not math.isnan(a.hectares) else "")
            + f"{a.percent:.1f}% ({a.pixels:,} px)" for a in areas if a.pixels]


def write_area_table(path: str, areas: list[ClassArea]) -> str:
    """The areas as CSV (class, name, pixels, hectares, percent), written atomically."""
    text = io.StringIO()
    table = csv.writer(text, lineterminator="\n")
    table.writerow(["class", "name", "pixels", "hectares", "percent"])
    for a in areas:
        table.writerow([a.value, a.name, a.pixels, "" if math.isnan(a.hectares) else f"{a.hectares:.4f}",
                        f"{a.percent:.4f}"])
    temporary = owned_name(path)
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as fh:
            fh.write(text.getvalue())
        replace_file(temporary, path)
    except BaseException:
        remove_file(temporary)
        raise
    return path


def polygonize(class_map: str, output: str, class_values: list[int], class_names: list[str],
               feedback: Feedback | None = None, style_qml: str | None = None) -> int:
    """Polygons of the class map's segments into the GeoPackage `output` (layer "classes"); returns their count.

    Each polygon has `class`, `name` and `area_m2` (planar on a projected grid, on an equal-area projection
    centred on the map for a geographic one, empty without a CRS). `style_qml` is stored as the layer's default
    style in the GeoPackage's layer_styles table, where QGIS finds it however the layer is opened.
    """
    feedback = feedback or SilentFeedback()
    names = dict(zip(class_values, class_names))
    src = open_raster(class_map)
    band = src.GetRasterBand(1)
    srs = src.GetSpatialRef()
    fields = (("class", ogr.OFTInteger), ("name", ogr.OFTString), ("area_m2", ogr.OFTReal))
    with geopackage_layer(output, owned_name(output), "classes", srs, ogr.wkbPolygon, fields, style_qml) as layer:

        def progress(done, _message, _data):
            feedback.set_progress(100.0 * done)
            return 0 if feedback.is_cancelled() else 1

        try:
            with gdal_failures() as failures:
                code = gdal.Polygonize(band, band.GetMaskBand(), layer, 0, ["8CONNECTED=8"], callback=progress)
        except RuntimeError as exc:  # with GDAL's exceptions on, a stop asked by the callback is "User terminated"
            check_cancelled(feedback)
            raise PatchworkError(f"OUTPUT_VECTOR: GDAL could not polygonize the class map ({one_line(exc)}).") \
                from exc
        check_cancelled(feedback)
        if code != 0 or failures:
            raise PatchworkError(f"OUTPUT_VECTOR: GDAL could not polygonize the class map "
                                 f"({'; '.join(failures) or f'error {code}'}).")
        to_area = _area_transform(src, srs)
        layer.ResetReading()
        count = 0
        for feature in layer:
            value = feature.GetFieldAsInteger(0)
            geometry = feature.GetGeometryRef().Clone()
            if to_area is not None:
                geometry.Transform(to_area)
            feature.SetField(1, names.get(value, f"class {value}"))
            if srs is not None:  # without a CRS the unit is unknown: no area
                feature.SetField(2, geometry.GetArea() * (1.0 if to_area is not None else srs.GetLinearUnits() ** 2))
            checked(layer.SetFeature, feature)
            count += 1
    return count


def _area_transform(src, srs):
    """For a geographic map: a transformation to a Lambert azimuthal equal-area projection centred on it."""
    if srs is None or not srs.IsGeographic():
        return None
    gt = src.GetGeoTransform()
    lon = gt[0] + gt[1] * src.RasterXSize / 2
    lat = gt[3] + gt[5] * src.RasterYSize / 2
    equal_area = osr.SpatialReference()
    checked(equal_area.ImportFromProj4, f"+proj=laea +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m +no_defs")
    source = srs.Clone()
    for s in (source, equal_area):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    try:
        return osr.CoordinateTransformation(source, equal_area)
    except RuntimeError as exc:
        raise PatchworkError(f"OUTPUT_VECTOR: cannot compute areas in this CRS ({one_line(exc)}).") from exc
