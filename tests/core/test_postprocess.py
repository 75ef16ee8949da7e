"""Class-map post-processing on real data: small segments removed as GDAL's sieve does, polygons that rasterise
back to the map, and areas per class in hectares (projected and geographic grids)."""
from __future__ import annotations

import csv
import os
import shutil

import numpy as np
import pytest
from osgeo import gdal, ogr

from patchwork.core import PatchworkError, classify
from patchwork.core.engine.postprocess import class_areas
from tests.conftest import REPO, files_under, read_all
from tests.onnx_models import conv_model

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


def _sieved_copy(path: str, out: str, threshold: int) -> np.ndarray:
    shutil.copy(path, out)
    ds = gdal.Open(out, gdal.GA_Update)
    band = ds.GetRasterBand(1)
    gdal.SieveFilter(band, band.GetMaskBand(), band, threshold, 8)
    ds = band = None
    return read_all(out)[0][0]


def _rasterised(vector: str, like: str) -> np.ndarray:
    ds = gdal.Open(like)
    target = gdal.GetDriverByName("MEM").Create("", ds.RasterXSize, ds.RasterYSize, 1, gdal.GDT_UInt16)
    target.SetGeoTransform(ds.GetGeoTransform())
    target.SetProjection(ds.GetProjection())
    target.GetRasterBand(1).Fill(255)
    gdal.Rasterize(target, vector, attribute="class", layers=["classes"])
    return target.ReadAsArray()


