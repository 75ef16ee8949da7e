"""Chips at points and along lines: the chip's centre pixel holds its point; edges follow BOUNDARY."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from patchwork.core import RasterSource, read_index, sample_chips
from patchwork.core.data.sampling import PointSampler, points_along_lines


def to_wgs84(src: RasterSource):
    utm, wgs84 = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromWkt(src.crs_wkt)
    wgs84.ImportFromEPSG(4326)
    for srs in (utm, wgs84):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return osr.CoordinateTransformation(utm, wgs84), osr.CoordinateTransformation(wgs84, utm)


def test_every_chip_centre_pixel_holds_its_point_given_in_wgs84(tmp_path, naip_path):
    with RasterSource(naip_path) as src:
        gt, height, width = src.geotransform, src.height, src.width
        forward, back = to_wgs84(src)
    rng = np.random.default_rng(11)
    pixels = np.stack([rng.uniform(40, height - 40, 25), rng.uniform(40, width - 40, 25)], axis=1)
    lonlat = [forward.TransformPoint(gt[0] + c * gt[1], gt[3] + r * gt[5])[:2] for r, c in pixels]
    xy = [back.TransformPoint(lon, lat)[:2] for lon, lat in lonlat]  # the points as a user's GPS gives them
    result = sample_chips(naip_path, PointSampler.from_map_points(xy, gt), 33, str(tmp_path / "chips"),
                          max_nodata=1.0)
    records = read_index(result.index_path)
    assert len(records) == 25
    for record, (x, y) in zip(records, xy):
        chip = gdal.Open(record["image_path"])
        cgt = chip.GetGeoTransform()
        centre_col, centre_row = (x - cgt[0]) / cgt[1], (y - cgt[3]) / cgt[5]
        assert (int(np.floor(centre_row)), int(np.floor(centre_col))) == (33 // 2, 33 // 2)


@pytest.mark.parametrize("boundary, expected", [("shift", [(0, 0), (167, 267)]), ("pad", [(-16, -16), (183, 283)]),
                                                ("drop", [])])
def test_points_near_the_edge_follow_boundary_and_points_outside_are_reported(boundary, expected):
    sampler = PointSampler([[0.5, 0.2], [199.9, 299.5], [-3, 5], [10, 400]])
    anchors = np.concatenate(list(sampler.candidates(200, 300, 33, boundary)) or [np.zeros((0, 2), int)])
    assert [tuple(a) for a in anchors.tolist()] == expected
    assert sampler.notes(200, 300) == ["2 of 4 points lie outside the raster: no chip for them."]


def test_chip_centres_lie_on_the_lines_every_spacing(tmp_path, naip_path):
    with RasterSource(naip_path) as src:
        gt = src.geotransform
    x0, y0 = gt[0] + 100 * gt[1], gt[3] + 120 * gt[5]
    line = ogr.Geometry(ogr.wkbLineString)  # an L: 400 px east, then 300 px south
    for dx, dy in ((0, 0), (400 * gt[1], 0), (400 * gt[1], 300 * gt[5])):
        line.AddPoint_2D(x0 + dx, y0 + dy)
    points = points_along_lines([line.ExportToWkt()], 50, gt)
    assert len(points) == 15  # 0, 50, …, 700 px along a 700 px line
    for i, (row, col) in enumerate(points):
        along = 50 * i
        expected = (120, 100 + along) if along <= 400 else (120 + along - 400, 500)
        assert (row, col) == pytest.approx(expected, abs=1e-6)
    result = sample_chips(naip_path, PointSampler(points), 32, str(tmp_path / "chips"), max_nodata=1.0)
    for record, (row, col) in zip(read_index(result.index_path), points):
        assert (record["row_off"] + 16, record["col_off"] + 16) == (int(np.floor(row)), int(np.floor(col)))
