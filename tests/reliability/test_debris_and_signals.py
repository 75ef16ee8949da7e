"""Killed runs leave debris that the next run removes; SIGINT and SIGTERM cancel a run like the Cancel button."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from osgeo import gdal

from patchwork.core import RandomSampler, classify, sample_chips
from patchwork.core.io.partials import owned_name
from tests.cli.test_qgis_process import QGIS_PROCESS, qgis_env, qgis_process  # noqa: F401 - fixture
from tests.conftest import REPO, files_under
from tests.hostile import start_qgis_process, wait_for_entry

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


@pytest.fixture(scope="module")
def big_scene(tmp_path_factory, s2_path):
    """The real Sentinel-2 excerpt mosaicked 12 x 12 (a VRT): long enough to kill a run half way."""
    folder = tmp_path_factory.mktemp("big")
    ds = gdal.Open(s2_path)
    gt, w, h = ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize
    parts = []
    for i in range(12):
        for j in range(12):
            part = str(folder / f"part_{i}_{j}.vrt")
            gdal.Translate(part, ds, format="VRT", outputBounds=None,
                           options=["-a_ullr", str(gt[0] + j * w * gt[1]), str(gt[3] + i * h * gt[5]),
                                    str(gt[0] + (j + 1) * w * gt[1]), str(gt[3] + (i + 1) * h * gt[5])])
            parts.append(part)
    path = str(folder / "big.vrt")
    gdal.BuildVRT(path, parts)
    return path


def run_and_signal(env, folder, prefix, sig, *args):
    process = start_qgis_process(env, *args)
    wait_for_entry(str(folder), prefix, process)
    time.sleep(0.5)
    process.send_signal(sig)
    sent = time.monotonic()
    code = process.wait(timeout=30)
    return code, time.monotonic() - sent, process.stdout.read()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_cancels_qgis_process_within_two_seconds_and_leaves_nothing(tmp_path, big_scene, qgis_env, sig):  # noqa: F811
    earlier = tmp_path / "classes.tif"
    earlier.write_bytes(b"earlier result")
    code, seconds, log = run_and_signal(qgis_env, tmp_path, ".classes.partial-", sig, "patchwork:classify",
                                        f"INPUT={big_scene}", f"MODEL={RULES}", "TILE_SIZE=128", "SCALE=0.0001",
                                        f"OUTPUT={earlier}")
    assert code != 0 and seconds < 2.0, (code, seconds, log)
    assert "Cancelled: nothing was written" in log
    assert files_under(str(tmp_path)) == ["classes.tif"] and earlier.read_bytes() == b"earlier result"


def test_kill_9_then_rerun_removes_the_debris(tmp_path, big_scene, naip_path, qgis_env):  # noqa: F811
    out = tmp_path / "classes.tif"
    code, _, _ = run_and_signal(qgis_env, tmp_path, ".classes.partial-", signal.SIGKILL, "patchwork:classify",
                                f"INPUT={big_scene}", f"MODEL={RULES}", "TILE_SIZE=128", "SCALE=0.0001",
                                f"OUTPUT={out}")
    assert code == -signal.SIGKILL and [f for f in os.listdir(tmp_path) if f.startswith(".classes.partial-")]
    code, _, _ = run_and_signal(qgis_env, tmp_path, ".chips.partial-", signal.SIGKILL, "patchwork:samplechips",
                                f"INPUT={naip_path}", "SAMPLER=3", "CHIP_SIZE=16", "COUNT=20000",
                                f"OUTPUT_DIR={tmp_path / 'chips'}", f"OUTPUT={tmp_path / 'chips.gpkg'}")
    assert code == -signal.SIGKILL and len(files_under(str(tmp_path))) > 3  # a lock and a staging folder of chips

    again = qgis_process(qgis_env, "run", "patchwork:classify", "--", f"INPUT={naip_path}", f"MODEL={RULES}",
                         "BANDS=3,2,1,4", f"OUTPUT={out}")
    assert again.returncode == 0 and "left by a run that died" in again.stdout
    chips = qgis_process(qgis_env, "run", "patchwork:samplechips", "--", f"INPUT={naip_path}", "SAMPLER=3",
                         "CHIP_SIZE=16", "COUNT=5", f"OUTPUT_DIR={tmp_path / 'chips'}",
                         f"OUTPUT={tmp_path / 'chips.gpkg'}")
    assert chips.returncode == 0 and "taking it over" in chips.stdout and "Removed '.chips.partial-" in chips.stdout
    hidden = [f for f in files_under(str(tmp_path)) if os.path.basename(f).startswith(".")]
    assert hidden == [] and len(os.listdir(tmp_path / "chips" / "images")) == 5


def test_a_live_runs_partial_files_are_left_alone(tmp_path, s2_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = owned_name(str(tmp_path / "classes.tif")).replace(f"-{os.getpid()}-", f"-{other.pid}-")
        open(live, "wb").write(b"another run is writing this")
        classify(s2_path, RULES, str(tmp_path / "classes.tif"), scale=1e-4)
        assert os.path.exists(live)
    finally:
        other.kill()
        other.wait()
    classify(s2_path, RULES, str(tmp_path / "classes.tif"), scale=1e-4)  # its owner is gone now
    assert not os.path.exists(live)


def test_a_dataset_moved_aside_by_a_run_that_died_is_put_back(tmp_path, naip_path):
    out = tmp_path / "chips"
    sample_chips(naip_path, RandomSampler(3), 64, str(out))
    before = files_under(str(out))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    aside = owned_name(str(out), "replaced").replace(f"-{os.getpid()}-", f"-{dead.pid}-")
    os.rename(out, aside)  # where a replacing run that died between its two renames leaves the old dataset
    sample_chips(naip_path, RandomSampler(3), 64, str(out), overwrite=True)
    assert not os.path.exists(aside) and files_under(str(out)) == before


def test_a_killed_resampled_run_leaves_nothing_the_rerun_does_not_remove(tmp_path, big_scene, s2_path,
                                                                          qgis_env):  # noqa: F811
    """#29 item 7: RESOLUTION + OUTPUT_GRID=input writes nested temporaries (the model grid's maps, a VRT)."""
    out = tmp_path / "classes.tif"
    pixel = gdal.Open(s2_path).GetGeoTransform()[1]
    common = [f"MODEL={RULES}", "SCALE=0.0001", f"RESOLUTION={2 * pixel}", "OUTPUT_GRID=input",
              f"OUTPUT={out}", f"OUTPUT_PROBABILITIES={tmp_path / 'p.tif'}"]
    code, _, _ = run_and_signal(qgis_env, tmp_path, ".classes.partial-", signal.SIGKILL, "patchwork:classify",
                                f"INPUT={big_scene}", "TILE_SIZE=128", *common)
    assert code == -signal.SIGKILL and [f for f in os.listdir(tmp_path) if f.startswith(".")]
    again = qgis_process(qgis_env, "run", "patchwork:classify", "--", f"INPUT={s2_path}", *common)
    assert again.returncode == 0, again.stdout + again.stderr
    assert [f for f in files_under(str(tmp_path)) if os.path.basename(f).startswith(".")] == []


def test_a_killed_detect_run_leaves_nothing_the_rerun_does_not_remove(tmp_path, ortho_path, qgis_env):  # noqa: F811
    from tests.onnx_models import cell_detector

    model = cell_detector(str(tmp_path / "cells.onnx"), "v8")
    big = str(tmp_path / "big.vrt")
    gdal.BuildVRT(big, [ortho_path] * 1)
    out = tmp_path / "boxes.gpkg"
    common = [f"MODEL={model}", "BANDS=1,2,3", f"SCALE={1 / 255}", "TILE_SIZE=64", "OVERLAP=0", f"OUTPUT={out}"]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = owned_name(str(out)).replace(f"-{os.getpid()}-", f"-{dead.pid}-")
    open(left, "wb").write(b"half a GeoPackage")  # what a killed detect run leaves
    done = qgis_process(qgis_env, "run", "patchwork:detect", "--", f"INPUT={ortho_path}", *common)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not os.path.exists(left) and "left by a run that died" in done.stdout
