"""Where a per-pixel model is outside its training data: its area of applicability.

The method of Meyer & Pebesma (2021, Methods in Ecology and Evolution 12:1620–1633). Each pixel's features are
scaled as the training features were (mean 0, sd 1) and weighted by the model's feature importance; its
dissimilarity index (DI) is the distance to the nearest training pixel over the mean distance between training
pixels. The threshold is the DI that training pixels themselves reach in cross-validation (the nearest training
pixel of another chip, as the model's validation holds chips out whole): the largest training DI under the
boxplot's upper whisker (Q3 + 1.5 IQR), as the CAST package takes it. A pixel whose DI is above it lies outside the
area of applicability. The training pixels kept (at most MAX_POINTS, a seeded sample) travel in the model's
metadata; distances are computed elementwise in float64, so every worker gives the same bits.
"""
from __future__ import annotations

import numpy as np

MAX_POINTS = 1000  # training pixels kept in the model to measure distances to
CHUNK = 2048  # pixels compared with the training pixels at once (CHUNK × MAX_POINTS × bands float64)


def _nearest(z: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance from each row of `z` to its nearest row of `points`."""
    out = np.empty(len(z))
    for start in range(0, len(z), CHUNK):
        part = z[start : start + CHUNK]
        out[start : start + CHUNK] = np.sqrt(((part[:, None, :] - points[None]) ** 2).sum(axis=2).min(axis=1))
    return out


def applicability(features: np.ndarray, importances: np.ndarray | None, groups: np.ndarray, seed: int) -> dict:
    """The area of applicability of a model trained on `features` (pixels × bands), for its metadata.

    Args:
        features: The training pixels as the model takes them.
        importances: The model's feature importance per band (None: equal weights).
        groups: Each training pixel's chip: a pixel's cross-validation neighbours are in other chips.
        seed: Which pixels are kept (at most MAX_POINTS).
    """
    x = np.asarray(features, np.float64)
    rng = np.random.default_rng([seed, 7])
    keep = np.sort(rng.choice(len(x), min(len(x), MAX_POINTS), replace=False))
    x, groups = x[keep], np.asarray(groups)[keep]
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    weights = np.ones(x.shape[1]) if importances is None else np.asarray(importances, np.float64)
    weights = weights / weights.sum() * len(weights) if weights.sum() > 0 else np.ones(x.shape[1])
    z = (x - mean) / std * weights
    pairs = np.sqrt(((z[:, None] - z[None]) ** 2).sum(axis=2))
    mean_distance = float(pairs[np.triu_indices(len(z), 1)].mean()) if len(z) > 1 else 1.0
    mean_distance = mean_distance or 1.0
    if len(np.unique(groups)) > 1:  # cross-validation: the nearest pixel of another chip
        pairs[groups[:, None] == groups[None]] = np.inf
    else:  # one chip: the nearest other pixel
        np.fill_diagonal(pairs, np.inf)
    training = pairs.min(axis=1) / mean_distance
    training = training[np.isfinite(training)]
    q1, q3 = np.percentile(training, [25, 75]) if len(training) else (0.0, 0.0)
    within = training[training <= q3 + 1.5 * (q3 - q1)]
    threshold = float(within.max()) if len(within) else 0.0
    return {"method": "Meyer & Pebesma 2021", "mean": mean.tolist(), "std": std.tolist(),
            "weights": weights.tolist(), "points": z.tolist(), "mean_distance": mean_distance,
            "threshold": threshold}


def dissimilarity(pixels: np.ndarray, aoa: dict) -> np.ndarray:
    """The DI of each pixel (pixels × bands, as the model takes them)."""
    z = (np.asarray(pixels, np.float64) - np.asarray(aoa["mean"])) / np.asarray(aoa["std"]) \
        * np.asarray(aoa["weights"])
    return _nearest(z, np.asarray(aoa["points"], np.float64)) / aoa["mean_distance"]


def inside(pixels: np.ndarray, aoa: dict) -> np.ndarray:
    """Which pixels lie inside the area of applicability (DI ≤ the threshold)."""
    return dissimilarity(pixels, aoa) <= aoa["threshold"]
