"""Every parameter that multiplies work, disk or memory is bounded and estimated before anything is written."""
from __future__ import annotations

import os

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import PatchworkError, RandomSampler, augment_chips, budget, classify, sample_chips
from tests.cli.test_qgis_process import qgis_env, qgis_process  # noqa: F401 - fixture
from tests.conftest import REPO, files_under
from tests.hostile import small_disk  # noqa: F401 - fixture
from tests.onnx_models import conv_model

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


def test_qgis_process_refuses_out_of_range_values_before_running(tmp_path, naip_path, s2_path, qgis_env):  # noqa: F811
    cases = [
        ("patchwork:samplechips", [f"INPUT={naip_path}", "SAMPLER=3", "COUNT=1000000000", "CHIP_SIZE=64"]),
        ("patchwork:samplechips", [f"INPUT={naip_path}", "CHIP_SIZE=1000000"]),
        ("patchwork:samplechips", [f"INPUT={naip_path}", "SEED=-1"]),
        ("patchwork:classify", [f"INPUT={s2_path}", f"MODEL={RULES}", "TILE_SIZE=1000000"]),
        ("patchwork:classify", [f"INPUT={s2_path}", f"MODEL={RULES}", "BATCH_SIZE=1000000"]),
    ]
    for algorithm, args in cases:
        out = tmp_path / "out"
        done = qgis_process(qgis_env, "run", algorithm, "--", *args, f"OUTPUT_DIR={out}",
                            f"OUTPUT={out}.tif" if "classify" in algorithm else f"OUTPUT={out}.gpkg")
        assert done.returncode != 0, (algorithm, args, done.stdout)
        assert "Incorrect parameter value" in done.stdout + done.stderr, done.stdout + done.stderr
        assert files_under(str(tmp_path)) == []


def test_the_core_refuses_the_same_values(tmp_path, naip_path, s2_path):
    with pytest.raises(PatchworkError, match="COUNT must be between 1 and 1,000,000"):
        RandomSampler(10**9)
    with pytest.raises(PatchworkError, match="SEED must be between 0"):
        RandomSampler(5, seed=-1)
    with pytest.raises(PatchworkError, match="CHIP_SIZE must be between 1 and 8,192"):
        sample_chips(naip_path, RandomSampler(5), 10**6, str(tmp_path / "c"))
    with pytest.raises(PatchworkError, match="TILE_SIZE must be between 1 and 8,192"):
        classify(s2_path, RULES, str(tmp_path / "x.tif"), tile_size=10**6)
    with pytest.raises(PatchworkError, match="BATCH_SIZE must be between 1 and 1,024"):
        classify(s2_path, RULES, str(tmp_path / "x.tif"), batch_size=10**6)
    chips = sample_chips(naip_path, RandomSampler(2), 64, str(tmp_path / "chips"))
    with pytest.raises(PatchworkError, match="COPIES must be between 1 and 1,000"):
        augment_chips(chips.index_path, "geometric", str(tmp_path / "aug"), copies=10**6)
    with pytest.raises(PatchworkError, match="SEED must be between 0"):
        augment_chips(chips.index_path, "geometric", str(tmp_path / "aug"), seed=-3)
    assert not (tmp_path / "aug").exists() and not (tmp_path / "x.tif").exists()


def test_a_tile_larger_than_the_raster_changes_nothing_for_a_per_pixel_model(tmp_path, s2_path):
    small = classify(s2_path, RULES, str(tmp_path / "a.tif"), scale=1e-4, tile_size=64)
    huge = classify(s2_path, RULES, str(tmp_path / "b.tif"), scale=1e-4, tile_size=5000)
    assert huge.tiles == small.tiles == 0 and huge.blocks == small.blocks == 1  # predicted block by block
    np.testing.assert_array_equal(gdal.Open(str(tmp_path / "a.tif")).ReadAsArray(),
                                  gdal.Open(str(tmp_path / "b.tif")).ReadAsArray())


def test_memory_estimate_refuses_before_any_write(tmp_path, s2_path, monkeypatch):
    monkeypatch.setattr(budget, "available_memory_bytes", lambda: 50 * 1024 * 1024)  # a 50 MB machine
    (tmp_path / "model").mkdir()
    model = conv_model(str(tmp_path / "model" / "conv.onnx"), np.ones((3, 4, 1, 1), np.float32), softmax=True)
    with pytest.raises(PatchworkError, match="TILE_SIZE: 1 block of about 2048 px with 64 tiles of 2048 px on .* "
                                             "would need about .* of memory.*Lower TILE_SIZE, BATCH_SIZE or WORKERS"):
        classify(s2_path, model, str(tmp_path / "x.tif"), tile_size=2048, batch_size=64,
                 probabilities=str(tmp_path / "p.tif"), aggregation="softvote")
    assert files_under(str(tmp_path)) == ["model/conv.onnx"]


