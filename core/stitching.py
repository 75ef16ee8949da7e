"""Blending tiles back into one raster: window weights, aggregations, and a row-streaming accumulator.

A tile contributes `weight · value` and `weight` to float64 sums; a pixel's result is Σw·x / Σw
(mean, soft vote) or the class with the largest Σw (hard vote). The accumulator holds only the
rows tiles still write to, so memory is O(tile rows × width), never O(raster).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .errors import PatchworkError

WINDOWS: tuple[str, ...] = ("boxcar", "hann", "triangular")
AGGREGATIONS: tuple[str, ...] = ("hardvote", "softvote", "mean")
WindowName = Literal["boxcar", "hann", "triangular"]
AggregationName = Literal["hardvote", "softvote", "mean"]


def check_choice(kind: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise PatchworkError(f"unknown {kind} '{value}'; use one of {', '.join(choices)}")


def taper(size: int, window: str, at_start: bool = False, at_end: bool = False) -> np.ndarray:
    """1-D weights over `size` pixels, strictly positive everywhere.

    Hann and triangular are sampled at pixel centres, (k + 0.5) / size, so the outermost pixels get a
    small weight instead of 0: no 0/0 where only one tile reaches. A side that lies on the raster
    border (`at_start`, `at_end`) keeps weight 1 up to the middle: no other tile covers it, so
    tapering it would only lose precision.
    """
    check_choice("window", window, WINDOWS)
    t = (np.arange(size, dtype=np.float64) + 0.5) / size
    if window == "boxcar":
        weights = np.ones(size)
    elif window == "hann":
        weights = np.sin(np.pi * t) ** 2  # = 0.5 - 0.5 cos(2πt)
    else:
        weights = 1.0 - np.abs(2.0 * t - 1.0)
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


@dataclass(frozen=True)
class Finished:
    """Rows [row_off, row_off + n) whose sums no later tile touches: ready to be written."""

    row_off: int
    sums: np.ndarray  # (K, n, W) float64: Σ w·x per channel, or Σ w per class (hard vote)
    weight: np.ndarray  # (n, W) float64: Σ w; 0 where nothing valid was added

    @property
    def covered(self) -> np.ndarray:
        return self.weight > 0

    def mean(self) -> np.ndarray:
        """Σ w·x / Σ w as float32 (K, n, W); NaN where nothing was added."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.sums / self.weight).astype(np.float32)

    def winners(self) -> np.ndarray:
        """Index of the largest sum per pixel; ties go to the lowest index."""
        return np.argmax(self.sums, axis=0)


class RowAccumulator:
    """Float64 sums over a band of rows of the output, all columns, flushed as tiles move down.

    `add` takes one tile's contribution; `finish_above(row)` hands back every row above `row`
    (tiles are added in order of their first row, so no later tile reaches there) and frees it.
    """

    def __init__(self, width: int, channels: int, aggregation: str) -> None:
        check_choice("aggregation", aggregation, AGGREGATIONS)
        self.width = width
        self.channels = channels
        self.aggregation = aggregation
        self.row_off = 0
        self.sums = np.zeros((channels, 0, width))
        self.weight = np.zeros((0, width))

    def _reach(self, row_end: int) -> None:
        """Grow the buffer so it covers rows up to `row_end`."""
        missing = row_end - (self.row_off + self.weight.shape[0])
        if missing > 0:
            self.sums = np.concatenate([self.sums, np.zeros((self.channels, missing, self.width))], axis=1)
            self.weight = np.concatenate([self.weight, np.zeros((missing, self.width))], axis=0)

    def add(self, row_off: int, col_off: int, values: np.ndarray, weights: np.ndarray, valid: np.ndarray) -> None:
        """Add one tile (already clipped to the output).

        values: (h, w) integer class indices for the hard vote (others do not vote), or (K, h, w)
        floats (probabilities for the soft vote, values for the mean). weights and valid: (h, w).
        """
        if row_off < self.row_off:
            raise ValueError(f"tile at row {row_off} arrives after rows up to {self.row_off} were finished")
        h, w = weights.shape
        self._reach(row_off + h)
        r = row_off - self.row_off
        if self.aggregation == "hardvote":
            valid = valid & (values >= 0) & (values < self.channels)
        w_valid = np.where(valid, weights, 0.0)
        rows, cols = slice(r, r + h), slice(col_off, col_off + w)
        self.weight[rows, cols] += w_valid
        if self.aggregation == "hardvote":
            for k in range(self.channels):
                self.sums[k, rows, cols] += np.where(values == k, w_valid, 0.0)
        else:
            self.sums[:, rows, cols] += values * w_valid

    def finish_above(self, row: int) -> Finished | None:
        n = row - self.row_off
        if n <= 0:
            return None
        self._reach(row)  # rows no tile reached come out with weight 0
        done = Finished(self.row_off, self.sums[:, :n], self.weight[:n])
        self.sums, self.weight = self.sums[:, n:].copy(), self.weight[n:].copy()
        self.row_off += n
        return done
