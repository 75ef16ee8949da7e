"""Augmentations that change values, not places.

Brightness, contrast, noise, band jitter, sun angle, dropout, haze and clouds (data/augment.py says what every
augmentation guarantees).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import PatchworkError
from .augment import Augmentation, Sample, _back, _draw, _probability, _range, _work, nodata_mask
from .kernels import lookup, lookup_levels, standard_normal


class Radiometric(Augmentation, base=True):
    """Base of ops that change values: subclasses implement `change(x, rng, invalid)` on float values."""

    def apply(self, sample, rng):
        """Change the image's values (labels untouched), nodata kept nodata."""
        # Without a declared nodata value, NaNs need no mask: arithmetic keeps them NaN.
        invalid = None if sample.nodata is None else nodata_mask(sample.image, sample.nodata)
        changed = self.change(_work(sample.image), rng, invalid)
        if changed is None:
            return sample
        return sample.replace(image=_back(changed, sample.image, invalid, sample.nodata))

    def change(self, x: np.ndarray, rng: np.random.Generator, invalid: np.ndarray | None) -> np.ndarray | None:
        """The changed float values of `x` (C, h, w), or None for no change; `invalid` marks nodata."""
        raise NotImplementedError


def _band_values(x: np.ndarray, rng: np.random.Generator, value, per_band: bool, dtype=None):
    """A draw from `value` for each band, shaped (C, 1, 1), or one for all bands: ready to broadcast on x."""
    dtype = np.dtype(dtype or x.dtype)
    if per_band:
        return np.asarray(_draw(rng, value, x.shape[0]), dtype=dtype).reshape(-1, 1, 1)
    return dtype.type(_draw(rng, value))


def _band_means(image: np.ndarray, invalid: np.ndarray | None) -> np.ndarray:
    """Each band's mean over its data pixels (0 for a band without data), float64 shaped (C, 1, 1)."""
    if invalid is not None:
        count = (~invalid).sum(axis=(1, 2))
        total = np.where(invalid, 0, image).sum(axis=(1, 2), dtype=np.float64)
        means = np.divide(total, count, out=np.zeros(len(total)), where=count > 0)
    elif np.issubdtype(image.dtype, np.integer) and image.dtype.itemsize <= 2:
        pixels = image.shape[1] * image.shape[2]
        info = np.iinfo(image.dtype)
        # An exact integer sum; 32 bits when no band can overflow them (twice as fast as 64).
        accumulator = np.int32 if pixels * max(info.max, -info.min) < 2**31 else np.int64
        means = image.sum(axis=(1, 2), dtype=accumulator) / pixels
    else:
        means = image.mean(axis=(1, 2), dtype=np.float64)
    return means.reshape(-1, 1, 1)


class Affine(Radiometric, base=True):
    """Base of ops mapping each band's values through x · scale + offset: subclasses draw the coefficients.

    An 8-bit chip goes through a table made by the same arithmetic on its 256 possible values (core/kernels.py):
    the same bytes as computing every pixel, several times faster.
    """

    def coefficients(self, sample: Sample, rng: np.random.Generator, invalid: np.ndarray | None, work: np.dtype):
        """(scale, offset) in the `work` dtype: numbers or one per band shaped (C, 1, 1); offset None adds nothing."""
        raise NotImplementedError

    def apply(self, sample, rng):
        """Map the image's values (labels untouched), nodata kept nodata, integers rounded and clipped."""
        image = sample.image
        invalid = None if sample.nodata is None else nodata_mask(image, sample.nodata)
        work = np.dtype(np.float64 if image.dtype == np.float64 else np.float32)
        scale, offset = self.coefficients(sample, rng, invalid, work)
        levels = lookup_levels(image.dtype)
        if levels is not None:  # one table per band, or one for all when the coefficients are the same
            mapped = self._mapped(levels.reshape(1, 1, 256), scale, offset, work)
            levels = np.broadcast_to(levels, mapped.shape)
            level_invalid = None if invalid is None else levels == sample.nodata
            tables = _back(mapped, levels, level_invalid, sample.nodata)
            return sample.replace(image=lookup(image, tables.reshape(-1, 256)))
        return sample.replace(image=_back(self._mapped(image, scale, offset, work), image, invalid, sample.nodata))

    @staticmethod
    def _mapped(values: np.ndarray, scale, offset, work: np.dtype) -> np.ndarray:
        mapped = np.multiply(values, scale, dtype=work)
        if offset is None:
            return mapped
        if mapped.shape != np.broadcast_shapes(mapped.shape, np.shape(offset)):
            return mapped + offset  # one table for all bands, an offset per band: a table per band
        mapped += offset
        return mapped


