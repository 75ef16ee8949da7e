"""Blending tiles back into one raster: window weights, aggregations, and a block accumulator.

A tile contributes `weight · value` and `weight` to float64 sums; a pixel's result is Σw·x / Σw
(mean, soft vote) or the class with the largest Σw (hard vote). An accumulator holds one block of
the output (see `tiling`), so memory is O(block), never O(raster).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import PatchworkError
from ..geometry import Window

WINDOWS: tuple[str, ...] = ("boxcar", "hann", "triangular", "tukey", "gaussian")
WINDOW_PARAMETERS = {"tukey": ("alpha", 0.5), "gaussian": ("sigma", 0.5)}  # their parameter's name and default
SMALLEST_WEIGHT = 1e-12  # what a zero of a window weighs: a pixel only it reaches keeps its value
AGGREGATIONS: tuple[str, ...] = ("hardvote", "softvote", "mean")
CLASS_PLANES = 16  # up to this many classes, hard votes are added plane by plane (faster than one scattered pass)
WindowName = Literal["boxcar", "hann", "triangular"]
AggregationName = Literal["hardvote", "softvote", "mean"]


def check_choice(kind: str, value: str, choices: tuple[str, ...]) -> None:
    """Refuse a `kind` value that is not one of `choices`."""
    if value not in choices:
        raise PatchworkError(f"unknown {kind} '{value}'; use one of {', '.join(choices)}")


def parse_window(spec: str) -> tuple[str, float | None]:
    """A window and its parameter: 'hann', or 'tukey(0.25)' / 'gaussian(0.3)' (default 0.5 each).

    Raises:
        PatchworkError: An unknown window, a parameter for a window that takes none, or one out of range.
    """
    match = re.fullmatch(r"\s*([a-z]+)\s*(?:\(\s*([^()]*?)\s*\))?\s*", str(spec).lower())
    name = match.group(1) if match else str(spec)
    if name not in WINDOWS:
        raise PatchworkError(f"WINDOW: unknown window '{spec}'; use one of {', '.join(WINDOWS)}")
    if match.group(2) is None:
        return name, WINDOW_PARAMETERS.get(name, (None, None))[1]
    if name not in WINDOW_PARAMETERS:
        raise PatchworkError(f"WINDOW_PARAMETER: the {name} window takes no parameter; tukey takes its alpha and "
                             "gaussian its sigma.")
    try:
        value = float(match.group(2))
    except ValueError:
        value = math.nan
    if name == "tukey" and not 0.0 <= value <= 1.0:
        raise PatchworkError(f"WINDOW_PARAMETER: Tukey's alpha is the tapered share of the tile, from 0 (boxcar) to "
                             f"1 (Hann); got {match.group(2)}.")
    if name == "gaussian" and not (math.isfinite(value) and value > 0):
        raise PatchworkError(f"WINDOW_PARAMETER: the Gaussian's sigma (in half tiles) must be above 0; got "
                             f"{match.group(2)}.")
    return name, value


def _tukey(size: int, alpha: float) -> np.ndarray:
    """scipy.signal.windows.tukey(size, alpha, sym=False), as the seed library takes it.

    The periodic form: the symmetric window of size + 1 without its last sample ([0, .5, 1, …, 1, .5] for size 8,
    alpha 0.5).
    """
    if size <= 1:
        return np.ones(size)  # (as scipy: one sample is the whole window)
    m = size + 1
    k = np.arange(m, dtype=np.float64)
    if alpha <= 0:
        weights = np.ones(m)
    elif alpha >= 1:
        weights = 0.5 - 0.5 * np.cos(2.0 * np.pi * k / (m - 1))
    else:
        width = int(np.floor(alpha * (m - 1) / 2.0))
        weights = np.ones(m)
        weights[: width + 1] = 0.5 * (1 + np.cos(np.pi * (-1 + 2.0 * k[: width + 1] / alpha / (m - 1))))
        weights[m - width - 1:] = 0.5 * (1 + np.cos(np.pi * (-2.0 / alpha + 1 + 2.0 * k[m - width - 1:] / alpha
                                                              / (m - 1))))
    return weights[:size]


def taper(size: int, window: str, at_start: bool = False, at_end: bool = False) -> np.ndarray:
    """1-D weights over `size` pixels, strictly positive everywhere.

    Hann and triangular are sampled at pixel centres, (k + 0.5) / size, so the outermost pixels get a
    small weight instead of 0: no 0/0 where only one tile reaches. Tukey and Gaussian are the seed library's
    formulas exactly (its periodic Tukey; its Gaussian exp(−½((k − (n − 1)/2)/σ)²) with σ = sigma·n/2), but for
    Tukey's zero at k = 0, which weighs SMALLEST_WEIGHT. A side that lies on the raster
    border (`at_start`, `at_end`) keeps weight 1 up to the middle: no other tile covers it, so
    tapering it would only lose precision.
    """
    name, parameter = parse_window(window)
    t = (np.arange(size, dtype=np.float64) + 0.5) / size
    if name == "boxcar":
        weights = np.ones(size)
    elif name == "hann":
        weights = np.sin(np.pi * t) ** 2  # = 0.5 - 0.5 cos(2πt)
    elif name == "triangular":
        weights = 1.0 - np.abs(2.0 * t - 1.0)
    elif name == "tukey":
        weights = np.maximum(_tukey(size, parameter), SMALLEST_WEIGHT)
    else:
        k = np.arange(size, dtype=np.float64)
        weights = np.exp(-0.5 * ((k - (size - 1) / 2) / (parameter * size / 2)) ** 2)
    half = size // 2
    if at_start:
        weights[:half] = 1.0
    if at_end:
        weights[size - half:] = 1.0
    if size % 2 and (at_start or at_end):
        weights[half] = 1.0
    return weights


def tile_weights(height: int, width: int, window: str, top: bool, bottom: bool, left: bool,
                 right: bool) -> np.ndarray:
    """2-D weights of one tile; the flags say which sides lie on the raster border."""
    return np.outer(taper(height, window, top, bottom), taper(width, window, left, right))


def first_argmax(planes: np.ndarray) -> np.ndarray:
    """Index of the largest of K planes (K, h, w) per pixel, ties to the lowest index: np.argmax(planes, axis=0).

    Plane by plane, each read contiguously: several times faster than argmax across the strided first axis.
    """
    if len(planes) == 1:
        return np.zeros(planes.shape[1:], np.intp)
    if len(planes) == 2:  # (the usual two classes: one comparison, its booleans are the indexes)
        return (planes[1] > planes[0]).view(np.int8)
    best = planes[0].copy()
    index = np.zeros(planes.shape[1:], np.intp if len(planes) > 127 else np.int8)
    for k in range(1, len(planes)):
        larger = planes[k] > best  # strictly: a tie keeps the lower index
        index[larger] = k
        if k < len(planes) - 1:
            np.maximum(best, planes[k], out=best)
    return index


@dataclass(frozen=True)
class Finished:
    """A block of the output with all its contributions added: ready to be written."""

    window: Window
    sums: np.ndarray  # (K, h, w) float64: Σ w·x per channel, or Σ w per class (hard vote)
    weight: np.ndarray  # (h, w) float64: Σ w; 0 where nothing valid was added

    @property
    def covered(self) -> np.ndarray:
        """Pixels with at least one vote or value."""
        return self.weight > 0

    def mean(self) -> np.ndarray:
        """Σ w·x / Σ w as float32 (K, h, w); NaN where nothing was added."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.sums / self.weight).astype(np.float32)

    def winners(self) -> np.ndarray:
        """Index of the largest sum per pixel; ties go to the lowest index."""
        return first_argmax(self.sums)

    def part(self, window: Window, copy: bool = True) -> Finished:
        """The sums over `window` (inside this one).

        Copied unless asked not to, so that a part handed on does not keep the whole alive.
        """
        if window == self.window and not copy:
            return self
        rows = slice(window.row_off - self.window.row_off, window.row_end - self.window.row_off)
        cols = slice(window.col_off - self.window.col_off, window.col_end - self.window.col_off)
        sums, weight = self.sums[:, rows, cols], self.weight[rows, cols]
        return Finished(window, sums.copy(), weight.copy()) if copy else Finished(window, sums, weight)

    def add(self, other: Finished) -> None:
        """Add the sums of `other` where the two windows meet (in place: a part's arrays are its own)."""
        both = self.window.intersection(other.window)
        if both is None:
            return
        here = (slice(both.row_off - self.window.row_off, both.row_end - self.window.row_off),
                slice(both.col_off - self.window.col_off, both.col_end - self.window.col_off))
        there = (slice(both.row_off - other.window.row_off, both.row_end - other.window.row_off),
                 slice(both.col_off - other.window.col_off, both.col_end - other.window.col_off))
        self.sums[(slice(None), *here)] += other.sums[(slice(None), *there)]
        self.weight[here] += other.weight[there]


