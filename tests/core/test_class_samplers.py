"""Balanced and stratified sampling: chips chosen by the label class at their centre, the counts asked for."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import PatchworkError, RegularSampler, classify, read_index, sample_chips
from patchwork.core.data.sampling import BalancedSampler, StratifiedSampler
from tests.conftest import REPO

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


@pytest.fixture(scope="module")
def labels(tmp_path_factory, s2_path):
    return classify(s2_path, RULES, str(tmp_path_factory.mktemp("labels") / "labels.tif"), scale=1e-4).output


def centre_classes(index: str, chip: int) -> list[int]:
    return [int(gdal.Open(r["label_path"]).ReadAsArray()[chip // 2, chip // 2]) for r in read_index(index)]


def test_balanced_gives_count_chips_per_class_or_all_a_class_has(tmp_path, s2_path, labels):
    pixels = np.bincount(gdal.Open(labels).ReadAsArray()[8:-7, 8:-7].ravel())  # where a 16 px chip can centre
    result = sample_chips(s2_path, BalancedSampler(count=40, seed=3), 16, str(tmp_path / "chips"), labels=labels,
                          max_nodata=1.0)
    classes = centre_classes(result.index_path, 16)
    assert {c: classes.count(c) for c in set(classes)} == {c: min(40, int(pixels[c])) for c in range(3) if pixels[c]}
    windows = {(r["row_off"], r["col_off"]) for r in read_index(result.index_path)}
    assert len(windows) == len(classes)  # without replacement
    again = sample_chips(s2_path, BalancedSampler(count=40, seed=3), 16, str(tmp_path / "again"), labels=labels,
                         max_nodata=1.0)
    assert [(r["row_off"], r["col_off"]) for r in read_index(again.index_path)] == \
        [(r["row_off"], r["col_off"]) for r in read_index(result.index_path)]  # seeded


def test_a_class_with_too_few_centres_gives_what_it_has_and_says_so(tmp_path, s2_path, labels):
    from patchwork.core import write_geotiff

    source = gdal.Open(labels)
    rare = source.ReadAsArray()
    rare[rare == 0] = 1
    rare[100:106, 150:156] = 0  # 36 pixels of class 0, all where a 16 px chip can centre
    path = write_geotiff(str(tmp_path / "rare.tif"), rare, source.GetGeoTransform(), source.GetProjection(), 255)
    said = []

    class Log:
        def set_progress(self, p):
            pass

        def is_cancelled(self):
            return False

        def info(self, message):
            said.append(message)

    result = sample_chips(s2_path, BalancedSampler(count=50), 16, str(tmp_path / "chips"), labels=path,
                          max_nodata=1.0, feedback=Log())
    classes = centre_classes(result.index_path, 16)
    assert {c: classes.count(c) for c in set(classes)} == {0: 36, 1: 50, 2: 50}
    assert any("class 0: 36 of the 50 chips asked for" in m for m in said), said
    manifest = json.load(open(os.path.join(result.out_dir, "dataset.json")))
    assert manifest["chips_per_class"] == {"0": 36, "1": 50, "2": 50}  # the run reports chips per class


def test_stratified_splits_count_by_the_classes_shares_or_the_proportions_given(tmp_path, s2_path, labels):
    pixels = np.bincount(gdal.Open(labels).ReadAsArray()[8:-7, 8:-7].ravel(), minlength=3).astype(float)
    result = sample_chips(s2_path, StratifiedSampler(count=60, seed=1), 16, str(tmp_path / "shares"), labels=labels,
                          max_nodata=1.0)
    classes = centre_classes(result.index_path, 16)
    expected = StratifiedSampler(count=60).wanted({c: int(pixels[c]) for c in range(3) if pixels[c]})
    assert {c: classes.count(c) for c in set(classes)} == {c: n for c, n in expected.items() if n}
    assert sum(expected.values()) == 60 and len(classes) == 60
    assert all(abs(n - 60 * pixels[c] / pixels.sum()) < 1 for c, n in expected.items())
    given = sample_chips(s2_path, StratifiedSampler(count=30, proportions={0: 1, 1: 1, 2: 1}, seed=1), 16,
                         str(tmp_path / "given"), labels=labels, max_nodata=1.0)
    classes = centre_classes(given.index_path, 16)
    assert {c: classes.count(c) for c in set(classes)} == {0: 10, 1: 10, 2: 10}


def test_class_samplers_need_labels(tmp_path, s2_path):
    with pytest.raises(PatchworkError, match="chooses chips by their label class: give LABELS"):
        sample_chips(s2_path, BalancedSampler(count=5), 16, str(tmp_path / "chips"))
    assert not os.path.exists(tmp_path / "chips")
    assert RegularSampler(step=8)  # (the others do not)
