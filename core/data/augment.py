"""Augmentations for georeferenced, multispectral chips: geo-exact, label-aware, reproducible.

Every op takes a chip (C, H, W) of any band count and dtype, with an optional label (H, W), geotransform
and nodata, and returns a `Sample`:

    aug = from_config(json.load(open("resources/augmentations/default.json")))
    out = aug(image, label=label, geotransform=gt, nodata=-9999, seed=i)
    out.image, out.label, out.geotransform

- Geometric ops (flip, quarter turn, crop, shift) move label and georeferencing with the pixels; the
  geotransform maps each output pixel onto the ground of the source pixel it holds (a quarter turn
  gives a rotated geotransform, which GeoTIFF stores as it is).
- Radiometric ops change the image only; labels are never blended by them. Integer images are
  rounded and clipped to their dtype, never wrapped; nodata stays nodata and data never becomes nodata.
- CutMix pastes the label rectangle with the image rectangle; MixUp blends one-hot labels with the
  image's weight (the label becomes K float bands).
- Randomness comes only from a generator made from the call's `seed` (or the op's own): the same
  seed gives the same result, no global state is touched.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import Configurable, from_config, stamped
from ..errors import PatchworkError
from ..geometry import GeoTransform, compose_geotransform
from ..io.raster import same_crs
from .kernels import below, flip_columns, flip_rows, lookup, lookup_levels, seeded, standard_normal


@dataclass(frozen=True)
class Sample:
    """A chip and what travels with it."""

    image: np.ndarray  # (C, H, W)
    label: np.ndarray | None = None  # (H, W) class ids; (K, H, W) float class weights after MixUp
    geotransform: GeoTransform | None = None
    nodata: float | None = None
    label_nodata: float | None = None
    crs_wkt: str = ""
    band_names: tuple[str, ...] = ()  # the chip's band descriptions (BandJitter groups bands by name)
    attrs: dict = dataclasses.field(default_factory=dict)  # the chip file's metadata (e.g. solar_zenith_angle)

    def replace(self, **changes: Any) -> Sample:
        """A copy with some fields changed (image, label, geotransform, …)."""
        unknown = changes.keys() - _SAMPLE_FIELDS
        if unknown:
            raise TypeError(f"Sample has no field {', '.join(sorted(unknown))}")
        # A third of dataclasses.replace's cost, which shows on the cheapest ops (a crop is a view).
        copy = object.__new__(Sample)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy

    def __iter__(self):
        """`image, label, geotransform = aug(...)`."""
        return iter((self.image, self.label, self.geotransform))

    @property
    def height(self) -> int:
        """Rows of the chip."""
        return self.image.shape[-2]

    @property
    def width(self) -> int:
        """Columns of the chip."""
        return self.image.shape[-1]


_SAMPLE_FIELDS = frozenset(f.name for f in dataclasses.fields(Sample))


def chip_seed(seed: int, chip_id: int, copy: int = 0) -> int:
    """The seed of one augmented copy of one chip: independent streams for every (seed, chip, copy)."""
    state = np.random.SeedSequence([int(seed), int(chip_id), int(copy)]).generate_state(1, np.uint64)[0]
    return int(state) >> 1  # 63 bits: fits the index's Integer64 field


# -- parameter checks (at construction) ---------------------------------------------------------

def _probability(name: str, p: float) -> None:
    if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise PatchworkError(f"{name} is a probability between 0 and 1, got {p!r}")


def _range(name: str, value, low: float | None = None, high: float | None = None) -> None:
    """A number or a [lo, hi] range with lo <= hi, inside [low, high] when given."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(values) not in (1, 2) or not all(isinstance(v, (int, float)) for v in values):
        raise PatchworkError(f"{name} is a number or a [lo, hi] range, got {value!r}")
    if len(values) == 2 and values[0] > values[1]:
        raise PatchworkError(f"{name} range needs lo <= hi, got {value!r}")
    if low is not None and min(values) < low:
        raise PatchworkError(f"{name} must be at least {low:g} (non-negative), got {value!r}")
    if high is not None and max(values) > high:
        raise PatchworkError(f"{name} must be at most {high:g}, got {value!r}")


