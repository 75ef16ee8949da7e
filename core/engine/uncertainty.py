"""How sure a map is of each pixel, from what the tiles gave it.

- From the stitched class probabilities (the very array OUTPUT_PROBABILITIES writes: mean probabilities with the
  soft vote, vote shares with the hard vote): `entropy` −Σ p log p / log K (0: sure, 1: all classes equal),
  `margin` 1 − (p₁ − p₂), `least_confidence` 1 − p_max.
- From the tiles' own decisions: `disagreement`, the share of the tiles covering a pixel whose class is not the
  map's (0 where one tile covers it), whatever the aggregation.
- For value maps (regression): `variance`, the weighted variance of the overlapping tiles' values about the value
  written (Σw·x²/Σw − mean²; 0 where one tile covers it), a band per output.

All are float32 in [0, 1] (variance in the values' squared unit), NaN where the map is nodata.
"""
from __future__ import annotations

import numpy as np

from ..errors import PatchworkError
from .stitching import Finished

FROM_PROBABILITIES = ("entropy", "margin", "least_confidence")
UNCERTAINTIES: tuple[str, ...] = ("auto", *FROM_PROBABILITIES, "disagreement", "variance")


def resolve_measure(measure: str, task: str) -> str:
    """The measure a run writes: 'auto' is entropy for a class map and variance for values; others are checked."""
    if measure not in UNCERTAINTIES:
        raise PatchworkError(f"UNCERTAINTY: '{measure}' is not one of {', '.join(UNCERTAINTIES)}.")
    if measure == "auto":
        return "entropy" if task == "classification" else "variance"
    if (task == "classification") != (measure != "variance"):
        kind = "a class map" if task == "classification" else "a map of values"
        allowed = ", ".join(UNCERTAINTIES[1:-1]) if task == "classification" else "variance"
        raise PatchworkError(f"UNCERTAINTY: '{measure}' does not apply to {kind}; use {allowed} (or auto).")
    return measure


def from_probabilities(probabilities: np.ndarray, measure: str) -> np.ndarray:
    """(h, w) uncertainty from (K, h, w) probabilities (rows summing to 1); NaN where they are NaN."""
    p = probabilities.astype(np.float64)
    k = len(p)
    if measure == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log(p), 0.0)
        value = -terms.sum(axis=0) / np.log(k)
    elif measure == "margin":
        top = np.sort(p, axis=0)
        value = 1.0 - (top[-1] - top[-2])
    elif measure == "least_confidence":
        value = 1.0 - p.max(axis=0)
    else:
        raise PatchworkError(f"UNCERTAINTY: '{measure}' is not computed from probabilities.")
    value = np.clip(value, 0.0, 1.0)  # (rounding of the float32 probabilities)
    value[np.isnan(p).any(axis=0)] = np.nan
    return value.astype(np.float32)


def disagreement(votes: Finished, winners: np.ndarray) -> np.ndarray:
    """The share of the tiles covering each pixel that voted another class than `winners` (class indices)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        agreeing = np.take_along_axis(votes.sums, winners[None].astype(np.intp), axis=0)[0] / votes.weight
    return np.where(votes.covered, 1.0 - agreeing, np.nan).astype(np.float32)


def variance(squares: Finished, mean: np.ndarray) -> np.ndarray:
    """(K, h, w) weighted variance of the tiles' values: Σw·x²/Σw − mean², never below 0 (rounding)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = squares.sums / squares.weight - mean.astype(np.float64) ** 2
    return np.where(squares.covered, np.maximum(spread, 0.0), np.nan).astype(np.float32)


def single_cover(measure: str, covered: np.ndarray, probabilities: np.ndarray | None, bands: int) -> np.ndarray:
    """The uncertainty where each pixel has one tile (or a per-pixel model's one prediction).

    Disagreement and variance are 0 there; the probability measures come from that prediction's probabilities.
    """
    if measure in FROM_PROBABILITIES:
        return from_probabilities(probabilities, measure)
    zeros = np.where(covered, 0.0, np.nan).astype(np.float32)
    return np.broadcast_to(zeros, (bands, *covered.shape)).copy() if measure == "variance" else zeros
