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

This module holds the base (Sample, Augmentation), the geometric ops, Compose and the shipped pipelines;
the radiometric ops are in `radiometric`, CutMix and MixUp in `mixing`.
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
from .kernels import below, flip_columns, flip_rows, seeded


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


def chip_seed(seed: int, chip_id: int, copy: int = 0, source: int = 0) -> int:
    """The seed of one augmented copy of one chip: independent streams for every (seed, chip, copy).

    `source` tells apart chips with the same id in several indexes read together (0, the first, adds nothing).
    """
    entropy = [int(seed), int(chip_id), int(copy)] + ([int(source)] if source else [])
    state = np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]
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
        return any(getattr(op, "needs_pool", False) for op in self.ops)

    def apply(self, sample, rng):
        """Apply the ops in order, each with its own generator drawn from `rng`."""
        if rng.random() >= self.p:
            return sample
        seeds = rng.integers(0, 2**63 - 1, len(self.ops))
        for op, seed in zip(self.ops, seeds):
            with seeded(int(seed)) as op_rng:
                sample = op.apply(sample, op_rng)
        return sample


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
