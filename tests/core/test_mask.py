"""Classify inside a mask: pixels whose centre lies in the polygons are the map without a mask, the rest is nodata,
and tiles and blocks that reach no such pixel are not computed."""
from __future__ import annotations

import os

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from patchwork.core import Aoi, PatchworkError, classify
from tests.conftest import REPO, SHARED_DATA, files_under, read_all
from tests.onnx_models import free_spatial_dims_file

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")
DEEPNESS = os.path.join(SHARED_DATA, "models", "one_output_softmax_bsx2x512x512.onnx")


def _triangle_in_wgs84(raster: str, corners: list[tuple[float, float]]) -> tuple[str, str]:
    """A triangle through pixel positions (col, row) of `raster`, as WKT in EPSG:4326 (another CRS than the
    raster's)."""
    ds = gdal.Open(raster)
    gt, srs = ds.GetGeoTransform(), ds.GetSpatialRef()
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    for s in (srs, wgs84):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for col, row in [*corners, corners[0]]:
        ring.AddPoint_2D(gt[0] + col * gt[1], gt[3] + row * gt[5])
    polygon = ogr.Geometry(ogr.wkbPolygon)
    polygon.AddGeometry(ring)
    polygon.Transform(osr.CoordinateTransformation(srs, wgs84))
    return polygon.ExportToWkt(), wgs84.ExportToWkt()


def _rasterised(wkt: str, crs_wkt: str, like: str) -> np.ndarray:
    """gdal.Rasterize of the polygon on the raster's grid (pixel centres), as the reference."""
    ds = gdal.Open(like)
    vector = ogr.GetDriverByName("Memory").CreateDataSource("mask")
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs_wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    layer = vector.CreateLayer("mask", srs, ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
    layer.CreateFeature(feature)
    target = gdal.GetDriverByName("MEM").Create("", ds.RasterXSize, ds.RasterYSize, 1, gdal.GDT_Byte)
    target.SetGeoTransform(ds.GetGeoTransform())
    target.SetProjection(ds.GetProjection())
    gdal.RasterizeLayer(target, [1], layer, burn_values=[1])
    return target.ReadAsArray().astype(bool)


def test_a_mask_in_another_crs_keeps_the_map_inside_and_skips_tiles_outside(tmp_path, ortho_path):
    wkt, crs = _triangle_in_wgs84(ortho_path, [(300, 150), (760, 150), (300, 640)])
    settings = dict(bands=[1, 2, 3], scale=1 / 255, overlap=64, window="hann", aggregation="softvote",
                    tile_size=256)
    model = free_spatial_dims_file(DEEPNESS, str(tmp_path / "any_tile.onnx"))  # Deepness's model, any tile size
    full = classify(ortho_path, model, str(tmp_path / "full.tif"), probabilities=str(tmp_path / "pf.tif"),
                    **settings)
    masked = classify(ortho_path, model, str(tmp_path / "masked.tif"), probabilities=str(tmp_path / "pm.tif"),
                      mask=Aoi([wkt], crs), **settings)
    inside = _rasterised(wkt, crs, ortho_path)
    classes, everywhere = read_all(masked.output)[0][0], read_all(full.output)[0][0]
    np.testing.assert_array_equal(classes != 255, inside & (everywhere != 255))  # the polygon, pixel by pixel
    np.testing.assert_array_equal(classes[inside], everywhere[inside])  # as without a mask
    probabilities = read_all(str(tmp_path / "pm.tif"))[0]
    np.testing.assert_array_equal(probabilities[:, inside], read_all(str(tmp_path / "pf.tif"))[0][:, inside])
    assert np.isnan(probabilities[:, ~inside]).all()
    assert 0 < masked.tiles < full.tiles  # the tiles that reach no pixel inside were not computed
    assert sum(a.pixels for a in masked.areas) == int((inside & (everywhere != 255)).sum())
    two = classify(ortho_path, model, str(tmp_path / "two.tif"), mask=Aoi([wkt], crs), workers=2, block_size=256,
                   **settings)  # the mask travels to the workers with each block
    np.testing.assert_array_equal(read_all(two.output)[0][0], classes)


def test_a_mask_with_a_per_pixel_model_and_a_mask_off_the_raster(tmp_path, s2_path):
    wkt, crs = _triangle_in_wgs84(s2_path, [(20, 10), (300, 40), (60, 190)])
    full = classify(s2_path, RULES, str(tmp_path / "full.tif"), scale=1e-4)
    masked = classify(s2_path, RULES, str(tmp_path / "masked.tif"), scale=1e-4, mask=Aoi([wkt], crs), block_size=64)
    inside = _rasterised(wkt, crs, s2_path)
    classes, everywhere = read_all(masked.output)[0][0], read_all(full.output)[0][0]
    np.testing.assert_array_equal(classes[inside], everywhere[inside])
    assert (classes[~inside] == 255).all() and inside.sum() > 10_000
    far, _ = _triangle_in_wgs84(s2_path, [(5000, 5000), (5100, 5000), (5000, 5100)])
    before = files_under(str(tmp_path))
    with pytest.raises(PatchworkError, match="MASK: the polygons do not overlap the raster"):
        classify(s2_path, RULES, str(tmp_path / "nothing.tif"), scale=1e-4, mask=Aoi([far], crs, "MASK"))
    assert files_under(str(tmp_path)) == before
