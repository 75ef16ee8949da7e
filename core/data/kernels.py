"""Array kernels of the augmentations: seeded generators, Gaussian noise, flips and 8-bit lookup tables.

Flips use OpenCV's kernels when the process has already imported `cv2` (albumentations and most training scripts
do), numpy's otherwise; 8-bit lookups use StringZilla when it is installed, Python's bytes.translate otherwise. The
bytes are the same either way (tests compare both). Patchwork never imports cv2 itself: importing OpenCV rewrites
process-wide environment variables (LD_LIBRARY_PATH, and Qt's plugin path in its non-headless builds), which a QGIS
plugin must not do.
"""
from __future__ import annotations

import functools
import sys
import threading

import numpy as np

# dtypes OpenCV's flip takes (CV_8U … CV_64F); others are flipped by numpy.
_OPENCV_DEPTHS = frozenset(np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32,
                                                  np.float64))


def opencv():
    """The cv2 module when the process has imported it, else None."""
    return sys.modules.get("cv2")


# -- seeded generators ------------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1
_pool = threading.local()


class seeded:  # noqa: N801 - used as a context manager, like `open`
    """`with seeded(seed) as rng:` a numpy Generator (SFC64) whose draws depend only on `seed`.

    numpy's own seeding (SeedSequence, a new bit generator per call) costs ~10 µs, as much as flipping a chip; an
    augmentation seeds one generator per chip and op. So each thread keeps a few SFC64 bit generators and seeds
    them as SFC64's author does from one 64-bit integer: the three state words set to it, the counter to 1, then
    12 outputs discarded. The generator must not outlive the `with` block.
    """

    __slots__ = ("_bit_generator", "_seed")

    def __init__(self, seed: int) -> None:
        self._seed = int(seed) & _MASK64

    def __enter__(self) -> np.random.Generator:
        free = _pool.__dict__.setdefault("free", [])
        bit_generator = free.pop() if free else np.random.SFC64(0)
        seed = self._seed
        bit_generator.state = {"bit_generator": "SFC64", "state": {"state": [seed, seed, seed, 1]}, "has_uint32": 0,
                               "uinteger": 0}
        bit_generator.random_raw(12)
        self._bit_generator = bit_generator
        return np.random.Generator(bit_generator)

    def __exit__(self, *exc) -> None:
        _pool.free.append(self._bit_generator)


def below(rng: np.random.Generator, n: int) -> int:
    """A whole number drawn uniformly from 0 … n-1 (a fifth of `rng.integers`' call cost)."""
    return min(int(rng.random() * n), n - 1)


def standard_normal(rng: np.random.Generator, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """N(0, 1) noise by the Box–Muller transform on the generator's raw bits.

    About 2.5x faster than `Generator.standard_normal` for float32 on this machine: one 64-bit draw gives two
    uniforms of 23 bits (so the tails stop at 5.6 σ), and numpy's log, sqrt, cos and sin are vectorised.
    """
    n = int(np.prod(shape))
    half = (n + 1) // 2
    bits = rng.bit_generator.random_raw(half).view(np.uint32)
    bits >>= np.uint32(9)
    bits |= np.uint32(0x3F800000)  # floats in [1, 2)
    uniform = bits.view(np.float32)
    radius, angle = uniform[:half], uniform[half:]
    np.subtract(np.float32(2.0), radius, out=radius)  # (0, 1]: log never sees 0
    np.log(radius, out=radius)
    radius *= np.float32(-2.0)
    np.sqrt(radius, out=radius)
    angle -= np.float32(1.0)
    angle *= np.float32(2.0 * np.pi)
    out = np.empty(2 * half, np.float32)
    np.cos(angle, out=out[:half])
    np.sin(angle, out=out[half:])
    out[:half] *= radius
    out[half:] *= radius
    return out[:n].reshape(shape).astype(dtype, copy=False)


# -- flips ---------------------------------------------------------------------------------------------

def _opencv_flip(a: np.ndarray, code: int):
    cv2 = opencv()
    if cv2 is None or a.dtype not in _OPENCV_DEPTHS or a.ndim not in (2, 3) or a.strides[-1] != a.itemsize:
        return None
    if a.ndim == 2:
        return cv2.flip(a, code)
    if code == 1 and a.flags.c_contiguous:  # mirroring every row: one call over all bands' rows
        return cv2.flip(a.reshape(-1, a.shape[-1]), 1).reshape(a.shape)
    out = np.empty(a.shape, a.dtype)
    for band, flipped in zip(a, out):
        cv2.flip(band, code, dst=flipped)
    return out


def flip_columns(a: np.ndarray) -> np.ndarray:
    """`a[..., ::-1]` as a new contiguous array (a left–right mirror of each band)."""
    out = _opencv_flip(a, 1)
    return np.ascontiguousarray(a[..., ::-1]) if out is None else out


def flip_rows(a: np.ndarray) -> np.ndarray:
    """`a[..., ::-1, :]` as a new contiguous array (a top–bottom mirror of each band)."""
    out = _opencv_flip(a, 0)
    return np.ascontiguousarray(a[..., ::-1, :]) if out is None else out


# -- 8-bit lookup tables ---------------------------------------------------------------------------------

@functools.cache
def _stringzilla():
    """StringZilla's SIMD byte translation when installed (a plain C extension: importing it changes nothing)."""
    try:
        import stringzilla
    except ImportError:
        return None
    return stringzilla


@functools.cache
def lookup_levels(dtype: np.dtype) -> np.ndarray | None:
    """The 256 values of a one-byte dtype in byte order (what a lookup table is indexed by); None for wider dtypes.

    Changing every pixel of an 8-bit chip through a table of its 256 possible values costs a byte translation
    instead of float arithmetic on every pixel: 2.5x faster with Python's bytes.translate, 25x with StringZilla.
    """
    dtype = np.dtype(dtype)
    if dtype.itemsize != 1 or dtype.kind not in "iu":
        return None
    levels = np.arange(256, dtype=np.uint8).view(dtype)
    levels.flags.writeable = False  # shared by every call
    return levels


def lookup(image: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """`tables[b]` looked up by the bytes of band b (or `tables[0]` for every band): image (C, H, W), one-byte."""
    out = np.empty(image.shape, tables.dtype)
    if len(tables) == 1 and image.flags.c_contiguous:
        pairs = [(image, tables[0], out)]  # one table: one pass over the whole chip
    else:
        pairs = zip(image, tables if len(tables) > 1 else [tables[0]] * len(image), out)
    stringzilla = _stringzilla()
    for source, table, looked_up in pairs:
        source = np.ascontiguousarray(source)
        table_bytes = table.tobytes()
        if stringzilla is not None:
            try:
                stringzilla.translate(memoryview(source).cast("B"), table_bytes, out=memoryview(looked_up).cast("B"))
                continue
            except (TypeError, ValueError, BufferError):  # another StringZilla API: Python's own loop below
                pass
        looked_up[...] = np.frombuffer(source.tobytes().translate(table_bytes), tables.dtype).reshape(source.shape)
    return out
