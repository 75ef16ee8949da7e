"""Windows and aggregations: edge-safe weights, exact reconstruction, streaming equals in-memory."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patchwork.core import PatchworkError, Window
from patchwork.core.engine.stitching import (
    SMALLEST_WEIGHT,
    BlockAccumulator,
    first_argmax,
    parse_window,
    taper,
    tile_weights,
)


@pytest.mark.parametrize("window", ["boxcar", "hann", "triangular"])
@pytest.mark.parametrize("size", [1, 2, 7, 16, 256])
def test_weights_are_positive_symmetric_and_untapered_at_the_border(window, size):
    w = taper(size, window)
    assert (w > 0).all() and w.max() <= 1.0
    np.testing.assert_allclose(w, w[::-1])
    half = size // 2
    start = taper(size, window, at_start=True)
    assert (start[: size - half] == 1.0).all()  # the border half (and an odd middle) is not tapered
    np.testing.assert_array_equal(start[size - half :], w[size - half :])
    both = taper(size, window, at_start=True, at_end=True)
    assert (both == 1.0).all()


def test_hann_and_triangular_shapes():
    hann = taper(8, "hann")
    np.testing.assert_allclose(hann, np.sin(np.pi * (np.arange(8) + 0.5) / 8) ** 2)
    assert hann[0] == pytest.approx(0.0381, abs=1e-4)  # the seed's symmetric Hann gives 0 here
    np.testing.assert_allclose(taper(4, "triangular"), [0.25, 0.75, 0.75, 0.25])
    assert tile_weights(4, 6, "hann", True, False, False, True).shape == (4, 6)


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.99, 1.0])
@pytest.mark.parametrize("size", [1, 2, 7, 8, 16, 255])
def test_tukey_is_the_seed_librarys_periodic_tukey_with_its_zero_given_the_smallest_weight(alpha, size):
    from scipy.signal import windows

    expected = windows.tukey(size, alpha, sym=False)
    np.testing.assert_allclose(taper(size, f"tukey({alpha})"), np.maximum(expected, SMALLEST_WEIGHT), rtol=0,
                               atol=1e-15)
    if size > 1 and alpha > 0:
        assert taper(size, f"tukey({alpha})")[0] == SMALLEST_WEIGHT  # no pixel left without weight


def test_tukey_and_gaussian_as_the_seed_library_describes_them():
    np.testing.assert_allclose(taper(8, "tukey"), [SMALLEST_WEIGHT, 0.5, 1, 1, 1, 1, 1, 0.5], atol=1e-12)
    np.testing.assert_array_equal(taper(8, "tukey(0)"), np.ones(8))  # alpha 0: a boxcar
    gaussian = taper(8, "gaussian")
    k = np.arange(8)
    np.testing.assert_allclose(gaussian, np.exp(-0.5 * ((k - 3.5) / 2.0) ** 2))  # sigma 0.5 · 8 / 2 = 2 px
    assert gaussian[0] == pytest.approx(0.216, abs=1e-3)
    np.testing.assert_allclose(taper(8, "gaussian(0.25)"), np.exp(-0.5 * ((k - 3.5) / 1.0) ** 2))
    assert (taper(8, "gaussian", at_start=True)[:4] == 1).all()  # a border side is not tapered, as for the others


@pytest.mark.parametrize("spec, message", [("cosine", "unknown window 'cosine'"),
                                           ("hann(0.3)", "the hann window takes no parameter"),
                                           ("tukey(1.5)", "Tukey's alpha"), ("gaussian(0)", "sigma")])
def test_bad_windows_are_refused_with_the_reason(spec, message):
    with pytest.raises(PatchworkError, match=message):
        parse_window(spec)


def _tiles(extent: int, size: int, stride: int) -> list[int]:
    anchors = list(range(0, max(extent - size, 0) + 1, stride))
    if anchors[-1] + size < extent:
        anchors.append(extent - size)
    return anchors


@settings(max_examples=60, deadline=None)
@given(height=st.integers(5, 60), width=st.integers(5, 60), size=st.integers(4, 24), data=st.data())
def test_blocks_reconstruct_any_field_bit_identical_to_one_block(height, width, size, data):
    """Cut anyhow, blocks give exactly (bit for bit) what one block of the whole raster gives."""
    size = min(size, height, width)
    stride = data.draw(st.integers(1, size))
    window = data.draw(st.sampled_from(["boxcar", "hann", "triangular", "tukey", "tukey(0.9)", "gaussian(0.3)"]))
    block = data.draw(st.integers(1, max(height, width)))
    field = np.random.default_rng(height * 100 + width).normal(size=(2, height, width))
    rows, cols = _tiles(height, size, stride), _tiles(width, size, stride)

    def accumulate(win: Window) -> np.ndarray:
        acc = BlockAccumulator(win, 2, "mean")
        for r in rows:
            for c in cols:
                w = tile_weights(size, size, window, r == 0, r + size >= height, c == 0, c + size >= width)
                acc.add(r, c, field[:, r : r + size, c : c + size], w, np.ones((size, size), bool))
        return acc.finish().mean()

    whole = accumulate(Window(0, 0, height, width))
    pieces = np.full((2, height, width), np.nan, np.float32)
    for r0 in range(0, height, block):
        for c0 in range(0, width, block):
            win = Window(r0, c0, min(block, height - r0), min(block, width - c0))
            pieces[:, r0 : win.row_end, c0 : win.col_end] = accumulate(win)
    np.testing.assert_array_equal(pieces, whole)
    np.testing.assert_allclose(whole, field.astype(np.float32), rtol=1e-6, atol=1e-6)


def test_hard_vote_weights_votes_and_breaks_ties_to_the_lowest_class():
    acc = BlockAccumulator(Window(0, 0, 1, 3), 3, "hardvote")
    ones, valid = np.ones((1, 3)), np.ones((1, 3), bool)
    acc.add(0, 0, np.array([[2, 1, 0]]), ones, valid)
    acc.add(0, 0, np.array([[1, 2, 7]]), np.array([[1.0, 0.5, 1.0]]), valid)  # 7 is not a class: no vote
    done = acc.finish()
    np.testing.assert_array_equal(done.winners(), [[1, 1, 0]])  # tie 2 vs 1 → 1; 1.0 vs 0.5 → 1
    np.testing.assert_array_equal(done.weight, [[2.0, 1.5, 1.0]])


def test_invalid_pixels_untouched_pixels_and_tiles_outside_stay_uncovered():
    acc = BlockAccumulator(Window(1, 0, 3, 4), 1, "mean")
    valid = np.array([[True, True], [True, False], [True, True]])
    acc.add(0, 0, np.ones((1, 3, 2)), np.ones((3, 2)), valid)  # row 0 lies above the block
    acc.add(10, 10, np.ones((1, 2, 2)), np.ones((2, 2)), np.ones((2, 2), bool))  # misses it
    done = acc.finish()
    assert done.weight.shape == (3, 4)
    np.testing.assert_array_equal(done.covered, [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    assert np.isnan(done.mean()[0, 0, 1]) and done.mean()[0, 1, 1] == 1.0


@settings(max_examples=50, deadline=None)
@given(k=st.integers(1, 300), data=st.data())
def test_plane_argmax_is_numpys_argmax_ties_to_the_lowest_index(k, data):
    seed = data.draw(st.integers(0, 2**32 - 1))
    planes = np.random.default_rng(seed).integers(0, 3, size=(k, 5, 7)).astype(np.float64)  # many ties
    np.testing.assert_array_equal(first_argmax(planes), np.argmax(planes, axis=0))
