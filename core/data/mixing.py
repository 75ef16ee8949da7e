"""Augmentations that mix two chips.

CutMix pastes a donor's patch, MixUp blends a donor in; donors come from the same dataset (`with_pool`) and must
lie on the same kind of grid.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import PatchworkError
from ..io.raster import same_crs
from .augment import Augmentation, Sample, _back, _fill_for, _probability, _work, nodata_mask
from .kernels import below

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

    @property
    def needs_pool(self) -> bool:
        """Whether the op still waits for its donors."""
        return self.pool is None

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
