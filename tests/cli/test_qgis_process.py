"""qgis_process end to end: the plugin enabled in a fresh profile, runs on the real rasters."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from osgeo import gdal
from scipy.spatial import cKDTree

from patchwork.core import read_index
from tests.conftest import REPO, files_under, read_all

QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"


@pytest.fixture(scope="module")
def qgis_env(tmp_path_factory):
    """A clean QGIS profile with Patchwork enabled, found through QGIS_PLUGINPATH."""
    profile = tmp_path_factory.mktemp("qgis-profile")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(profile),
               QGIS_PLUGINPATH=os.path.join(REPO, ".build", "pkgroot"))
    # pytest-qgis points these at its own test profile; qgis_process gets a fresh one instead.
    for inherited in ("QGIS_OPTS", "QGIS_OPTIONS_PATH"):
        env.pop(inherited, None)
    enabled = subprocess.run([QGIS_PROCESS, "plugins", "enable", "patchwork"], env=env, capture_output=True,
                             text=True, timeout=300)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    return env


def qgis_process(env, *args, timeout=300):
    return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_provider_is_listed(qgis_env):
    listing = qgis_process(qgis_env, "list")
    assert listing.returncode == 0, listing.stderr
    assert "patchwork:samplechips" in listing.stdout


def test_help_shows_parameters(qgis_env):
    helped = qgis_process(qgis_env, "help", "patchwork:samplechips")
    assert helped.returncode == 0, helped.stderr
    for name in ("INPUT", "SAMPLER", "BOUNDARY", "MAX_NODATA", "OUTPUT_DIR", "CHIP_COUNT"):
        assert name in helped.stdout


def test_poisson_run_on_sentinel2_with_json_output(qgis_env, tmp_path, s2_path):
    out_dir, index = str(tmp_path / "chips"), str(tmp_path / "chips.gpkg")
    done = qgis_process(qgis_env, "run", "patchwork:samplechips", "--json", "--", f"INPUT={s2_path}", "SAMPLER=2",
                        "CHIP_SIZE=32", "MIN_DISTANCE=40", "COUNT=0", "SEED=5", "BOUNDARY=0", "MAX_NODATA=0",
                        f"OUTPUT_DIR={out_dir}", f"OUTPUT={index}")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout)["results"]
    assert results["OUTPUT"] == index and results["OUTPUT_DIR"] == out_dir
    records = read_index(index)
    assert int(results["CHIP_COUNT"]) == len(records) > 5
    source, gt, _, _ = read_all(s2_path)
    anchors = np.array([(r["row_off"], r["col_off"]) for r in records])
    nearest, _ = cKDTree(anchors).query(anchors, k=2)
    assert nearest[:, 1].min() >= 40
    for rec in records:
        chip = gdal.Open(rec["image_path"])
        r, c = rec["row_off"], rec["col_off"]
        np.testing.assert_array_equal(chip.ReadAsArray(), source[:, r : r + 32, c : c + 32])
        assert chip.GetGeoTransform() == pytest.approx((gt[0] + c * gt[1], gt[1], 0, gt[3] + r * gt[5], 0, gt[5]))


def test_cli_error_is_clear_and_writes_nothing(qgis_env, tmp_path, s2_path):
    done = qgis_process(qgis_env, "run", "patchwork:samplechips", "--", f"INPUT={s2_path}", "CHIP_SIZE=300",
                        "BOUNDARY=2", f"OUTPUT_DIR={tmp_path / 'c'}", f"OUTPUT={tmp_path / 'i.gpkg'}")
    assert done.returncode != 0
    assert "larger than the raster" in done.stdout + done.stderr
    assert files_under(str(tmp_path)) == []
