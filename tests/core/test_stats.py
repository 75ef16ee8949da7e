"""Band statistics of chip datasets: exact moments, exact or sampled percentiles, equal to numpy over the chips."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from patchwork.core import RasterSource, RegularSampler, Window, augment_chips, read_index, sample_chips
from patchwork.core.data.stats import BandStatistics


def chip_pixels(index: str) -> np.ndarray:
    """(C, N) valid pixels of every chip of the index, read back from the chip files."""
    parts = []
    for record in read_index(index):
        with RasterSource(record["image_path"]) as src:
            data, valid = src.read(Window(0, 0, src.height, src.width))
        parts.append(data[:, valid])
    return np.concatenate(parts, axis=1).astype(np.float64)


def assert_statistics(found: list[dict], pixels: np.ndarray, exact_percentiles: bool) -> None:
    for band, stats in zip(pixels, found):
        assert stats["count"] == band.size
        for key, expected in (("mean", band.mean()), ("std", band.std()), ("min", band.min()), ("max", band.max())):
            assert stats[key] == pytest.approx(expected, rel=1e-9, abs=1e-12), key
        for key, q in (("p2", 2), ("p98", 98)):
            if exact_percentiles:
                assert stats[key] == pytest.approx(np.percentile(band, q), rel=1e-12), key


def test_naip_chip_statistics_equal_numpy_over_the_valid_chip_pixels(tmp_path, naip_path):
    # overlapping chips (step < size): a pixel in two chips counts twice, as it is in the dataset twice
    result = sample_chips(naip_path, RegularSampler(step=48), 64, str(tmp_path / "chips"))
    manifest = json.load(open(os.path.join(result.out_dir, "dataset.json")))
    assert manifest["band_statistics"] == result.band_statistics and len(result.band_statistics) == 4
    assert result.band_statistics[0]["percentiles"] == "exact"  # 8-bit: from a histogram of every value
    assert_statistics(result.band_statistics, chip_pixels(result.index_path), exact_percentiles=True)


def test_float_chip_statistics_equal_numpy_and_augmented_datasets_carry_theirs(tmp_path, s2_path):
    result = sample_chips(s2_path, RegularSampler(step=32), 32, str(tmp_path / "chips"))
    pixels = chip_pixels(result.index_path)
    assert pixels.shape[1] < 1_000_000  # the sample holds every value: its percentiles are numpy's
    assert_statistics(result.band_statistics, pixels, exact_percentiles=True)
    augmented = augment_chips(result.index_path, "default", str(tmp_path / "augmented"), copies=2)
    stats = json.load(open(os.path.join(augmented.out_dir, "dataset.json")))["band_statistics"]
    assert_statistics(stats, chip_pixels(augmented.index_path), exact_percentiles=True)


def test_sampled_percentiles_are_close_and_the_same_every_time(monkeypatch):
    from patchwork.core.data import stats as stats_module

    monkeypatch.setattr(stats_module, "SAMPLE_SIZE", 20_000)
    rng = np.random.default_rng(3)
    chips = [rng.normal(100.0, 15.0, (1, 128, 128)).astype(np.float32) for _ in range(60)]  # 983,040 values
    runs = []
    for _ in range(2):
        stats = BandStatistics(1, np.float32)
        for chip in chips:
            stats.add(chip, np.ones(chip.shape[1:], bool))
        runs.append(stats.to_dicts()[0])
    assert runs[0] == runs[1]  # a seeded reservoir
    everything = np.concatenate([c.ravel() for c in chips]).astype(np.float64)
    assert runs[0]["mean"] == pytest.approx(everything.mean(), rel=1e-9)
    for key, q in (("p2", 2), ("p98", 98)):
        assert abs(runs[0][key] - np.percentile(everything, q)) < 0.5  # within a thirtieth of a standard deviation