def test_small_segments_polygons_and_areas_of_the_rules_map(tmp_path, s2_path):
    plain = classify(s2_path, RULES, str(tmp_path / "plain.tif"), scale=1e-4)
    assert plain.areas is not None and plain.polygons is None
    again = class_areas(plain.output, [0, 1, 2], plain.info.class_names)  # counted as written = read back
    assert [a.pixels for a in plain.areas] == [a.pixels for a in again]
    assert [a.hectares for a in plain.areas] == pytest.approx([a.hectares for a in again], rel=1e-12)
    result = classify(s2_path, RULES, str(tmp_path / "map.tif"), scale=1e-4, min_segment=20,
                      vector_output=str(tmp_path / "map.gpkg"), area_table=str(tmp_path / "areas.csv"))
    sieved, gt, _, nodata = read_all(result.output)
    expected = _sieved_copy(plain.output, str(tmp_path / "gdal-sieved.tif"), 20)
    np.testing.assert_array_equal(sieved[0], expected)  # GDAL's sieve, 8-connected, nodata untouched
    before = read_all(plain.output)[0][0]
    assert (before != sieved[0]).sum() > 0 and ((before == 255) == (sieved[0] == 255)).all()

    np.testing.assert_array_equal(_rasterised(str(tmp_path / "map.gpkg"), result.output), sieved[0])  # polygons
    vector = ogr.Open(str(tmp_path / "map.gpkg"))
    layer = vector.GetLayerByName("classes")
    polygons = [(f.GetField("class"), f.GetField("name"), f.GetField("area_m2")) for f in layer]
    layer = vector = None  # plain values from here: an OGR layer must not outlive its dataset
    assert len(polygons) == result.polygons > 10
    per_class = {}
    for value, name, area in polygons:
        assert name == result.info.class_names[value]
        per_class[value] = per_class.get(value, 0.0) + area
    counts = np.bincount(sieved[0][sieved[0] != nodata].ravel(), minlength=3)

    with open(tmp_path / "areas.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["name"] for row in rows] == result.info.class_names
    for value, (row, count) in enumerate(zip(rows, counts)):
        assert int(row["pixels"]) == count
        # S2 is on EPSG:4326: the table sums pixel areas on the authalic sphere, the polygons are measured on an
        # equal-area projection of the ellipsoid: two ways to the same ground
        assert float(row["hectares"]) * 10_000 == pytest.approx(per_class.get(value, 0.0), rel=5e-3)
    assert sum(float(row["percent"]) for row in rows) == pytest.approx(100.0, abs=1e-3)
    assert gt[1] < 0.001  # degrees


def test_areas_on_a_projected_grid_are_pixels_times_their_size(tmp_path, s2_path):
    geographic = classify(s2_path, RULES, str(tmp_path / "wgs84.tif"), scale=1e-4)
    utm = str(tmp_path / "utm.tif")
    gdal.Warp(utm, geographic.output, dstSRS="EPSG:32632", resampleAlg="near", xRes=10, yRes=10)
    names = geographic.info.class_names
    areas = class_areas(utm, [0, 1, 2], names)
    data, gt, _, nodata = read_all(utm)
    counts = np.bincount(data[0][data[0] != nodata].ravel(), minlength=3)
    assert [a.pixels for a in areas] == counts.tolist()
    assert [a.hectares for a in areas] == pytest.approx((counts * 100 / 10_000).tolist(), rel=1e-12)
    total = sum(a.hectares for a in geographic.areas)
    assert sum(a.hectares for a in areas) == pytest.approx(total, rel=0.01)  # the same ground, other pixels
    from patchwork.core.engine.postprocess import polygonize

    assert polygonize(utm, str(tmp_path / "utm.gpkg"), [0, 1, 2], names) > 10
    vector = ogr.Open(str(tmp_path / "utm.gpkg"))
    polygons = [(f.GetField("class"), f.GetField("area_m2")) for f in vector.GetLayerByName("classes")]
    vector = None
    for value in range(3):
        assert sum(a for v, a in polygons if v == value) == pytest.approx(counts[value] * 100.0, rel=1e-9)
    np.testing.assert_array_equal(_rasterised(str(tmp_path / "utm.gpkg"), utm), np.where(data[0] == nodata, 255,
                                                                                           data[0]))


def test_the_models_seg_small_segment_is_the_default_and_values_are_refused(tmp_path, ortho_path):
    weights = np.zeros((2, 3, 1, 1), np.float32)
    weights[0, 0, 0, 0], weights[1, 1, 0, 0] = 1.0, 1.0  # class = whether red or green is larger, per pixel
    model = conv_model(str(tmp_path / "rg.onnx"), weights, softmax=True,
                       metadata={"model_type": "Segmentor", "class_names": {"0": "red", "1": "green"},
                                 "seg_small_segment": 50})
    window = str(tmp_path / "ortho.tif")
    gdal.Translate(window, ortho_path, srcWin=[0, 0, 400, 300], bandList=[1, 2, 3])
    result = classify(window, model, str(tmp_path / "rg.tif"), scale=1 / 255)
    raw = classify(window, model, str(tmp_path / "raw.tif"), scale=1 / 255, min_segment=0)
    expected = _sieved_copy(raw.output, str(tmp_path / "gdal.tif"), 50)
    np.testing.assert_array_equal(read_all(result.output)[0][0], expected)
    assert (read_all(raw.output)[0][0] != expected).any()  # the metadata's 50 px did remove segments

    regression = conv_model(str(tmp_path / "value.onnx"), weights[:1], metadata={"model_type": "Regressor"})
    before = files_under(str(tmp_path))
    with pytest.raises(PatchworkError, match="predicts values, not classes"):
        classify(window, regression, str(tmp_path / "v.tif"), aggregation="mean",
                 vector_output=str(tmp_path / "v.gpkg"))
    with pytest.raises(PatchworkError, match="give it a .gpkg name"):
        classify(window, model, str(tmp_path / "x.tif"), vector_output=str(tmp_path / "x.shp"))
    with pytest.raises(PatchworkError, match="give it a .csv name"):
        classify(window, model, str(tmp_path / "x.tif"), area_table=str(tmp_path / "x.xlsx"))
    assert files_under(str(tmp_path)) == before  # refused before anything was written


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:32633"])
def test_area_counts_of_a_few_classes_equal_the_general_counts(crs, monkeypatch):
    """The few-classes pass (a comparison per class) gives the general counts: pixels exactly, areas to rounding,
    on a geographic grid (row by row) and a projected one; nodata and values of no class left out."""
    from osgeo import osr

    from patchwork.core.engine import postprocess

    srs = osr.SpatialReference()
    srs.SetFromUserInput(crs)
    gt = (10.0, 0.001, 0, 60.0, 0, -0.001) if crs == "EPSG:4326" else (500000.0, 2.0, 0, 6e6, 0, -2.0)
    rng = np.random.default_rng(3)
    blocks = [(rng.integers(0, 8, (64, 80)).astype(np.uint8), r) for r in (0, 64, 128)]
    for block, _ in blocks:
        block[rng.random(block.shape) < 0.1] = 255  # nodata
    counts = {}
    for few in (32, 0):
        monkeypatch.setattr(postprocess, "FEW_CLASSES", few)
        counter = postprocess.AreaCounter(gt, srs.ExportToWkt(), 192, [0, 1, 2, 3, 4, 5], 255)
        for block, row in blocks:
            counter.add(block, row)
        counts[few] = counter.areas([0, 1, 2, 3, 4, 5], list("abcdef"))
    assert [a.pixels for a in counts[32]] == [a.pixels for a in counts[0]]
    assert [a.pixels for a in counts[32]][0] == sum(int(np.count_nonzero(b == 0)) for b, _ in blocks)
    assert [a.hectares for a in counts[32]] == pytest.approx([a.hectares for a in counts[0]], rel=1e-12)
