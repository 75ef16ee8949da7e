"""Compare matches classes by name (#27 item 6): forest (1 water, 2 bare, 3 vegetation) against rules (0 water,
1 bare, 2 vegetation) read 64% agreement with all water "differ"; maps a few metres apart were refused naming
temporary files."""
from __future__ import annotations

import os

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import PatchworkError, classify, compare_classifications, write_geotiff
from patchwork.core.tasks.compare import match_by_name
from tests.conftest import REPO

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


@pytest.fixture
def rules_map(tmp_path, s2_path):
    return classify(s2_path, RULES, str(tmp_path / "rules.tif"), scale=1e-4).output


def renumbered(rules_map: str, path: str, offset: int, names: list[str], shift_pixels: float = 0.0) -> str:
    """The same map with each class value + `offset`, named `names` (by new value), optionally moved."""
    ds = gdal.Open(rules_map)
    data = ds.ReadAsArray()
    gt = list(ds.GetGeoTransform())
    gt[0] += shift_pixels * gt[1]
    out = np.where(data == 255, 255, data + offset).astype(np.uint8)
    values = list(range(offset, offset + len(names)))
    write_geotiff(path, out, tuple(gt), ds.GetProjection(), nodata=255,
                  palette=(values, names, ["#0000ff", "#d8b365", "#1a9641"][: len(names)]))
    return path


def test_classes_are_matched_by_name_not_number(tmp_path, rules_map):
    forest = renumbered(rules_map, str(tmp_path / "forest.tif"), 1, ["water", "bare land / scrub", "vegetation"])
    log = []
    feedback = type("Log", (), {"set_progress": lambda s, p: None, "is_cancelled": lambda s: False,
                                "info": lambda s, m: log.append(m)})()
    result = compare_classifications(rules_map, forest, report=str(tmp_path / "r.html"), feedback=feedback)
    assert result.agreement == 1.0 and result.classes == [0, 1, 2]
    assert [result.names[c] for c in result.classes] == ["water", "bare land / scrub", "vegetation"]
    assert any(m.startswith("Classes matched by name ('water' 1→0") for m in log), log
    assert "Classes matched by name" in (tmp_path / "r.html").read_text()


def test_without_names_or_without_a_common_name_numbers_are_compared_and_the_log_says_so():
    assert match_by_name({0: "water"}, {0: "class 0", 1: "class 1"}) == ({}, "Classes matched by number (a map "
                                                                              "does not name its classes).")
    mapping, how = match_by_name({0: "water", 1: "bare"}, {1: "urban", 2: "forest"})
    assert mapping == {} and how.startswith("Warning: no class name")
    mapping, how = match_by_name({0: "water", 1: "bare"}, {1: "Water", 2: "urban"})
    assert mapping == {1: 0, 2: 3} and "Not in the reference: urban" in how  # urban never agrees with anything


def test_a_map_a_few_metres_apart_is_refused_by_name_or_resampled(tmp_path, rules_map):
    moved = renumbered(rules_map, str(tmp_path / "OUTPUT.tif"), 0, ["water", "bare land / scrub", "vegetation"],
                       shift_pixels=0.6)
    with pytest.raises(PatchworkError, match="'classes 2017' is not on the grid of 'classes 2010': geotransform.*"
                                             "RESAMPLE=true"):
        compare_classifications(rules_map, moved, names=("classes 2010", "classes 2017"))
    result = compare_classifications(rules_map, moved, resample=True, agreement=str(tmp_path / "agree.tif"))
    assert 0.6 < result.agreement < 1.0  # compared pixel by pixel on the reference's grid
    agree = gdal.Open(str(tmp_path / "agree.tif"))
    assert agree.GetGeoTransform() == gdal.Open(rules_map).GetGeoTransform()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]