def _draw(rng: np.random.Generator, value, size: int | None = None) -> np.ndarray | float:
    """A range is drawn uniformly; a single number is used as it is (and draws nothing)."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return rng.uniform(value[0], value[1], size)
    value = value[0] if isinstance(value, (list, tuple)) else value
    return float(value) if size is None else np.full(size, float(value))


def _pair(name: str, value) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise PatchworkError(f"{name} is a whole number of pixels or [rows, cols], got {value!r}")
    return int(pair[0]), int(pair[1])


# -- the op base ---------------------------------------------------------------------------------

class Augmentation(Configurable, base=True):
    """Base of every op: `op(image, label=..., geotransform=..., nodata=..., seed=...)` → Sample."""

    seed: int | None

    def __call__(self, image: np.ndarray | Sample, label: np.ndarray | None = None,
                 geotransform: GeoTransform | None = None, *, nodata: float | None = None,
                 label_nodata: float | None = None, crs_wkt: str = "", seed: int | None = None) -> Sample:
        """Augment a chip (a Sample, or an image and optional label); the same seed gives the same result."""
        if isinstance(image, Sample):
            sample = image
        else:
            image = np.asarray(image)
            if image.ndim != 3:
                raise PatchworkError(f"an image chip is (bands, rows, cols); got shape {image.shape}")
            if label is not None and np.shape(label)[-2:] != image.shape[-2:]:
                raise PatchworkError(f"the label {np.shape(label)} does not cover the image {image.shape}")
            sample = Sample(image, None if label is None else np.asarray(label),
                            None if geotransform is None else tuple(geotransform), nodata, label_nodata, crs_wkt)
        seed = self.seed if seed is None else seed
        if seed is None:
            return self.apply(sample, np.random.default_rng())  # no seed: fresh entropy, as numpy does
        with seeded(seed) as rng:
            return self.apply(sample, rng)

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        """The augmented sample (subclasses); `rng` is this call's generator."""
        raise NotImplementedError


# -- geometric ops: pixels, label and georeferencing move together ------------------------------

def _moved(sample: Sample, move, pixel_map: GeoTransform) -> Sample:
    """Move image and label with `move` (on the last two axes) and the geotransform with `pixel_map`.

    Flips and turns make new contiguous arrays (PyTorch cannot take negative strides); a crop stays a
    view: no op writes into its input.
    """
    label = None if sample.label is None else move(sample.label)
    gt = None if sample.geotransform is None else compose_geotransform(sample.geotransform, pixel_map)
    return sample.replace(image=move(sample.image), label=label, geotransform=gt)


@dataclass
class RandomFlip(Augmentation):
    """Mirror left–right with probability p_horizontal, then top–bottom with p_vertical."""

    p_horizontal: float = 0.5
    p_vertical: float = 0.5
    seed: int | None = None

    def __post_init__(self) -> None:
        _probability("p_horizontal", self.p_horizontal)
        _probability("p_vertical", self.p_vertical)

    def apply(self, sample, rng):
        """Flip image and label, and move the geotransform so every pixel keeps its place on the ground."""
        flip_x, flip_y = rng.random() < self.p_horizontal, rng.random() < self.p_vertical
        if flip_x:
            sample = _moved(sample, flip_columns, (sample.width, -1, 0, 0, 0, 1))
        if flip_y:
            sample = _moved(sample, flip_rows, (0, 1, 0, sample.height, 0, -1))
        return sample


@dataclass
class RandomRotate90(Augmentation):
    """With probability p, turn by 90°, 180° or 270° counter-clockwise (equally likely)."""

    p: float = 0.75
    seed: int | None = None

    def __post_init__(self) -> None:
        _probability("p", self.p)

    def apply(self, sample, rng):
        """Rotate image and label by quarter turns, the geotransform with them."""
        if rng.random() >= self.p:
            return sample
        k = 1 + below(rng, 3)
        h, w = sample.height, sample.width
        # Where output corner (col', row') comes from in the source, per quarter turn.
        pixel_map = {1: (w, 0, -1, 0, 1, 0), 2: (w, -1, 0, h, 0, -1), 3: (0, 0, 1, h, -1, 0)}[k]
        return _moved(sample, lambda a: np.ascontiguousarray(np.rot90(a, k, axes=(-2, -1))), pixel_map)


