"""The augmentation kernels: the fast paths (OpenCV flips, StringZilla lookups, 8-bit tables) give the same bytes
as plain numpy, the Box–Muller noise is Gaussian, and seeded generators are reproducible and independent."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import BandDropout, BrightnessJitter, ContrastJitter, GaussianNoise, SunAngleJitter
from patchwork.core.data import kernels, radiometric


@pytest.fixture(scope="module")
def naip_chip(naip_path) -> np.ndarray:
    """A real 4-band uint8 NAIP chip."""
    return gdal.Open(naip_path).ReadAsArray(0, 0, 300, 200)


@pytest.fixture(scope="module")
def opencv():
    """cv2 imported, as a training script would; the environment it rewrites is put back for later qgis_process runs."""
    saved = dict(os.environ)
    cv2 = pytest.importorskip("cv2")
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)
    return cv2


def _arrays(naip_chip, s2_path):
    s2 = gdal.Open(s2_path).ReadAsArray(0, 0, 120, 90)
    wide = np.arange(2 * 5 * 600, dtype=np.float32).reshape(2, 5, 600)  # wider than OpenCV's 512 channels
    return [naip_chip, naip_chip[0], naip_chip[:, 10:70, 5:95], s2, s2.astype(np.float32), s2.astype(np.int16),
            s2.astype(np.uint32), naip_chip.view(np.int8), wide]


def test_flips_give_numpys_bytes_with_and_without_opencv(naip_chip, s2_path, monkeypatch, opencv):
    assert kernels.opencv() is opencv
    for array in _arrays(naip_chip, s2_path):
        for flip, expected in ((kernels.flip_columns, array[..., ::-1]), (kernels.flip_rows, array[..., ::-1, :])):
            with_opencv = flip(array)
            with monkeypatch.context() as plain:
                plain.setattr(kernels, "opencv", lambda: None)
                without = flip(array)
            for out in (with_opencv, without):
                assert out.dtype == array.dtype and out.flags.c_contiguous and not np.shares_memory(out, array)
                np.testing.assert_array_equal(out, expected)


def test_lookup_tables_agree_with_indexing(naip_chip, monkeypatch):
    pytest.importorskip("stringzilla")  # the fast path, and Python's bytes.translate below
    rng = np.random.default_rng(0)
    for image in (naip_chip, naip_chip[:, 5:60, 7:90], naip_chip.view(np.int8)):
        for tables in (rng.integers(0, 256, (image.shape[0], 256), dtype=np.uint8),
                       rng.integers(0, 256, (1, 256), dtype=np.uint8)):
            index = image.view(np.uint8).astype(np.intp)
            expected = np.stack([tables[b if len(tables) > 1 else 0][index[b]] for b in range(image.shape[0])])
            np.testing.assert_array_equal(kernels.lookup(image, tables), expected)
            with monkeypatch.context() as plain:
                plain.setattr(kernels, "_stringzilla", lambda: None)
                np.testing.assert_array_equal(kernels.lookup(image, tables), expected)


@pytest.mark.parametrize("op", [BrightnessJitter([0.3, 1.9]), BrightnessJitter([0.5, 1.5], per_band=False),
                                ContrastJitter([0.2, 2.5]), ContrastJitter([0.5, 1.5], per_band=False),
                                SunAngleJitter([-20.0, 20.0], solar_zenith_angle=40.0)],
                         ids=lambda op: type(op).__name__)
@pytest.mark.parametrize("nodata", [None, 0, 255])
def test_8bit_tables_give_the_bytes_of_computing_every_pixel(op, nodata, naip_chip, monkeypatch):
    image = naip_chip.copy()
    if nodata is not None:
        image[:, :25] = nodata  # a collar, as at a scene's edge
        image[2, 100:110, 50:60] = nodata
    for seed in range(6):
        tabled = op(image, nodata=nodata, seed=seed).image
        with monkeypatch.context() as per_pixel:
            per_pixel.setattr(radiometric, "lookup_levels", lambda dtype: None)
            computed = op(image, nodata=nodata, seed=seed).image
        assert tabled.dtype == np.uint8
        np.testing.assert_array_equal(tabled, computed)
        if nodata is not None:
            np.testing.assert_array_equal(tabled == nodata, image == nodata)  # nodata kept, no data lost to it


def test_contrast_stretches_about_each_bands_data_mean(naip_chip):
    image = naip_chip.copy()
    image[:, :30] = 0  # nodata, left out of the mean
    out = ContrastJitter(1.5)(image, nodata=0, seed=0).image.astype(np.float64)
    data = image != 0
    for band in range(image.shape[0]):
        mean = image[band][data[band]].mean()
        expected = np.clip(np.rint((image[band] - mean) * 1.5 + mean), 0, 255)
        changed = data[band] & (expected != 0)
        assert np.abs(out[band][changed] - expected[changed]).max() <= 1  # float32 rounding at .5 only


def test_box_muller_noise_is_standard_normal_and_reproducible():
    stats = pytest.importorskip("scipy.stats")
    with kernels.seeded(7) as rng:
        noise = kernels.standard_normal(rng, (3, 301, 333))
    with kernels.seeded(7) as rng:
        again = kernels.standard_normal(rng, (3, 301, 333))
    np.testing.assert_array_equal(noise, again)
    assert noise.dtype == np.float32 and noise.shape == (3, 301, 333)  # an odd count of values
    assert abs(noise.mean()) < 0.005 and abs(noise.std() - 1) < 0.005
    assert stats.kstest(noise.ravel()[::7], "norm").pvalue > 1e-3
    halves = noise.ravel()
    assert abs(np.corrcoef(halves[: len(halves) // 2], halves[len(halves) // 2: 2 * (len(halves) // 2)])[0, 1]) < 0.01
    with kernels.seeded(7) as rng:
        wide = kernels.standard_normal(rng, (3, 301, 333), np.float64)
    assert wide.dtype == np.float64


def test_seeded_generators_are_reproducible_independent_and_per_thread():
    def draws(seed):
        with kernels.seeded(seed) as rng:
            return rng.random(5).tolist()

    assert draws(3) == draws(3) and draws(3) != draws(4)
    assert len({tuple(draws(s)) for s in range(200)}) == 200
    with kernels.seeded(1) as outer:
        first = outer.random()
        inner = draws(2)  # a nested generator (Compose in Compose) leaves the outer stream alone
        second = outer.random()
    assert [first, second] == draws(1)[:2] and inner == draws(2)

    results = {}

    def worker(name):
        results[name] = [draws(s) for s in range(100)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    serial = [draws(s) for s in range(100)]
    assert all(result == serial for result in results.values())


def test_band_dropout_works_in_the_chips_dtype():
    big = np.full((3, 4, 4), 2**53 + 1, np.int64)  # not a float32: the old float round trip lost it
    out = BandDropout(p=0.5, fill=7)(big, seed=1).image
    assert out.dtype == np.int64 and set(np.unique(out)) <= {7, 2**53 + 1} and (out == 7).any()
    image = np.array([[[0, 5, 9]], [[0, 6, 8]]], np.uint8)  # 0 is nodata
    for seed in range(20):
        out = BandDropout(p=0.5, fill=0)(image, nodata=0, seed=seed).image
        assert (out[:, 0, 0] == 0).all()  # nodata stays nodata
        dropped = (out[:, 0, 1:] != image[:, 0, 1:]).any(axis=1)
        assert (out[dropped, 0, 1:] == 1).all()  # a fill on the nodata value moves one step off it
        np.testing.assert_array_equal(out[~dropped], image[~dropped])


def test_noise_on_8bit_chips_is_rounded_and_clipped(naip_chip):
    image = naip_chip.copy()
    image[:, :30] = 0
    out = GaussianNoise(40.0)(image, nodata=0, seed=3).image
    assert out.dtype == np.uint8 and (out == 255).any() and ((out == 0) == (image == 0)).all()
    diff = out.astype(np.int16) - image
    inside = (image > 60) & (image < 190)
    assert 35 < diff[inside].std() < 45
