"""Patchwork shares GDAL with QGIS and its plugins: it never switches GDAL's exceptions on or off, and it works
the same, with the same messages, whichever setting the process has."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from osgeo import gdal

from patchwork.core.io.gdal_errors import checked
from tests.conftest import REPO

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")

RUN = """
import hashlib, json, os, sys
from osgeo import gdal, ogr, osr
if sys.argv[1] == "on":
    for module in (gdal, ogr, osr):
        module.UseExceptions()
def state():
    return [m.GetUseExceptions() for m in (gdal, ogr, osr)]
before = state()

from patchwork.core import Aoi, PatchworkError, RegularSampler, RasterSource, read_index, sample_chips
from patchwork.core import classify

out, raster, rules = sys.argv[2], sys.argv[3], sys.argv[4]
imported = state()
with RasterSource(raster) as src:
    gt, crs = src.geotransform, src.crs_wkt
x0, y0, x1, y1 = gt[0] + 20 * gt[1], gt[3] + 20 * gt[5], gt[0] + 200 * gt[1], gt[3] + 150 * gt[5]
aoi = Aoi([f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"], crs)
chips = sample_chips(raster, RegularSampler(32), 32, os.path.join(out, "chips"), aoi=aoi, max_nodata=0.0)
classify(raster, rules, os.path.join(out, "classes.tif"))
errors = []
for bad in (os.path.join(out, "classes.tif.missing"), rules):  # no file; not a raster
    try:
        classify(bad, rules, os.path.join(out, "never.tif"))
    except PatchworkError as exc:
        errors.append(str(exc))
try:
    read_index(rules)
except PatchworkError as exc:
    errors.append(str(exc))
digest = hashlib.sha256(open(os.path.join(out, "classes.tif"), "rb").read()).hexdigest()
print(json.dumps({"out": out, "before": before, "imported": imported, "after": state(), "chips": chips.chip_count,
                  "rows": len(read_index(chips.index_path)), "digest": digest, "errors": errors}))
"""


def run(mode: str, out, raster: str) -> dict:
    done = subprocess.run([sys.executable, "-c", RUN, mode, str(out), raster, RULES], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory, s2_path):
    return {mode: run(mode, tmp_path_factory.mktemp(mode), s2_path) for mode in ("off", "on")}


@pytest.mark.parametrize("mode, expected", [("off", [0, 0, 0]), ("on", [1, 1, 1])])
def test_gdal_exception_setting_is_never_changed(runs, mode, expected):
    result = runs[mode]
    assert result["before"] == result["imported"] == result["after"] == expected


def test_same_outputs_and_messages_whichever_the_setting(runs):
    off, on = runs["off"], runs["on"]
    assert off["chips"] == on["chips"] == off["rows"] > 0
    assert off["digest"] == on["digest"]
    messages = {mode: [e.replace(result["out"], "<out>") for e in result["errors"]] for mode, result in runs.items()}
    assert messages["off"] == messages["on"]
    missing, not_raster, not_index = messages["off"]
    assert "no raster at" in missing and "GDAL cannot open" in not_raster and "chip index" in not_index


def test_a_failed_call_does_not_keep_the_dataset_alive_in_its_traceback():
    """A writer closes its dataset by dropping it; a traceback that still held it would close it later, at any
    moment the garbage collector picks (once, here, after its temporary file was removed: a crash)."""
    dataset = gdal.GetDriverByName("MEM").Create("", 2, 2)
    before = sys.getrefcount(dataset)
    with pytest.raises(RuntimeError, match="out of range") as excinfo:
        checked(dataset.ReadAsArray, 0, 0, 5, 5)  # more than the raster has
    assert excinfo.value.__traceback__ is not None and sys.getrefcount(dataset) == before
