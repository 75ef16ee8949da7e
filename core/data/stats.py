"""Band statistics of a chip dataset, accumulated chip by chip while the chips are written.

Count, mean, standard deviation, minimum and maximum are exact (float64, chips combined with Chan's
parallel formulas); the 2 and 98 percentiles are exact for 8- and 16-bit integer bands (a histogram of every
value) and, for other types, taken from a uniform sample of up to SAMPLE_SIZE values per band (a seeded
reservoir: the same chips give the same statistics).
"""
from __future__ import annotations

import numpy as np

SAMPLE_SIZE = 1_000_000
PERCENTILES = (2.0, 98.0)


class BandStatistics:
    """Per-band statistics of the valid pixels of every chip added."""

    def __init__(self, count: int, dtype: np.dtype) -> None:
        """Statistics for `count` bands of `dtype` values."""
        self.dtype = np.dtype(dtype)
        self.n = np.zeros(count, np.int64)
        self.mean = np.zeros(count, np.float64)
        self.m2 = np.zeros(count, np.float64)  # sum of squared differences from the mean
        self.low = np.full(count, np.inf)
        self.high = np.full(count, -np.inf)
        self.exact = np.issubdtype(self.dtype, np.integer) and self.dtype.itemsize <= 2
        if self.exact:
            self.offset = int(np.iinfo(self.dtype).min)
            self.histograms = np.zeros((count, 1 << (8 * self.dtype.itemsize)), np.int64)
        else:
            self.rng = np.random.default_rng(0)
            self.samples = [np.empty(0, np.float64) for _ in range(count)]

    def add(self, data: np.ndarray, valid: np.ndarray) -> None:
        """Add the valid pixels (`valid`, h × w) of one chip (`data`, C × h × w)."""
        levels = None
        if self.exact and self.histograms.shape[1] == 256:  # 8-bit: the chip's moments from its histogram
            levels = np.arange(self.offset, self.offset + 256, dtype=np.float64)
        for b in range(data.shape[0]):
            values = data[b][valid]
            if values.size == 0:
                continue
            n_a, n_b = self.n[b], values.size
            if self.exact:
                histogram = np.bincount(values.astype(np.intp) - self.offset, minlength=self.histograms.shape[1])
                self.histograms[b] += histogram
            if levels is not None:
                present = np.flatnonzero(histogram)
                mean_b = float(histogram @ levels) / n_b
                m2_b = float(histogram @ np.square(levels - mean_b))
                low_b, high_b = levels[present[0]], levels[present[-1]]
            else:
                wide = values.astype(np.float64)
                mean_b = wide.mean()
                m2_b = float(np.square(wide - mean_b).sum())
                low_b, high_b = float(wide.min()), float(wide.max())
                if not self.exact:
                    self._sample(b, wide, n_a)
            n = n_a + n_b
            delta = mean_b - self.mean[b]
            self.mean[b] += delta * n_b / n
            self.m2[b] += m2_b + delta * delta * n_a * n_b / n
            self.n[b] = n
            self.low[b] = min(self.low[b], low_b)
            self.high[b] = max(self.high[b], high_b)

    def _sample(self, band: int, values: np.ndarray, seen: int) -> None:
        """Keep a uniform sample of the band's values, a chip at a time."""
        self.samples[band], _ = reservoir(self.samples[band], seen, values, SAMPLE_SIZE, self.rng)

    def to_dicts(self) -> list[dict]:
        """One dict per band: count, mean, std, min, max, p2, p98 (None for a band without valid pixels)."""
        bands = []
        for b in range(len(self.n)):
            if self.n[b] == 0:
                bands.append({"count": 0, "mean": None, "std": None, "min": None, "max": None,
                              "p2": None, "p98": None})
                continue
            low, high = (self._exact_percentile(b, q) if self.exact else float(np.percentile(self.samples[b], q))
                         for q in PERCENTILES)
            bands.append({"count": int(self.n[b]), "mean": float(self.mean[b]),
                          "std": float(np.sqrt(self.m2[b] / self.n[b])), "min": float(self.low[b]),
                          "max": float(self.high[b]), "p2": low, "p98": high,
                          "percentiles": "exact" if self.exact else f"from a sample of {SAMPLE_SIZE:,} values"})
        return bands

    def _exact_percentile(self, band: int, q: float) -> float:
        """Numpy's default (linear) percentile, from the band's histogram."""
        cumulative = np.cumsum(self.histograms[band])
        position = (self.n[band] - 1) * q / 100.0
        below, above = int(np.floor(position)), int(np.ceil(position))
        value_below = int(np.searchsorted(cumulative, below, side="right")) + self.offset
        value_above = int(np.searchsorted(cumulative, above, side="right")) + self.offset
        return float(value_below + (value_above - value_below) * (position - below))


def reservoir(sample: np.ndarray, seen: int, values: np.ndarray, size: int,
              rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Algorithm R over a batch: a uniform sample of up to `size` of all values seen, without replacement.

    Returns the updated sample and the count of values seen; the same draws as one value at a time.
    """
    room = max(0, min(size - sample.size, values.size))
    if room:
        sample = np.concatenate([sample, values[:room]])
    rest = values[room:]
    if rest.size:
        slots = rng.integers(0, np.arange(seen + room + 1, seen + values.size + 1))  # 1-based index of each value
        keep = slots < size
        sample[slots[keep]] = rest[keep]  # in order: a later value in the same slot wins, as one by one
    return sample, seen + values.size


def pooled_statistics(datasets: list[list[dict]]) -> list[dict]:
    """The band statistics of several datasets' chips taken together: count, mean, std, min and max per band.

    Exact (Chan's parallel update of the mean and the sum of squared differences); the percentiles cannot be pooled
    from the parts, so they are left out. A single dataset's statistics are returned as they are.
    """
    if len(datasets) == 1:
        return datasets[0]
    pooled = []
    for bands in zip(*datasets):
        parts = [b for b in bands if b.get("count")]
        n = sum(b["count"] for b in parts)
        if not n:
            pooled.append({"count": 0, "mean": None, "std": None, "min": None, "max": None})
            continue
        mean = sum(b["count"] * b["mean"] for b in parts) / n
        m2 = sum(b["count"] * (b["std"] ** 2 + (b["mean"] - mean) ** 2) for b in parts)
        pooled.append({"count": n, "mean": mean, "std": float(np.sqrt(m2 / n)),
                       "min": min(b["min"] for b in parts), "max": max(b["max"] for b in parts)})
    return pooled
