"""Samplers, boundary modes and coverage, on the pixel grid alone (no I/O)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from patchwork.core import (
    JitteredSampler,
    PatchworkError,
    PoissonDiskSampler,
    RandomSampler,
    RegularSampler,
    Window,
    coverage,
    from_config,
)
from patchwork.core.geometry import regular_anchors


def anchors(sampler, height, width, chip, boundary="shift", touching=None) -> np.ndarray:
    batches = list(sampler.candidates(height, width, chip, boundary, touching))
    return np.concatenate(batches) if batches else np.empty((0, 2), np.int64)


def windows_of(points: np.ndarray, chip: int) -> list[Window]:
    return [Window(int(r), int(c), chip, chip) for r, c in points]


def brute_coverage(windows: list[Window], height: int, width: int) -> int:
    mask = np.zeros((height, width), bool)
    for w in windows:
        inner = w.clip(height, width)
        if inner:
            mask[inner.row_off : inner.row_end, inner.col_off : inner.col_end] = True
    return int(mask.sum())


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.data())
def test_regular_shift_covers_every_pixel_of_any_raster(height, width, data):
    chip = data.draw(st.integers(1, min(height, width)))
    step = data.draw(st.integers(1, chip))
    points = anchors(RegularSampler(step), height, width, chip, "shift")
    wins = windows_of(points, chip)
    assert all(w.is_inside(height, width) for w in wins)
    cov = coverage(wins, height, width)
    assert cov.covered == cov.total == height * width
    assert (cov.bottom_rows, cov.right_cols) == (0, 0)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 200), st.integers(1, 60), st.data())
def test_regular_axis_rules(extent, chip, data):
    step = data.draw(st.integers(1, 2 * chip))
    pad = regular_anchors(extent, chip, step, "pad")
    assert pad[0] == 0 and np.all(np.diff(pad) == step) and pad[-1] + chip >= extent
    assert len(pad) == 1 or pad[-2] + chip < extent  # no window beyond what covering the edge needs
    if chip > extent:
        for mode in ("shift", "drop"):
            with pytest.raises(PatchworkError, match="larger than the raster"):
                regular_anchors(extent, chip, step, mode)
        return
    drop = regular_anchors(extent, chip, step, "drop")
    assert drop[0] == 0 and np.all(np.diff(drop) == step) and drop[-1] + chip <= extent < drop[-1] + step + chip
    shift = regular_anchors(extent, chip, step, "shift")
    assert shift[-1] == extent - chip and np.all(np.diff(shift) <= step) and np.all(np.diff(shift) > 0)


def test_drop_reports_the_uncovered_remainder():
    # The reference library's case: 1599 x 3935 with 256 px tiles leaves 63 rows and 95 columns.
    wins = windows_of(anchors(RegularSampler(256), 1599, 3935, 256, "drop"), 256)
    cov = coverage(wins, 1599, 3935)
    assert (cov.bottom_rows, cov.right_cols) == (63, 95)
    assert cov.covered == 1536 * 3840
    assert "the last 63 rows and the last 95 columns are in no chip" in cov.describe()
    assert f"{100 * 1536 * 3840 / (1599 * 3935):.2f}%" in cov.describe()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-20, 80), st.integers(-20, 80), st.integers(1, 40), st.integers(1, 40)),
                max_size=25), st.integers(1, 90), st.integers(1, 90), st.integers(1, 50))
def test_coverage_is_exact(boxes, height, width, strip):
    wins = [Window(*b) for b in boxes]
    assert coverage(wins, height, width, strip=strip).covered == brute_coverage(wins, height, width)


def test_pad_regular_covers_everything_and_fits_chips_larger_than_the_raster():
    wins = windows_of(anchors(RegularSampler(32), 50, 70, 32, "pad"), 32)
    assert coverage(wins, 50, 70).fraction == 1.0
    assert max(w.row_end for w in wins) > 50  # overhang, filled at read time
    big = anchors(RegularSampler(64), 20, 30, 64, "pad")
    assert big.tolist() == [[0, 0]]


def test_jittered_is_reproducible_bounded_and_seed_dependent():
    height, width, chip, step, jitter = 500, 700, 64, 80, 0.4
    a = anchors(JitteredSampler(step, jitter, seed=3), height, width, chip)
    b = anchors(JitteredSampler(step, jitter, seed=3), height, width, chip)
    c = anchors(JitteredSampler(step, jitter, seed=4), height, width, chip)
    base = anchors(RegularSampler(step), height, width, chip)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == base.shape
    assert np.abs(a - base).max() <= round(jitter * step)
    assert np.abs(a - base).max() >= round(jitter * step) - 2  # the jitter really is used
    assert a.min() >= 0 and a[:, 0].max() <= height - chip and a[:, 1].max() <= width - chip


def test_jitter_outside_its_range_is_refused():
    with pytest.raises(PatchworkError, match="between 0 and 0.5"):
        JitteredSampler(64, jitter=0.6)


@pytest.mark.parametrize("radius", [1.0, 2.5, 7.3, 20.0, 64.0])
def test_poisson_disk_distance_holds_on_integer_anchors(radius):
    points = anchors(PoissonDiskSampler(radius, seed=11), 400, 300, 16, "shift")
    tree = cKDTree(points)
    nearest, _ = tree.query(points, k=2)
    assert nearest[:, 1].min() >= radius
    assert points.dtype == np.int64
    assert points[:, 0].min() >= 0 and points[:, 0].max() <= 400 - 16 and points[:, 1].max() <= 300 - 16
    assert len(np.unique(points, axis=0)) == len(points)
    if radius >= 7:  # Bridson fills the region: about 0.6 points per r² (catches early stops)
        density = len(points) * radius**2 / ((400 - 16 + 1) * (300 - 16 + 1))
        assert 0.45 < density < 0.8


def test_poisson_disk_seed_and_count():
    a = anchors(PoissonDiskSampler(30, count=0, seed=1), 600, 600, 32)
    b = anchors(PoissonDiskSampler(30, count=0, seed=1), 600, 600, 32)
    c = anchors(PoissonDiskSampler(30, count=0, seed=2), 600, 600, 32)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.sort(a, axis=0), np.sort(c, axis=0))
    assert PoissonDiskSampler(30, count=25).limit == 25
    # Thinning with a count keeps the first points of a random visiting order, spread over the region.
    first = a[:25]
    assert first[:, 0].max() - first[:, 0].min() > 300 and first[:, 1].max() - first[:, 1].min() > 300


def test_random_sampler_distinct_reproducible_and_inside():
    a = anchors(RandomSampler(200, seed=5), 300, 400, 50)
    b = anchors(RandomSampler(200, seed=5), 300, 400, 50)
    c = anchors(RandomSampler(200, seed=6), 300, 400, 50)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[:200], c[:200])
    assert len(np.unique(a, axis=0)) == len(a) >= 200
    assert a[:, 0].max() <= 250 and a[:, 1].max() <= 350 and a.min() >= 0
    # A region with fewer positions than asked gives each position once.
    small = anchors(RandomSampler(100, seed=1), 12, 12, 10)
    assert len(small) == 9 and len(np.unique(small, axis=0)) == 9


def test_pad_samplers_draw_chip_centres_inside_the_raster():
    chip = 40
    pts = anchors(RandomSampler(2000, seed=1), 100, 120, chip, "pad")
    centres = pts + chip // 2
    assert centres.min() >= 0 and centres[:, 0].max() <= 99 and centres[:, 1].max() <= 119
    assert pts.min() < 0  # edge pixels get chips that overhang


def test_touching_narrows_stochastic_draws_to_windows_that_overlap_it():
    box = Window(100, 200, 30, 40)
    pts = anchors(RandomSampler(500, seed=2), 400, 400, 32, "shift", touching=box)
    assert np.all(pts[:, 0] + 32 > 100) and np.all(pts[:, 0] < 130)
    assert np.all(pts[:, 1] + 32 > 200) and np.all(pts[:, 1] < 240)


@pytest.mark.parametrize("sampler", [
    RegularSampler(64), JitteredSampler(64, 0.3, seed=9), PoissonDiskSampler(12.5, count=7, seed=3),
    RandomSampler(10, seed=4),
])
def test_sampler_config_round_trips(sampler):
    config = sampler.to_config()
    again = from_config(config)
    assert again == sampler and again.to_config() == config
    np.testing.assert_array_equal(anchors(again, 200, 200, 32), anchors(sampler, 200, 200, 32))


def test_bad_configs_are_explained():
    with pytest.raises(PatchworkError, match="unknown class"):
        from_config({"class": "Nope", "config": {}})
    with pytest.raises(PatchworkError, match="bad parameters"):
        from_config({"class": "RegularSampler", "config": {"stride": 3}})
    with pytest.raises(PatchworkError, match="at least 1 px"):
        PoissonDiskSampler(0.5)
    assert math.isclose(PoissonDiskSampler(2.0).min_distance, 2.0)
