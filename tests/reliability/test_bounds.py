"""Every parameter that multiplies work, disk or memory is bounded and estimated before anything is written."""
from __future__ import annotations

import os

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import RandomSampler, budget, sample_chips
from patchwork.core.augmented import augment_chips
from patchwork.core.errors import PatchworkError
from patchwork.core.inference import classify
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
    with pytest.raises(PatchworkError, match=r"OUTPUT_DIR: 5,000 chips of 16\.0 KB would need up to .* free.*Lower"):
        sample_chips(naip_path, RandomSampler(5000), 64, str(small_disk / "chips"))
    assert os.listdir(small_disk) == []