@dataclass
class RandomCrop(Augmentation):
    """A random window of `size` px (one number, or [rows, cols]) inside the chip."""

    size: int | list[int] = 128
    seed: int | None = None

    def __post_init__(self) -> None:
        rows, cols = _pair("size", self.size)
        if rows <= 0 or cols <= 0:
            raise PatchworkError(f"size must be positive, got {self.size!r}")

    def apply(self, sample, rng):
        """Cut a window of the chip, its geotransform shifted to it."""
        rows, cols = _pair("size", self.size)
        if rows > sample.height or cols > sample.width:
            raise PatchworkError(f"RandomCrop size {rows}x{cols} does not fit in a {sample.height}x{sample.width} "
                                 "chip; use a smaller size.")
        top = below(rng, sample.height - rows + 1)
        left = below(rng, sample.width - cols + 1)
        return _moved(sample, lambda a: a[..., top : top + rows, left : left + cols], (left, 1, 0, top, 0, 1))


def _fill_for(dtype: np.dtype, nodata: float | None, label: bool = False) -> float:
    if nodata is not None:
        return nodata
    if np.issubdtype(dtype, np.floating):
        return float("nan")
    return int(np.iinfo(dtype).max) if label else 0


@dataclass
class RandomShift(Augmentation):
    """Move the chip's content by up to max_shift px (one number, or [rows, cols]); what comes in is nodata.

    The georeferencing moves with the content, so every pixel still sits on its ground.
    """

    max_shift: int | list[int] = 16
    seed: int | None = None

    def __post_init__(self) -> None:
        rows, cols = _pair("max_shift", self.max_shift)
        if rows < 0 or cols < 0:
            raise PatchworkError(f"max_shift must be non-negative, got {self.max_shift!r}")

    def apply(self, sample, rng):
        """Move the chip's content by whole pixels, filling the uncovered part with nodata."""
        max_dy, max_dx = _pair("max_shift", self.max_shift)
        dy = below(rng, 2 * max_dy + 1) - max_dy if max_dy else 0
        dx = below(rng, 2 * max_dx + 1) - max_dx if max_dx else 0
        if dy == 0 and dx == 0:
            return sample
        h, w = sample.height, sample.width

        def shift(a: np.ndarray, fill: float) -> np.ndarray:
            out = np.full(a.shape, fill, dtype=a.dtype)  # out[r, c] = a[r + dy, c + dx]
            rows_out, rows_in = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
            cols_out, cols_in = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
            out[..., rows_out, cols_out] = a[..., rows_in, cols_in]
            return out

        nodata = _fill_for(sample.image.dtype, sample.nodata)
        label, label_nodata = sample.label, sample.label_nodata
        if label is not None:
            label_nodata = _fill_for(label.dtype, label_nodata, label=True)
            label = shift(label, label_nodata)
        gt = None if sample.geotransform is None else compose_geotransform(sample.geotransform, (dx, 1, 0, dy, 0, 1))
        return sample.replace(image=shift(sample.image, nodata), nodata=nodata, label=label,
                              label_nodata=label_nodata, geotransform=gt)


# -- radiometric ops: the image changes, labels never ---------------------------------------------

