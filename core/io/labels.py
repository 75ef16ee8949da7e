"""Labels drawn as polygons with a class field, burnt into each label chip on the chip's own grid.

A pixel takes the class of the polygon that holds its centre (GDAL's rasterisation rule), or of any polygon it
touches with `all_touched`. Where polygons overlap, the one drawn last wins, as in gdal_rasterize. Pixels under
no polygon are nodata, or `background` when one is given.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from osgeo import gdal, ogr, osr

from ..errors import PatchworkError
from ..geometry import GeoTransform
from .gdal_errors import checked, opened
from .palette import class_colours
from .raster import same_crs
from .vectors import read_features, traditional_srs

CLASS_FIELD = "class_id"
MAX_CLASS_ID = 65534  # uint16 label chips keep 65535 for nodata


@dataclass(frozen=True)
class LabelClass:
    """One class of a label set: its id in the label chips, its name and colour ("#rrggbb" or None)."""

    id: int
    name: str
    colour: str | None = None


class VectorLabels:
    """Polygons and their classes, in an in-memory OGR layer ready to be burnt chip by chip."""

    def __init__(self, wkt_geometries: Sequence[str], values: Sequence, crs_wkt: str, *, all_touched: bool = False,
                 background: int | None = None, colours: dict | None = None, names: dict | None = None) -> None:
        """Polygons and the class value of each.

        Args:
            wkt_geometries: The polygons, as WKT, in `crs_wkt`.
            values: Each polygon's class: whole numbers (the ids, 0 to 65534) or text (categories, numbered 0, 1, …
                in sorted order).
            crs_wkt: The polygons' CRS.
            all_touched: Burn every pixel a polygon touches, not only those whose centre it holds.
            background: The class of pixels under no polygon (default: nodata).
            colours: Colours ("#rrggbb") by class value, e.g. from a QGIS categorized style.
            names: Names by class id, for whole-number classes (e.g. a categorized style's legend).

        Raises:
            PatchworkError: No polygons, geometries that are not polygons, or class values that are neither whole
                numbers nor text.
        """
        if len(wkt_geometries) != len(values):
            raise PatchworkError("LABEL_FIELD: one class value is needed per polygon.")
        self.crs_wkt, self.all_touched, self.background = crs_wkt, all_touched, background
        self.classes, ids = _class_table(values, background, colours or {}, names or {})
        self.dtype = np.dtype(np.uint8 if max(c.id for c in self.classes) < 255 else np.uint16)
        self.nodata = int(np.iinfo(self.dtype).max)
        # Only the datasource is kept: a Python reference to its layer could outlive it (OGR segfaults).
        self._source = opened(ogr.GetDriverByName("Memory").CreateDataSource, "labels")
        srs = traditional_srs(crs_wkt) if crs_wkt else None
        layer = opened(self._source.CreateLayer, "labels", srs, ogr.wkbMultiPolygon)
        checked(layer.CreateField, ogr.FieldDefn(CLASS_FIELD, ogr.OFTInteger))
        self.count = 0
        for wkt, class_id in zip(wkt_geometries, ids):
            geom = checked(ogr.CreateGeometryFromWkt, wkt) if wkt else None
            if geom is None or geom.IsEmpty() or class_id is None:  # a polygon without a class labels nothing
                continue
            if ogr.GT_Flatten(geom.GetGeometryType()) not in (ogr.wkbPolygon, ogr.wkbMultiPolygon):
                raise PatchworkError(f"LABELS: label polygons are needed, got a {geom.GetGeometryName()}. Use a "
                                     "polygon layer (points and lines are samplers' business, not labels).")
            feature = ogr.Feature(layer.GetLayerDefn())
            feature.SetGeometry(geom)
            feature.SetField(CLASS_FIELD, int(class_id))
            checked(layer.CreateFeature, feature)
            self.count += 1
        if self.count == 0:
            raise PatchworkError("LABELS: the label layer has no polygons.")

    @classmethod
    def from_file(cls, path: str, field: str, layer: str | None = None, **options) -> VectorLabels:
        """The polygons of a vector file and their class `field` (its first layer, or `layer`), in its CRS.

        Args:
            path: A vector file GDAL reads (GeoPackage, shapefile, GeoJSON, …).
            field: The attribute that holds each polygon's class (whole numbers or text).
            layer: The layer to read (default: the first).
            **options: `all_touched`, `background`, `colours` and `names`, as for the constructor.

        Returns:
            The labels, in the file's CRS.

        Raises:
            PatchworkError: A file, layer or field that cannot be read.
        """
        wkts, crs_wkt, values = read_features(path, "LABELS", layer, field)
        return cls(wkts, values, crs_wkt, **options)

    def transformed(self, crs_wkt: str) -> VectorLabels:
        """The same labels in another CRS (a no-op when the CRS is the same or unknown)."""
        if not self.crs_wkt or not crs_wkt or same_crs(self.crs_wkt, crs_wkt):
            return self
        transform = opened(osr.CoordinateTransformation, traditional_srs(self.crs_wkt), traditional_srs(crs_wkt))
        wkts, ids = [], []
        for feature in self._source.GetLayer(0):
            geom = feature.GetGeometryRef().Clone()
            checked(geom.Transform, transform)
            wkts.append(geom.ExportToWkt())
            ids.append(feature.GetField(CLASS_FIELD))
        copy = VectorLabels(wkts, ids, crs_wkt, all_touched=self.all_touched, background=self.background)
        copy.classes = self.classes  # ids are already ids: keep the names and colours they stand for
        return copy

    def rasterize(self, geotransform: GeoTransform, height: int, width: int) -> np.ndarray:
        """The class ids of a height × width grid with this geotransform (nodata where no class)."""
        gdal_type = gdal.GDT_Byte if self.dtype == np.uint8 else gdal.GDT_UInt16
        mem = opened(gdal.GetDriverByName("MEM").Create, "", width, height, 1, gdal_type)
        mem.SetGeoTransform(geotransform)
        if self.crs_wkt:
            checked(mem.SetProjection, self.crs_wkt)
        band = mem.GetRasterBand(1)
        checked(band.Fill, self.nodata if self.background is None else self.background)
        options = [f"ATTRIBUTE={CLASS_FIELD}"] + (["ALL_TOUCHED=TRUE"] if self.all_touched else [])
        checked(gdal.RasterizeLayer, mem, [1], self._source.GetLayer(0), options=options)
        return checked(band.ReadAsArray).astype(self.dtype, copy=False)


def _class_table(values: Sequence, background: int | None, colours: dict,
                 names: dict) -> tuple[list[LabelClass], list[int | None]]:
    """The classes the values stand for, and each value's id (None for an empty value)."""
    present = [v for v in values if v is not None]
    if not present:
        raise PatchworkError("LABEL_FIELD: every polygon's class is empty.")
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in present):
        ids = [int(v) if v is not None else None for v in values]
        bad = sorted({i for i in ids if i is not None and not 0 <= i <= MAX_CLASS_ID})
        if bad:
            raise PatchworkError(f"LABEL_FIELD: class ids must be 0 to {MAX_CLASS_ID}, got {bad[:5]}.")
        found = sorted({i for i in ids if i is not None} | ({background} if background is not None else set()))
        classes = [LabelClass(i, names.get(i) or f"class {i}", colours.get(i)) for i in found]
    elif all(isinstance(v, str) for v in present):
        names = sorted(set(present))
        free_ids = MAX_CLASS_ID + 1 - (background is not None and 0 <= background <= MAX_CLASS_ID)
        if len(names) > free_ids:
            raise PatchworkError(f"LABEL_FIELD: the class field holds {len(names):,} different texts; a label raster "
                                 f"holds at most {free_ids:,} classes. Is it a name or id field rather than the "
                                 "class? Pick the field that holds the class.")
        # Categories are numbered 0, 1, … in name order, skipping the background's id (else every pixel under no
        # polygon would be the category numbered like it).
        number = dict(zip(names, (i for i in range(MAX_CLASS_ID + 1) if i != background)))
        ids = [number.get(v) for v in values]
        classes = [LabelClass(number[name], name, colours.get(name)) for name in names]
        if background is not None:
            classes = sorted([*classes, LabelClass(background, "background")], key=lambda c: c.id)
    else:
        raise PatchworkError("LABEL_FIELD: the class field must hold whole numbers or text, not "
                             f"{type(present[0]).__name__} values.")
    if background is not None and not 0 <= background <= MAX_CLASS_ID:
        raise PatchworkError(f"BACKGROUND: a class id from 0 to {MAX_CLASS_ID}, got {background}.")
    defaults = class_colours(len(classes))  # a class without a colour of its own gets a distinct one
    return [LabelClass(c.id, c.name, c.colour or default) for c, default in zip(classes, defaults)], ids