@dataclass
class FactorJitter(Affine, base=True):
    """Base of the ops scaling by a factor drawn from `factor`, per band or once for all bands."""

    factor: float | list[float] = field(default_factory=lambda: [0.9, 1.1])
    per_band: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        _range("factor", self.factor, low=0.0)


@dataclass
class BrightnessJitter(FactorJitter):
    """x · f, with f drawn from `factor` per band (or once for all bands)."""

    def coefficients(self, sample, rng, invalid, work):
        """A factor drawn from `factor`, no offset."""
        return _band_values(sample.image, rng, self.factor, self.per_band, work), None


@dataclass
class ContrastJitter(FactorJitter):
    """(x − mean) · f + mean per band, the mean taken over the band's data pixels."""

    def coefficients(self, sample, rng, invalid, work):
        """Stretch about each band's mean: scale f, offset mean · (1 − f)."""
        factor = _band_values(sample.image, rng, self.factor, self.per_band, work)
        means = _band_means(sample.image, invalid).astype(work)
        return factor, means * (1 - factor)


@dataclass
class GaussianNoise(Radiometric):
    """x + N(0, σ), σ in data units, drawn from `sigma` per band (or once)."""

    sigma: float | list[float] = 0.01
    per_band: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        _range("sigma", self.sigma, low=0.0)

    def change(self, x, rng, invalid):
        """Add Gaussian noise of standard deviation `sigma`."""
        sigma = _band_values(x, rng, self.sigma, self.per_band)
        noise = standard_normal(rng, x.shape, x.dtype)
        noise *= sigma
        x += noise
        return x


@dataclass
class SpeckleNoise(Radiometric):
    """x · (1 + N(0, σ)): multiplicative noise, as in radar images."""

    sigma: float | list[float] = 0.05
    seed: int | None = None

    def __post_init__(self) -> None:
        _range("sigma", self.sigma, low=0.0)

    def change(self, x, rng, invalid):
        """Multiply values by noise of mean 1 (radar speckle)."""
        s = _draw(rng, self.sigma)
        noise = standard_normal(rng, x.shape, x.dtype)
        noise *= x.dtype.type(s)
        noise += 1
        x *= noise
        return x


@dataclass
class BandJitter(Augmentation):
    """Shuffle the bands within each group: groups of interchangeable bands, by name or 0-based index.

    `groups` maps a group's name to its bands: band descriptions (names), or 0-based band indices (whole numbers or
    digit strings). Each call draws a permutation per group, in the groups' order; the label is untouched.
    """

    groups: dict = field(default_factory=dict)
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.groups, dict) or not all(isinstance(v, list) for v in self.groups.values()):
            raise PatchworkError(f"groups maps group names to lists of bands, got {self.groups!r}")

    def apply(self, sample, rng):
        """Permute each group's bands; no groups: the sample as it is."""
        if not self.groups:
            return sample
        image = sample.image.copy()
        for members in self.groups.values():
            idx = np.array([self._index(sample, band) for band in members], dtype=np.int64)
            image[idx] = sample.image[rng.permutation(idx)]
        return sample.replace(image=image)

    @staticmethod
    def _index(sample: Sample, band) -> int:
        if isinstance(band, (int, np.integer)) or (isinstance(band, str) and band.isdigit()):
            index = int(band)
        elif band in sample.band_names:
            index = sample.band_names.index(band)
        else:
            raise PatchworkError(f"BandJitter: no band named {band!r}; the chip's band names are "
                                 f"{list(sample.band_names) or 'none'} (use 0-based indices otherwise).")
        if not 0 <= index < sample.image.shape[0]:
            raise PatchworkError(f"BandJitter: band {index} does not exist in a {sample.image.shape[0]}-band chip.")
        return index


@dataclass
class SunAngleJitter(Affine):
    """x · cos(sza + Δ) / cos(sza): the scene as lit by a sun Δ degrees lower or higher.

    The solar zenith angle (degrees) comes from `solar_zenith_angle`, else from the chip's metadata
    (`solar_zenith_angle` or `sza_deg`); Δ is drawn from `delta_sza_deg`.
    """

    delta_sza_deg: float | list[float] = field(default_factory=lambda: [-5.0, 5.0])
    solar_zenith_angle: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        _range("delta_sza_deg", self.delta_sza_deg)

    def coefficients(self, sample, rng, invalid, work):
        """Scale by cos(sza + Δ) / cos(sza), no offset."""
        sza = self.solar_zenith_angle
        if sza is None:
            found = sample.attrs.get("solar_zenith_angle", sample.attrs.get("sza_deg"))
            if found is None:
                raise PatchworkError("SunAngleJitter needs the solar zenith angle: set solar_zenith_angle, or give the "
                                     "chips a solar_zenith_angle (or sza_deg) metadata item.")
            sza = float(found)
        if abs(np.cos(np.radians(sza))) < 1e-6:
            raise PatchworkError(f"SunAngleJitter: a solar zenith angle of {sza}° leaves no light to scale.")
        delta = _draw(rng, self.delta_sza_deg)
        return work.type(np.cos(np.radians(sza + delta)) / np.cos(np.radians(sza))), None