class BlockAccumulator:
    """Float64 sums over one block of the output, fed tile by tile in raster coordinates.

    Tiles may reach outside the block: only their part inside it is added. Contributions to a pixel
    are summed in the order the tiles arrive, so blocks that add the same tiles in the same order
    give bit-identical results however the output is cut.
    """

    def __init__(self, window: Window, channels: int, aggregation: str, counts: bool = False) -> None:
        """Zero sums over `window`.

        `counts`: every weight added is 1 (a boxcar window). Hard votes are then small whole numbers, exact in
        float32: half the memory and memory traffic of float64; other values are added without multiplying.
        """
        check_choice("aggregation", aggregation, AGGREGATIONS)
        self.window = window
        self.channels = channels
        self.aggregation = aggregation
        self.counts = counts
        dtype = np.float32 if counts and aggregation == "hardvote" else np.float64
        # Votes counted (whole numbers, exact): the first class's are every vote less the others', made once by
        # `finish` instead of tile by tile (two classes: half the adding).
        self._first_plane_from_weight = counts and aggregation == "hardvote" and 1 < channels <= CLASS_PLANES
        self.sums = np.zeros((channels, window.height, window.width), dtype)
        self.weight = np.zeros((window.height, window.width), dtype)

    def add(self, row_off: int, col_off: int, values: np.ndarray, weights: np.ndarray, valid: np.ndarray) -> None:
        """Add one tile whose top-left output pixel is (row_off, col_off) in the raster.

        values: (h, w) integer class indices for the hard vote (others do not vote), or (K, h, w)
        floats (probabilities for the soft vote, values for the mean). weights and valid: (h, w).
        """
        b = self.window
        r0, c0 = max(row_off, b.row_off), max(col_off, b.col_off)
        r1, c1 = min(row_off + weights.shape[0], b.row_end), min(col_off + weights.shape[1], b.col_end)
        if r1 <= r0 or c1 <= c0:
            return
        inside = (slice(r0 - row_off, r1 - row_off), slice(c0 - col_off, c1 - col_off))
        here = (slice(r0 - b.row_off, r1 - b.row_off), slice(c0 - b.col_off, c1 - b.col_off))
        values, valid = values[(..., *inside)], valid[inside]
        if self.aggregation == "hardvote":
            valid = valid & (values >= 0) & (values < self.channels)
        w_valid = np.where(valid, weights[inside], 0.0).astype(self.weight.dtype, copy=False)
        self.weight[here] += w_valid
        if self.aggregation == "hardvote" and self.channels <= CLASS_PLANES:
            # Σ w per class, a contiguous pass per class plane (adding only where the pixel votes for it: the same
            # sums, bit for bit, as one scattered pass, which took a third of a cheap model's run)
            for k in range(1 if self._first_plane_from_weight else 0, self.channels):
                plane = self.sums[(k, *here)]
                np.add(plane, w_valid, out=plane, where=values == k)
        elif self.aggregation == "hardvote":
            # Σ w per class, one scattered pass: each pixel of a tile votes for one class, so no index repeats.
            rows, cols = np.nonzero(valid)
            self.sums[values[rows, cols], rows + here[0].start, cols + here[1].start] += w_valid[rows, cols]
        elif self.counts:  # every weight 1: the values where valid, the same sums as values × 1 without the product
            target = self.sums[(slice(None), *here)]
            np.add(target, values, out=target, where=valid)
        else:
            self.sums[(slice(None), *here)] += values * w_valid

    def finish(self) -> Finished:
        """The block's sums, ready to be written."""
        if self._first_plane_from_weight:
            np.subtract(self.weight, self.sums[1:].sum(axis=0), out=self.sums[0])
        return Finished(self.window, self.sums, self.weight)