def nodata_mask(image: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """Element-wise nodata mask, or None when every value is data."""
    invalid = None
    if nodata is not None:
        invalid = np.isnan(image) if np.isnan(nodata) else image == nodata
    elif np.issubdtype(image.dtype, np.floating):
        invalid = np.isnan(image)
    return invalid if invalid is not None and invalid.any() else None


def _work(image: np.ndarray) -> np.ndarray:
    """A float copy to compute in: float64 stays float64; everything else is float32 (exact up to 2^24)."""
    return image.astype(np.float64 if image.dtype == np.float64 else np.float32)


def _back(values: np.ndarray, like: np.ndarray, invalid: np.ndarray | None, nodata: float | None) -> np.ndarray:
    """Cast computed values back to the chip's dtype: integers rounded and clipped; nodata restored.

    `values` is a float array the op owns: it is rounded and clipped in place.
    """
    dtype = like.dtype
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        np.rint(values, out=values)
        np.maximum(values, info.min, out=values)  # not np.clip: 50x slower on numpy 1.24
        np.minimum(values, info.max, out=values)
        out = values.astype(dtype)
    else:
        out = values.astype(dtype, copy=False)
    if nodata is not None and not np.isnan(nodata):
        hit = out == nodata  # data that landed on the nodata value is moved one step off it
        if invalid is not None:
            hit &= ~invalid
        if hit.any():
            if np.issubdtype(dtype, np.integer):
                out[hit] = nodata + 1 if nodata < np.iinfo(dtype).max else nodata - 1
            else:
                out[hit] = np.nextafter(dtype.type(nodata), dtype.type(np.inf))
    if invalid is not None:
        out[invalid] = like[invalid]
    return out


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


# -- mixing ops: another chip (a donor from the pool) comes in -----------------------------------

def _signature(sample: Sample) -> tuple:
    gt = sample.geotransform
    if gt is None:
        return sample.image.shape, None
    # Pixel size along each axis, whatever the flips and quarter turns did to the geotransform.
    sizes = sorted((round(float(np.hypot(gt[1], gt[4])), 9), round(float(np.hypot(gt[2], gt[5])), 9)))
    return sample.image.shape, tuple(sizes)


def check_donor(sample: Sample, donor: Sample, op: str) -> None:
    """A donor must have the chip's shape and, when both are georeferenced, its CRS and pixel size."""
    (shape_a, res_a), (shape_b, res_b) = _signature(sample), _signature(donor)
    if shape_a != shape_b:
        raise PatchworkError(f"{op}: the donor chip is {shape_b}, the chip {shape_a}; donors must have the same "
                             "bands and size (sample them with the same CHIP_SIZE from the same raster).")
    if res_a and res_b and res_a != res_b:
        raise PatchworkError(f"{op}: the donor's pixel size {res_b} differs from the chip's {res_a}.")
    if sample.crs_wkt and donor.crs_wkt and not same_crs(sample.crs_wkt, donor.crs_wkt):
        raise PatchworkError(f"{op}: the donor chip is in another CRS than the chip.")


def _check_pool(pool: Sequence[Sample] | None, op: str) -> None:
    """Donors must agree with each other; checked when the op is built (cheap for a lazy pool)."""
    if pool is None:
        return
    check = getattr(pool, "check", None)
    if check is not None:  # a lazy pool checks from its own metadata, without reading every chip
        check(op)
        return
    for donor in pool[1:]:
        check_donor(pool[0], donor, op)


class Mixing(Augmentation, base=True):
    """Base of ops that take a donor chip from `pool`, a runtime field (not part of the config)."""

    pool: Sequence[Sample] | None

    def with_pool(self, pool: Sequence[Sample]) -> Mixing:
        """This op drawing its donor chips from `pool`."""
        _check_pool(pool, type(self).__name__)
        return dataclasses.replace(self, pool=pool)

    def donor(self, sample: Sample, rng: np.random.Generator) -> Sample | None:
        """A donor chip for `sample` from the pool (same CRS and shape), or None when there is none."""
        if not self.pool:
            return None
        donor = self.pool[below(rng, len(self.pool))]
        check_donor(sample, donor, type(self).__name__)
        return donor


def _donor_image(sample: Sample, donor: Sample) -> np.ndarray:
    """The donor's image in the chip's dtype, its nodata turned into the chip's nodata."""
    image = donor.image.astype(sample.image.dtype, copy=False)
    invalid = nodata_mask(donor.image, donor.nodata)
    if invalid is not None:
        image = image.copy()
        image[invalid] = _fill_for(sample.image.dtype, sample.nodata)
    return image


@dataclass
class CutMix(Mixing):
    """With probability p, paste a random rectangle of a donor chip — image and label — at the same place."""

    p: float = 0.5
    seed: int | None = None
    pool: Sequence[Sample] | None = field(default=None, repr=False, metadata={"runtime": True})

    def __post_init__(self) -> None:
        _probability("p", self.p)
        _check_pool(self.pool, "CutMix")

    def apply(self, sample, rng):
        """Paste a rectangle of a donor chip (and its labels) into the chip."""
        if rng.random() >= self.p:
            return sample
        donor = self.donor(sample, rng)
        if donor is None:
            return sample
        h, w = sample.height, sample.width
        cut_h, cut_w = 1 + below(rng, h), 1 + below(rng, w)
        top, left = below(rng, h - cut_h + 1), below(rng, w - cut_w + 1)
        box = (..., slice(top, top + cut_h), slice(left, left + cut_w))
        image = sample.image.copy()
        image[box] = _donor_image(sample, donor)[box]
        nodata = sample.nodata
        if nodata is None and nodata_mask(donor.image, donor.nodata) is not None:  # the donor brings nodata in
            nodata = _fill_for(sample.image.dtype, None)
        label = sample.label
        if label is not None:
            if donor.label is None:
                raise PatchworkError("CutMix: the chip has a label and the donor has none; give donors labels.")
            label = label.copy()
            label[box] = donor.label.astype(label.dtype, copy=False)[box]
        return sample.replace(image=image, label=label, nodata=nodata)


def one_hot(label: np.ndarray, n_classes: int, nodata: float | None) -> np.ndarray:
    """(H, W) class ids → (K, H, W) float32; already-soft (K, H, W) labels pass through; nodata → NaN."""
    if label.ndim == 3:
        return label.astype(np.float32, copy=False)
    out = (label[None] == np.arange(n_classes).reshape(-1, 1, 1)).astype(np.float32)
    if nodata is not None:
        out[:, label == nodata] = np.nan
    return out


@dataclass
class MixUp(Mixing):
    """With probability p, blend with a donor chip: λ·chip + (1 − λ)·donor, λ ~ Beta(alpha, alpha).

    Labels are blended with the same λ as one-hot class weights (n_classes bands, float32, NaN where
    either label is nodata). A pixel that is nodata in either image is nodata.
    """

    alpha: float = 0.4
    n_classes: int | None = None
    p: float = 1.0
    seed: int | None = None
    pool: Sequence[Sample] | None = field(default=None, repr=False, metadata={"runtime": True})

    def __post_init__(self) -> None:
        _probability("p", self.p)
        if not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            raise PatchworkError(f"alpha must be positive, got {self.alpha!r}")
        if self.n_classes is not None and (not isinstance(self.n_classes, int) or self.n_classes < 1):
            raise PatchworkError(f"n_classes must be a positive whole number, got {self.n_classes!r}")
        _check_pool(self.pool, "MixUp")

    def apply(self, sample, rng):
        """Blend the chip with a donor chip, labels as class weights."""
        if rng.random() >= self.p:
            return sample
        donor = self.donor(sample, rng)
        if donor is None:
            return sample
        lam = float(rng.beta(self.alpha, self.alpha))
        invalid_a, invalid_b = nodata_mask(sample.image, sample.nodata), nodata_mask(donor.image, donor.nodata)
        invalid = invalid_a if invalid_b is None else (invalid_b if invalid_a is None else invalid_a | invalid_b)
        x = _work(sample.image) * lam + _work(donor.image) * (1 - lam)
        nodata = sample.nodata if invalid is None or sample.nodata is not None else _fill_for(sample.image.dtype, None)
        like = sample.image if invalid is None else np.where(invalid, nodata, sample.image).astype(sample.image.dtype)
        image = _back(x, like, invalid, nodata)
        label, label_nodata = sample.label, sample.label_nodata
        if label is not None:
            if donor.label is None:
                raise PatchworkError("MixUp: the chip has a label and the donor has none; give donors labels.")
            if self.n_classes is None and label.ndim == 2:
                raise PatchworkError("MixUp: set n_classes to blend class labels (they become one weight per class).")
            k = self.n_classes or label.shape[0]
            label = lam * one_hot(label, k, sample.label_nodata) + (1 - lam) * one_hot(donor.label, k,
                                                                                       donor.label_nodata)
            label_nodata = float("nan")
        return sample.replace(image=image, nodata=nodata, label=label, label_nodata=label_nodata)


# -- Compose ---------------------------------------------------------------------------------------

@dataclass
class Compose(Augmentation):
    """Apply `ops` in order, with probability p. Each op gets its own generator, drawn from this call's."""

    ops: list = field(default_factory=list)
    p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        _probability("p", self.p)
        ops = [from_config(op) if isinstance(op, dict) else op for op in self.ops]
        bad = [type(op).__name__ for op in ops if not isinstance(op, Augmentation)]
        if bad:
            raise PatchworkError(f"Compose takes augmentations; got {', '.join(bad)}")
        self.ops = ops

    def to_config(self) -> dict[str, Any]:
        """The pipeline's config: its ops' configs in order."""
        return stamped("Compose", {"ops": [op.to_config() for op in self.ops], "p": self.p, "seed": self.seed})

    def with_pool(self, pool: Sequence[Sample]) -> Compose:
        """The same pipeline with `pool` as the donors of its CutMix and MixUp ops."""
        ops = [op.with_pool(pool) if hasattr(op, "with_pool") else op for op in self.ops]
        return dataclasses.replace(self, ops=ops)

    @property
    def needs_pool(self) -> bool:
        """Whether a CutMix or MixUp op still waits for its donors."""
        return any((isinstance(op, Mixing) and op.pool is None) or (isinstance(op, Compose) and op.needs_pool)
                   for op in self.ops)

    def apply(self, sample, rng):
        """Apply the ops in order, each with its own generator drawn from `rng`."""
        if rng.random() >= self.p:
            return sample
        seeds = rng.integers(0, 2**63 - 1, len(self.ops))
        for op, seed in zip(self.ops, seeds):
            with seeded(int(seed)) as op_rng:
                sample = op.apply(sample, op_rng)
        return sample


AUGMENTATIONS = (RandomFlip, RandomRotate90, RandomCrop, RandomShift, BrightnessJitter, ContrastJitter, GaussianNoise,
                 SpeckleNoise, BandDropout, BandJitter, SunAngleJitter, AtmosphericHaze, SimulatedClouds, CutMix,
                 MixUp, Compose)


PRESETS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "resources",
                       "augmentations")


