"""Pixel windows, the geotransforms of the chips cut from them, and the rules at the raster's edge.

Geotransforms are GDAL's 6-tuples: x = gt[0] + col*gt[1] + row*gt[2], y = gt[3] + col*gt[4] + row*gt[5],
with (col, row) the pixel *corner* coordinates, so pixel (r, c) has its centre at (c + 0.5, r + 0.5).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .errors import PatchworkError

GeoTransform = tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class Window:
    """A block of pixels of a source raster. Offsets may be negative or overhang (``pad`` chips)."""

    row_off: int
    col_off: int
    height: int
    width: int

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"a window needs a positive size, got {self.height}x{self.width}")

    @property
    def row_end(self) -> int:
        """The row after the window's last."""
        return self.row_off + self.height

    @property
    def col_end(self) -> int:
        """The column after the window's last."""
        return self.col_off + self.width

    def clip(self, height: int, width: int) -> Window | None:
        """The part of this window inside a raster of the given size, or None if it misses it."""
        r0, c0 = max(self.row_off, 0), max(self.col_off, 0)
        r1, c1 = min(self.row_end, height), min(self.col_end, width)
        if r1 <= r0 or c1 <= c0:
            return None
        return Window(r0, c0, r1 - r0, c1 - c0)

    def overlaps(self, other: Window) -> bool:
        """True when the two windows share a pixel."""
        return (self.row_off < other.row_end and other.row_off < self.row_end
                and self.col_off < other.col_end and other.col_off < self.col_end)

    def intersection(self, other: Window) -> Window | None:
        """The pixels both windows hold, or None."""
        r0, c0 = max(self.row_off, other.row_off), max(self.col_off, other.col_off)
        r1, c1 = min(self.row_end, other.row_end), min(self.col_end, other.col_end)
        return Window(r0, c0, r1 - r0, c1 - c0) if r1 > r0 and c1 > c0 else None

    def contains(self, other: Window) -> bool:
        """True when every pixel of `other` is in this window."""
        return (self.row_off <= other.row_off and self.col_off <= other.col_off and other.row_end <= self.row_end
                and other.col_end <= self.col_end)

    def is_inside(self, height: int, width: int) -> bool:
        """True when the window lies within a raster of `height` × `width` pixels."""
        return self.row_off >= 0 and self.col_off >= 0 and self.row_end <= height and self.col_end <= width


def window_geotransform(gt: GeoTransform, window: Window) -> GeoTransform:
    """The source geotransform shifted to the window: GT' = GT · translate(col_off, row_off)."""
    return shift_geotransform(gt, window.col_off, window.row_off)


def shift_geotransform(gt: GeoTransform, cols: float, rows: float) -> GeoTransform:
    """The geotransform moved by `cols` columns and `rows` rows."""
    x0, a, b, y0, d, e = gt
    return (x0 + cols * a + rows * b, a, b, y0 + cols * d + rows * e, d, e)


def pixel_to_world(gt: GeoTransform, col: float, row: float) -> tuple[float, float]:
    """The map coordinates of the pixel position (`col`, `row`)."""
    return gt[0] + col * gt[1] + row * gt[2], gt[3] + col * gt[4] + row * gt[5]


def footprint(gt: GeoTransform, height: int, width: int) -> list[tuple[float, float]]:
    """The closed ring of world corners of a raster (or chip) with this geotransform."""
    corners = [(0, 0), (width, 0), (width, height), (0, height), (0, 0)]
    return [pixel_to_world(gt, c, r) for c, r in corners]


def is_north_up(gt: GeoTransform) -> bool:
    """True for a geotransform without rotation or shear, rows going south."""
    return gt[2] == 0 and gt[4] == 0


def compose_geotransform(gt: GeoTransform, pixel_map: GeoTransform) -> GeoTransform:
    """The geotransform of an array whose pixel corners map to the source's through `pixel_map`.

    `pixel_map` is in GDAL order too: source col = m0 + m1·col' + m2·row', source row = m3 + m4·col' + m5·row'.
    Flips and quarter turns use W and H (not W-1, H-1): they map pixel *corners*, so each output
    pixel's footprint is exactly the footprint of the source pixel it holds.
    """
    x0, a, b, y0, d, e = gt
    c0, c1, c2, r0, r1, r2 = pixel_map
    return (x0 + a * c0 + b * r0, a * c1 + b * r1, a * c2 + b * r2,
            y0 + d * c0 + e * r0, d * c1 + e * r1, d * c2 + e * r2)


# The boundary rules: what happens where a chip or tile reaches past the raster's edge (see data/sampling.py).
Boundary = Literal["shift", "pad", "drop"]
BOUNDARIES: tuple[str, ...] = ("shift", "pad", "drop")


def check_boundary(boundary: str) -> None:
    """Refuse an edge rule that is not one of BOUNDARIES."""
    if boundary not in BOUNDARIES:
        raise PatchworkError(f"unknown boundary mode '{boundary}'; use one of {', '.join(BOUNDARIES)}")


def _check_fits(extent: int, size: int, boundary: str, axis: str) -> None:
    if size > extent and boundary != "pad":
        raise PatchworkError(
            f"the chip ({size} px) is larger than the raster's {axis} ({extent} px). "
            "Use a smaller CHIP_SIZE, or BOUNDARY=pad to pad chips with nodata."
        )


def anchor_range(extent: int, size: int, boundary: str, axis: str = "height") -> tuple[int, int]:
    """Inclusive range of anchors for stochastic samplers along one axis."""
    check_boundary(boundary)
    _check_fits(extent, size, boundary, axis)
    if boundary == "pad":
        return -(size // 2), extent - 1 - size // 2
    return 0, extent - size


def regular_anchors(extent: int, size: int, step: int, boundary: str, axis: str = "height") -> np.ndarray:
    """Anchors 0, step, 2·step, … along one axis, with the boundary rule at the far edge."""
    check_boundary(boundary)
    _check_fits(extent, size, boundary, axis)
    if boundary == "drop":
        return np.arange((extent - size) // step + 1, dtype=np.int64) * step
    if boundary == "shift":
        anchors = np.arange(0, extent - size + 1, step, dtype=np.int64)
        return anchors if anchors[-1] == extent - size else np.append(anchors, extent - size)
    n = 1 if extent <= size else math.ceil((extent - size) / step) + 1
    return np.arange(n, dtype=np.int64) * step
