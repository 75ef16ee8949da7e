"""Areas of interest: polygons that restrict where chips are cut.

A pixel is inside the AOI when its centre is (GDAL's rasterisation rule), evaluated on the
raster's own grid, chip by chip, so memory never grows with the raster.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from osgeo import gdal, ogr, osr

from ..errors import PatchworkError
from ..geometry import GeoTransform, Window, window_geotransform
from .gdal_errors import checked, opened
from .raster import same_crs
from .vectors import read_features, traditional_srs


class Aoi:
    """Polygons with their CRS, held in an in-memory OGR layer."""

    def __init__(self, wkt_geometries: Sequence[str], crs_wkt: str, role: str = "AOI") -> None:
        """Polygons (WKT) in CRS `crs_wkt`; `role` is the parameter errors name (AOI, MASK)."""
        self.crs_wkt = crs_wkt
        self.role = role
        self.union = ogr.Geometry(ogr.wkbMultiPolygon)
        for number, wkt in enumerate(wkt_geometries, 1):
            geom = checked(ogr.CreateGeometryFromWkt, wkt)
            if geom is None or geom.IsEmpty():
                continue
            if not geom.IsValid():  # else GEOS gives no intersection, which read as "does not overlap the raster"
                raise PatchworkError(
                    f"{role}: polygon {number} of the layer is not a valid polygon (its outline crosses or touches "
                    "itself). Repair the layer first: Processing ▸ Vector geometry ▸ Fix geometries "
                    "(native:fixgeometries), then use the fixed layer.")
            flat = ogr.GT_Flatten(geom.GetGeometryType())
            if flat == ogr.wkbPolygon:
                self.union.AddGeometry(geom)
            elif flat == ogr.wkbMultiPolygon:
                for i in range(geom.GetGeometryCount()):
                    self.union.AddGeometry(geom.GetGeometryRef(i))
            else:
                raise PatchworkError(
                    f"{role}: only polygons define an area, got a {geom.GetGeometryName()}. Use a polygon layer."
                )
        if self.union.IsEmpty():
            raise PatchworkError(f"{role}: the layer has no polygons. Draw or select at least one polygon.")
        if self.union.GetGeometryCount() > 1 and not self.union.IsValid():  # valid polygons that overlap each other
            self.union = self.union.UnionCascaded()
        # Only the datasource is kept: a Python reference to its layer could outlive it (OGR segfaults).
        self._source = opened(ogr.GetDriverByName("Memory").CreateDataSource, "aoi")
        srs = traditional_srs(crs_wkt) if crs_wkt else None
        layer = opened(self._source.CreateLayer, "aoi", srs, ogr.wkbMultiPolygon)
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(self.union)
        checked(layer.CreateFeature, feature)

    @classmethod
    def from_file(cls, path: str, layer: str | None = None) -> Aoi:
        """An AOI from the polygons of a vector file (its first layer, or `layer`), in the file's CRS."""
        wkts, crs_wkt, _values = read_features(path, "AOI", layer)
        return cls(wkts, crs_wkt)

    def transformed(self, crs_wkt: str) -> Aoi:
        """The same polygons in another CRS (a no-op when the CRS is the same or unknown)."""
        if not self.crs_wkt or not crs_wkt or same_crs(self.crs_wkt, crs_wkt):
            return self
        geom = self.union.Clone()
        transform = opened(osr.CoordinateTransformation, traditional_srs(self.crs_wkt), traditional_srs(crs_wkt))
        checked(geom.Transform, transform)
        return Aoi([geom.ExportToWkt()], crs_wkt, self.role)

    def pixel_window(self, gt: GeoTransform, height: int, width: int, raster_footprint_wkt: str) -> Window:
        """The box of raster pixels the AOI touches; an error when it misses the raster."""
        raster = opened(ogr.CreateGeometryFromWkt, raster_footprint_wkt)
        overlap = self.union.Intersection(raster)
        if overlap is None or overlap.IsEmpty() or overlap.GetArea() == 0:
            raise PatchworkError(
                f"{self.role}: the polygons do not overlap the raster. Check that the {self.role} layer covers the "
                "raster and that both have the right CRS."
            )
        xmin, xmax, ymin, ymax = overlap.GetEnvelope()
        cols = sorted(((xmin - gt[0]) / gt[1], (xmax - gt[0]) / gt[1]))
        rows = sorted(((ymax - gt[3]) / gt[5], (ymin - gt[3]) / gt[5]))
        r0, c0 = max(int(math.floor(rows[0])), 0), max(int(math.floor(cols[0])), 0)
        r1, c1 = min(int(math.ceil(rows[1])), height), min(int(math.ceil(cols[1])), width)
        return Window(r0, c0, max(r1 - r0, 1), max(c1 - c0, 1))

    def inside_mask(self, gt: GeoTransform, window: Window) -> np.ndarray:
        """Boolean (h, w): which pixels of the window have their centre inside the AOI."""
        mem = opened(gdal.GetDriverByName("MEM").Create, "", window.width, window.height, 1, gdal.GDT_Byte)
        mem.SetGeoTransform(window_geotransform(gt, window))
        if self.crs_wkt:
            checked(mem.SetProjection, self.crs_wkt)
        checked(gdal.RasterizeLayer, mem, [1], self._source.GetLayer(0), burn_values=[1])
        return checked(mem.GetRasterBand(1).ReadAsArray).astype(bool)