def preset_names() -> list[str]:
    """Names of the shipped augmentation pipelines (resources/augmentations/*.json)."""
    return sorted(name[:-5] for name in os.listdir(PRESETS) if name.endswith(".json"))


def load_pipeline(text_or_path: str) -> Augmentation:
    """A pipeline from its JSON config.

    Args:
        text_or_path: The config as JSON text, the path of a .json file, or a preset name (see `preset_names`).

    Returns:
        The augmentation it describes.

    Raises:
        PatchworkError: Text that is neither JSON, a file nor a preset, or a config naming an unknown op.
    """
    text = text_or_path.strip()
    if text in preset_names():
        text = os.path.join(PRESETS, f"{text}.json")
    if not text.startswith("{"):
        if not os.path.isfile(text):
            raise PatchworkError(f"PIPELINE: '{text}' is neither JSON, an existing file nor a preset "
                                 f"({', '.join(preset_names())}). Give the JSON config "
                                 '({"class": "Compose", "config": {"ops": [...]}}), a .json file or a preset name.')
        with open(text, encoding="utf-8") as fh:
            text = fh.read()
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PatchworkError(f"PIPELINE: not valid JSON ({exc}).") from exc
    op = from_config(config)
    if not isinstance(op, Augmentation):
        raise PatchworkError(f"PIPELINE: a {type(op).__name__} is not an augmentation.")
    return op