def test_disk_estimate_refuses_before_any_write(small_disk, naip_path):  # noqa: F811
    with pytest.raises(PatchworkError, match=r"OUTPUT_DIR: 2,000 chips of 16\.0 KB would need up to .* free.*Lower"):
        sample_chips(naip_path, RandomSampler(2000), 64, str(small_disk / "chips"))
    assert os.listdir(small_disk) == []


def test_a_line_far_longer_than_the_raster_costs_no_memory_and_keeps_the_points_on_it(naip_path):
    """#29 item 10: a 50,000 km line took 4.8 GB while the parameters were checked."""
    import tracemalloc

    from osgeo import ogr

    from patchwork.core import RasterSource
    from patchwork.core.data.sampling import points_along_lines

    with RasterSource(naip_path) as src:
        gt, size = src.geotransform, (src.height, src.width)
    y = gt[3] + 100.5 * gt[5]
    line = ogr.Geometry(ogr.wkbLineString)
    line.AddPoint_2D(gt[0] - 25_000_000, y)  # 50,000 km, crossing the raster once
    line.AddPoint_2D(gt[0] + 25_000_000, y)
    tracemalloc.start()  # numpy's arrays are counted too
    try:
        points = points_along_lines([line.ExportToWkt()], 10, gt, size)
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert peak_mb < 100, peak_mb  # 5 million positions along the line, a chunk at a time
    assert 0 < len(points) <= size[1] // 10 + 1
    assert all(0 <= c < size[1] and r == pytest.approx(100.5) for r, c in points)
    with pytest.raises(PatchworkError, match="SPACING: the lines give more than 1,000,000"):
        points_along_lines([line.ExportToWkt()], 10, gt)  # without the raster's size: every point counts


def test_a_count_that_would_lay_chips_on_every_window_of_a_small_raster_is_refused(tmp_path, naip_path):
    """#29 item 10: COUNT ≤ 10⁶ let a random sampler write every window of a small raster (5.9 GB in 12 min)."""
    small = str(tmp_path / "small.tif")
    gdal.Translate(small, naip_path, srcWin=[0, 0, 300, 200])
    with pytest.raises(PatchworkError,
                       match=r"COUNT: 1,000,000 asks for 52,725 chips of 16 px .* each pixel 225 times.*at most 3,750"):
        sample_chips(small, RandomSampler(1_000_000), 16, str(tmp_path / "chips"))
    assert not os.path.exists(tmp_path / "chips")
    assert sample_chips(small, RandomSampler(3_750, seed=1), 16, str(tmp_path / "chips")).chip_count == 3_750


def test_settings_that_would_train_for_days_are_refused():
    from patchwork.core.tasks.train_classifier import make_estimator

    with pytest.raises(PatchworkError, match="n_estimators 100,000,000 is more than Patchwork trains"):
        make_estimator("random_forest", {"n_estimators": 10**8}, 0)
    assert make_estimator("random_forest", {"n_estimators": 500}, 0).n_estimators == 500


def test_a_resolution_that_would_make_a_raster_of_10_to_the_11_pixels_is_refused(tmp_path, s2_path):
    pixel = gdal.Open(s2_path).GetGeoTransform()[1]
    rules = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")
    with pytest.raises(PatchworkError, match=r"RESOLUTION: .* px \(.*e\+1[0-9] px\) on the model's grid.*coarser"):
        classify(s2_path, rules, str(tmp_path / "x.tif"), scale=1e-4, resolution=pixel / 500)
    assert files_under(str(tmp_path)) == []


def test_one_big_tile_on_a_one_tile_raster_is_not_refused_for_memory(tmp_path, s2_path):
    """A 5000 px tile on a raster smaller than it was refused as needing tens of GB: batches of tiles that do not
    exist were counted."""
    model = conv_model(str(tmp_path / "conv.onnx"), np.ones((3, 4, 1, 1), np.float32), softmax=True)
    result = classify(s2_path, model, str(tmp_path / "x.tif"), tile_size=5000, batch_size=64)
    assert result.tiles == 1