@dataclass
class BandDropout(Augmentation):
    """Each band is set to `fill` with probability p (a missing or saturated band); nodata pixels stay nodata."""

    p: float = 0.1
    fill: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        _probability("p", self.p)

    def apply(self, sample, rng):
        """Set some bands to `fill`, in the chip's dtype (rounded, clipped and kept off nodata like any change)."""
        image = sample.image
        dropped = rng.random(image.shape[0]) < self.p
        if not dropped.any():
            return sample
        fill = _back(_work(np.full(1, self.fill)), image[0, 0, :1], None, sample.nodata)[0]
        out = image.copy()
        out[dropped] = fill
        if sample.nodata is not None:
            invalid = nodata_mask(image, sample.nodata)
            if invalid is not None:
                np.copyto(out, image, where=invalid)
        return sample.replace(image=out)


@dataclass
class AtmosphericHaze(Radiometric):
    """x + I · w_b: additive haze, strongest in the shortest wavelength (Rayleigh, w ∝ λ^-4).

    `wavelengths` (nm, one per band) default to evenly spaced 450–850 nm, i.e. bands sorted by wavelength.
    """

    intensity: float | list[float] = field(default_factory=lambda: [0.0, 0.05])
    wavelengths: list[float] | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        _range("intensity", self.intensity, low=0.0)
        if self.wavelengths is not None and (not self.wavelengths or min(self.wavelengths) <= 0):
            raise PatchworkError(f"wavelengths are positive numbers (nm), one per band; got {self.wavelengths!r}")

    def change(self, x, rng, invalid):
        """Add haze that is strongest in the shortest wavelengths."""
        amount = _draw(rng, self.intensity)
        if amount == 0:
            return None
        bands = x.shape[0]
        wavelengths = np.linspace(450, 850, bands) if self.wavelengths is None else np.asarray(self.wavelengths)
        if len(wavelengths) != bands:
            raise PatchworkError(f"AtmosphericHaze has {len(wavelengths)} wavelengths for a {bands}-band chip.")
        weights = wavelengths ** -4.0
        x += np.asarray(amount * weights / weights.max(), dtype=x.dtype).reshape(-1, 1, 1)
        return x


def smooth_noise(rng: np.random.Generator, height: int, width: int, sigma: float) -> np.ndarray:
    """N(0, 1) noise blurred by a Gaussian of `sigma` px (in the Fourier domain), as float64 (H, W)."""
    noise = rng.standard_normal((height, width))
    if sigma <= 0:
        return noise
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    kernel = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))
    return np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=(height, width))


@dataclass
class SimulatedClouds(Radiometric):
    """Blend toward cloud brightness under a smooth random mask covering `coverage` of the chip.

    brightness: the cloud's value in data units; default 1.0 for reflectance (data ≤ 1), else the
    98th percentile of the chip's data.
    """

    coverage: float | list[float] = field(default_factory=lambda: [0.0, 0.3])
    feather: float = 5.0
    brightness: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        _range("coverage", self.coverage, low=0.0, high=1.0)
        if not isinstance(self.feather, (int, float)) or self.feather < 0:
            raise PatchworkError(f"feather is a non-negative number of pixels, got {self.feather!r}")

    def change(self, x, rng, invalid):
        """Blend toward cloud brightness under a smooth random mask."""
        cover = _draw(rng, self.coverage)
        if cover == 0:
            return None
        field_ = smooth_noise(rng, x.shape[1], x.shape[2], self.feather)
        threshold = np.quantile(field_, 1.0 - cover)
        alpha = np.clip((field_ - threshold) / (field_.max() - threshold + 1e-12), 0.0, 1.0).astype(x.dtype)
        cloud = self.brightness
        if cloud is None:
            data = x if invalid is None else x[~invalid]
            cloud = 1.0 if data.size == 0 or np.nanmax(data) <= 1 else float(np.nanpercentile(data, 98))
        x *= 1 - alpha
        x += alpha * x.dtype.type(cloud)
        return x
