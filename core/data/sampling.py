"""Samplers: where chips are cut from a raster.

A sampler yields candidate anchors (the chip's top-left pixel, row then column); the dataset
writer reads each candidate, applies the nodata/AOI filter and stops at the sampler's `limit`.
The boundary mode decides what happens at the raster edges:

- ``shift``: windows stay inside the raster; the regular grid's last row/column is moved back so
  it ends exactly at the edge, so every pixel is covered without padding.
- ``pad``: windows may overhang the edge; the overhang reads as nodata. Stochastic samplers then
  draw anchors whose chip *centre* lies in the raster, so edge pixels are sampled as often as others.
- ``drop``: only whole windows on the regular lattice; the uncovered remainder is reported.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..budget import MAX_CHIP_SIZE, MAX_CHIPS, MAX_SEED, require_int_range
from ..config import Configurable
from ..errors import PatchworkError
from ..geometry import Window, anchor_range, regular_anchors
from .stats import reservoir

# Candidate anchors, shape (n, 2): rows in column 0, columns in column 1.
Anchors = np.ndarray


@dataclass(frozen=True)
class Region:
    """Inclusive anchor bounds a stochastic sampler may draw from (narrowed to an AOI's box)."""

    row_min: int
    row_max: int
    col_min: int
    col_max: int

    @property
    def empty(self) -> bool:
        """True when no anchor can be drawn."""
        return self.row_max < self.row_min or self.col_max < self.col_min

    @property
    def positions(self) -> int:
        """How many anchor positions the region holds."""
        return 0 if self.empty else (self.row_max - self.row_min + 1) * (self.col_max - self.col_min + 1)


def sampling_region(height: int, width: int, chip: int, boundary: str, touching: Window | None = None) -> Region:
    """Anchor bounds for stochastic samplers; with `touching`, only windows that overlap it."""
    r0, r1 = anchor_range(height, chip, boundary, "height")
    c0, c1 = anchor_range(width, chip, boundary, "width")
    if touching is not None:
        r0, r1 = max(r0, touching.row_off - chip + 1), min(r1, touching.row_end - 1)
        c0, c1 = max(c0, touching.col_off - chip + 1), min(c1, touching.col_end - 1)
    return Region(r0, r1, c0, c1)


class Sampler(Configurable, base=True):
    """Base class. `limit` is how many accepted chips end the sampling (None: all candidates)."""

    seed: int | None = None

    @property
    def limit(self) -> int | None:
        """At most this many chips (None: no limit)."""
        return None

    def candidates(self, height: int, width: int, chip: int, boundary: str,
                   touching: Window | None = None) -> Iterator[Anchors]:
        """Batches of candidate anchors (rows, cols) for `chip`-pixel chips in a `height` × `width` raster."""
        raise NotImplementedError

    def notes(self, height: int, width: int) -> list[str]:
        """What the log should say about this sampler on a `height` × `width` raster (e.g. points outside)."""
        return []

    def _grid(self, height: int, width: int, chip: int, step: int, boundary: str) -> Anchors:
        rows = regular_anchors(height, chip, step, boundary, "height")
        cols = regular_anchors(width, chip, step, boundary, "width")
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        return np.stack([rr.ravel(), cc.ravel()], axis=1)


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise PatchworkError(f"{name} must be > 0, got {value}")


def check_seed(seed: int) -> None:
    """Refuse a seed numpy cannot take."""
    require_int_range("SEED", seed, 0, MAX_SEED, "Use a seed of 0 or more.")


@dataclass(frozen=True)
class RegularSampler(Sampler):
    """Anchors on a regular lattice with the given step (px), row-major."""

    step: int

    def __post_init__(self) -> None:
        require_int_range("STEP", self.step, 1, MAX_CHIP_SIZE * 16)

    def candidates(self, height, width, chip, boundary, touching=None):
        """Anchors on a regular grid of the step."""
        yield self._grid(height, width, chip, self.step, boundary)


@dataclass(frozen=True)
class JitteredSampler(Sampler):
    """Each regular anchor moved by round(U(-jitter, jitter)·step) per axis, clamped inside the anchor range."""

    step: int
    jitter: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        require_int_range("STEP", self.step, 1, MAX_CHIP_SIZE * 16)
        check_seed(self.seed)
        if not 0 <= self.jitter <= 0.5:
            raise PatchworkError(f"jitter is a fraction of the step between 0 and 0.5, got {self.jitter}")

    def candidates(self, height, width, chip, boundary, touching=None):
        """Grid anchors each moved by a random jitter."""
        anchors = self._grid(height, width, chip, self.step, boundary)
        rng = np.random.default_rng(self.seed)
        offsets = np.rint(rng.uniform(-self.jitter, self.jitter, size=anchors.shape) * self.step).astype(np.int64)
        r0, r1 = anchor_range(height, chip, boundary, "height")
        c0, c1 = anchor_range(width, chip, boundary, "width")
        moved = anchors + offsets
        moved[:, 0] = np.clip(moved[:, 0], r0, r1)
        moved[:, 1] = np.clip(moved[:, 1], c0, c1)
        yield moved


@dataclass(frozen=True)
class RandomSampler(Sampler):
    """`count` distinct uniform anchors; filtered candidates are replaced by new draws."""

    count: int
    seed: int = 0
    max_draws_per_chip: int = 50

    def __post_init__(self) -> None:
        require_int_range("COUNT", self.count, 1, MAX_CHIPS, "Sample in several runs if you need more chips.")
        check_seed(self.seed)

    @property
    def limit(self) -> int:
        """At most this many chips (0: as many as fit)."""
        return self.count

    def candidates(self, height, width, chip, boundary, touching=None):
        """Poisson-disk anchors, at least the distance apart."""
        region = sampling_region(height, width, chip, boundary, touching)
        if region.empty:
            return
        rng = np.random.default_rng(self.seed)
        n_cols = region.col_max - region.col_min + 1
        batch = max(self.count, 256)
        for flat in self._distinct_positions(region.positions, rng, batch):
            yield np.stack([region.row_min + flat // n_cols, region.col_min + flat % n_cols], axis=1)

    def _distinct_positions(self, positions: int, rng: np.random.Generator, batch: int) -> Iterator[np.ndarray]:
        budget = min(positions, self.count * self.max_draws_per_chip)
        if positions <= 1_000_000:  # small: one shuffle gives every position at most once
            order = rng.permutation(positions)[:budget]
            for start in range(0, budget, batch):
                yield order[start : start + batch]
            return
        budget = min(budget, positions // 2)  # large: redraw duplicates, which stay rare below half
        seen: set[int] = set()
        while len(seen) < budget:
            draws = rng.integers(0, positions, size=min(batch, budget - len(seen)))
            fresh = [f for f in dict.fromkeys(draws.tolist()) if f not in seen]
            seen.update(fresh)
            yield np.asarray(fresh, dtype=np.int64)


@dataclass(frozen=True)
class PoissonDiskSampler(Sampler):
    """Bridson's Poisson-disk sampling on the integer pixel lattice.

    Candidates are rounded to whole pixels *before* the distance test, so the guarantee holds
    exactly for the integer anchors: every pair is at least `min_distance` px apart. The whole
    region is filled, then visited in random order, so a `count` limit thins it uniformly instead
    of keeping a blob around the first point. `count` = 0 keeps every point.
    """

    min_distance: float
    count: int = 0
    seed: int = 0
    attempts: int = 30

    def __post_init__(self) -> None:
        if not self.min_distance >= 1:
            raise PatchworkError(f"min_distance must be at least 1 px, got {self.min_distance}")
        require_int_range("COUNT", self.count, 0, MAX_CHIPS, "0 keeps every point.")
        check_seed(self.seed)

    @property
    def limit(self) -> int | None:
        """At most this many chips."""
        return self.count or None

    def candidates(self, height, width, chip, boundary, touching=None):
        """Distinct uniform random anchors."""
        region = sampling_region(height, width, chip, boundary, touching)
        if region.empty:
            return
        rng = np.random.default_rng(self.seed)
        points = poisson_disk(region, self.min_distance, rng, self.attempts)
        points = points[rng.permutation(len(points))]
        for start in range(0, len(points), 1024):
            yield points[start : start + 1024]


def poisson_disk(region: Region, radius: float, rng: np.random.Generator, attempts: int = 30,
                 batch: int = 512) -> Anchors:
    """Integer points filling `region` with pairwise distance ≥ `radius`.

    Bridson's algorithm (2007), run on up to `batch` active points per round so numpy does the work:
    each active point proposes `attempts` candidates in the annulus [r, 2r), rounded to whole pixels;
    its first candidate clear of every placed point is kept; new points too close to each other are
    settled greedily in order; an active point with no clear candidate retires, as in Bridson.
    """
    cell = radius / math.sqrt(2.0)  # a cell holds at most one point
    origin = np.array([region.row_min, region.col_min], dtype=np.int64)
    upper = np.array([region.row_max, region.col_max], dtype=np.int64)
    gh = int((region.row_max - region.row_min) / cell) + 1
    gw = int((region.col_max - region.col_min) / cell) + 1
    grid = np.full((gh + 4, gw + 4), -1, dtype=np.int64)  # 2 cells of margin: no bounds checks
    # The 5x5 block of cells around a candidate, less its corners: a point two cells away on both
    # axes is at least cell·√2 = r away.
    around = [(dr, dc) for dr in range(-2, 3) for dc in range(-2, 3) if abs(dr) + abs(dc) < 4]
    d_rows, d_cols = (np.array(v, dtype=np.int64) for v in zip(*around))
    r2 = radius * radius
    # Neighbours lie within ~2.1·r per axis, so d² ≤ 9·r²: int32 (half the memory traffic) is exact
    # up to r ≈ 15,000 px.
    coord = np.int32 if radius < 10_000 else np.int64

    def clear_of_placed(cand: np.ndarray) -> np.ndarray:
        """(m, k) mask: candidate inside the region and at least r from every placed point."""
        inside = ((cand >= origin) & (cand <= upper)).all(axis=-1)
        gc = np.where(inside[..., None], cells(cand), 2)
        neighbours = grid[gc[..., 0, None] + d_rows, gc[..., 1, None] + d_cols]  # ids or -1
        ids = np.maximum(neighbours, 0)
        dr = placed_rows[ids] - cand[..., 0, None].astype(coord)
        dc = placed_cols[ids] - cand[..., 1, None].astype(coord)
        d2 = dr * dr + dc * dc
        return inside & ((d2 >= r2) | (neighbours < 0)).all(axis=-1)

    def cells(p: np.ndarray) -> np.ndarray:
        return ((p - origin) / cell).astype(np.int64) + 2

    # All points so far, as two coordinate arrays indexed by the ids the grid holds.
    placed_rows = np.empty(0, dtype=coord)
    placed_cols = np.empty(0, dtype=coord)

    def place(new: np.ndarray) -> np.ndarray:
        """Add points to the grid and the coordinate arrays; return their ids."""
        nonlocal placed_rows, placed_cols
        ids = np.arange(len(placed_rows), len(placed_rows) + len(new))
        placed_rows = np.concatenate([placed_rows, new[:, 0].astype(coord)])
        placed_cols = np.concatenate([placed_cols, new[:, 1].astype(coord)])
        g = cells(new)
        grid[g[:, 0], g[:, 1]] = ids
        return ids

    active = place(np.array([[rng.integers(region.row_min, region.row_max + 1),
                              rng.integers(region.col_min, region.col_max + 1)]], dtype=np.int64))
    while len(active):
        chosen = rng.permutation(len(active))[:batch] if len(active) > batch else np.arange(len(active))
        sel = active[chosen]
        m = len(sel)
        theta = rng.uniform(0.0, 2.0 * math.pi, (m, attempts))
        rho = rng.uniform(radius, 2.0 * radius, (m, attempts))
        offsets = np.stack([rho * np.sin(theta), rho * np.cos(theta)], axis=-1)
        centres = np.stack([placed_rows[sel], placed_cols[sel]], axis=-1).astype(np.int64)
        cand = np.rint(centres[:, None, :] + offsets).astype(np.int64)  # (m, k, 2)
        # Most active points find a clear candidate among their first few: test those first, and
        # the remaining attempts only for the points that did not (the same outcome, less work).
        early = min(attempts, 6)
        clear = np.zeros((m, attempts), dtype=bool)
        clear[:, :early] = clear_of_placed(cand[:, :early])
        late = ~clear[:, :early].any(axis=1)
        if early < attempts and late.any():
            clear[late, early:] = clear_of_placed(cand[late, early:])
        has = clear.any(axis=1)
        new = cand[np.arange(m), clear.argmax(axis=1)][has]
        new_ids = place(new[_settle_conflicts(new, r2)])
        active = np.concatenate([np.delete(active, chosen[~has]), new_ids])
    return np.stack([placed_rows, placed_cols], axis=1).astype(np.int64)


def _settle_conflicts(new: np.ndarray, r2: float) -> np.ndarray:
    """Which of the new points to keep: each, in order, unless closer than r to an earlier kept one."""
    keep = np.ones(len(new), dtype=bool)
    if len(new) < 2:
        return keep
    diff = new[:, None, :] - new[None, :, :]
    close = np.tril((diff * diff).sum(axis=-1) < r2, k=-1)  # close[i, j]: j < i and too close
    for i in np.nonzero(close.any(axis=1))[0]:
        keep[i] = not (close[i, :i] & keep[:i]).any()
    return keep


@dataclass(frozen=True)
class PointSampler(Sampler):
    """One chip centred on each point: its centre pixel (row and column chip // 2) holds the point.

    `points` are [row, col] pixel positions in the raster (fractions allowed: the pixel that holds the position).
    Near the edges the boundary rule applies: shift moves the chip inside, pad lets it overhang, drop leaves it
    out. Points outside the raster give no chip (`notes` counts them). Chips come in the points' order.
    """

    points: list = dataclasses.field(default_factory=list)
    seed: None = None

    def __post_init__(self) -> None:
        points = np.asarray(self.points, dtype=np.float64)
        if points.size and (points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all()):
            raise PatchworkError("points are [row, col] pixel positions (finite numbers).")
        object.__setattr__(self, "points", points.reshape(-1, 2).tolist())

    @classmethod
    def from_map_points(cls, xy, geotransform) -> PointSampler:
        """Points given in the raster's map coordinates (x, y), placed with its north-up geotransform."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        x0, px, _, y0, _, py = geotransform
        return cls([[float(r), float(c)] for r, c in zip((xy[:, 1] - y0) / py, (xy[:, 0] - x0) / px)])

    @classmethod
    def from_map_wkt(cls, wkt_points, geotransform) -> PointSampler:
        """Points (and multipoints) as WKT in the raster's CRS."""
        from osgeo import ogr

        xy = []
        for wkt in wkt_points:
            geom = ogr.CreateGeometryFromWkt(wkt)
            if geom is None or geom.IsEmpty():
                continue
            flat = ogr.GT_Flatten(geom.GetGeometryType())
            parts = [geom.GetGeometryRef(i) for i in range(geom.GetGeometryCount())] \
                if flat == ogr.wkbMultiPoint else [geom]
            for part in parts:
                if ogr.GT_Flatten(part.GetGeometryType()) != ogr.wkbPoint:
                    raise PatchworkError(f"LOCATIONS: the points sampler takes points, got a {part.GetGeometryName()}; "
                                         "for lines use the lines sampler.")
                xy.append((part.GetX(), part.GetY()))
        return cls.from_map_points(xy, geotransform)

    def _pixels(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pixels = np.floor(np.asarray(self.points, dtype=np.float64).reshape(-1, 2)).astype(np.int64)
        rows, cols = pixels[:, 0], pixels[:, 1]
        return rows, cols, (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)

    def candidates(self, height, width, chip, boundary, touching=None):
        """The chip of each point inside the raster, placed by the boundary rule."""
        rows, cols, inside = self._pixels(height, width)
        r0, r1 = anchor_range(height, chip, boundary, "height")
        c0, c1 = anchor_range(width, chip, boundary, "width")
        rows, cols = rows - chip // 2, cols - chip // 2
        if boundary == "shift":
            rows, cols = np.clip(rows, r0, r1), np.clip(cols, c0, c1)
        else:  # pad: every point inside has its chip; drop: only whole chips
            inside &= (rows >= r0) & (rows <= r1) & (cols >= c0) & (cols <= c1)
        if touching is not None:
            inside &= (rows < touching.row_end) & (rows + chip > touching.row_off) & \
                      (cols < touching.col_end) & (cols + chip > touching.col_off)
        anchors = np.stack([rows[inside], cols[inside]], axis=1)
        for start in range(0, len(anchors), 1024):
            yield anchors[start : start + 1024]

    def notes(self, height: int, width: int) -> list[str]:
        """What the log should say about points that give no chip."""
        outside = int((~self._pixels(height, width)[2]).sum())
        return [f"{outside} of {len(self.points)} points lie outside the raster: no chip for them."] if outside else []


class ClassSampler(Sampler, base=True):
    """Base of samplers that choose chips by the class of the label pixel at their centre.

    `candidates_from_labels` reads the labels strip by strip and keeps, per class, a uniform sample (without
    replacement, a seeded reservoir) of the pixels that can be a chip's centre: the chip centred there must be a
    chip the boundary rule allows (shift and drop: inside the raster; pad: its centre inside). The centre pixel
    of every chip then holds its class.
    """

    needs_labels = True

    def candidates(self, height, width, chip, boundary, touching=None):
        """Class samplers draw from the labels: see candidates_from_labels."""
        raise PatchworkError(f"SAMPLER: the {type(self).__name__} chooses chips by their label class; give LABELS.")
        yield  # (a generator, as every sampler's candidates)

    def wanted(self, pixels: dict[int, int]) -> dict[int, int]:
        """Chips wanted per class, given the candidate pixels per class."""
        raise NotImplementedError

    def reservoir_size(self) -> int:
        """The largest number of chips one class can be asked for."""
        raise NotImplementedError

    def candidates_from_labels(self, height: int, width: int, chip: int, boundary: str, strips,
                               touching: Window | None = None) -> tuple[Anchors, list[str]]:
        """(anchors, notes): the chips drawn from the label strips (row_off, (h, w) class ids, (h, w) valid)."""
        r0, r1 = anchor_range(height, chip, boundary, "height")
        c0, c1 = anchor_range(width, chip, boundary, "width")
        if touching is not None:
            r0, r1 = max(r0, touching.row_off - chip + 1), min(r1, touching.row_end - 1)
            c0, c1 = max(c0, touching.col_off - chip + 1), min(c1, touching.col_end - 1)
        rng = np.random.default_rng(self.seed)
        size = self.reservoir_size()
        kept: dict[int, np.ndarray] = {}
        seen: dict[int, int] = {}
        half = chip // 2
        for row_off, labels, valid in strips:
            rows = np.arange(row_off, row_off + labels.shape[0]) - half
            cols = np.arange(labels.shape[1]) - half
            ok = ((rows >= r0) & (rows <= r1))[:, None] & ((cols >= c0) & (cols <= c1))[None, :] & valid
            for value in np.unique(labels[ok]):
                flat = np.flatnonzero(ok & (labels == value)) + row_off * width  # centre pixels, raster-wide
                key = int(value)
                kept[key], seen[key] = reservoir(kept.get(key, np.empty(0, np.int64)), seen.get(key, 0), flat,
                                                  size, rng)
        wanted = self.wanted(seen)
        anchors, notes = [], []
        for key in sorted(kept):
            want = wanted.get(key, 0)
            chosen = kept[key] if want >= len(kept[key]) else rng.choice(kept[key], want, replace=False)
            if want > seen[key]:
                notes.append(f"class {key}: {seen[key]} of the {want} chips asked for (all its pixels that can be "
                             "a chip's centre).")
            anchors.append(np.stack([chosen // width - half, chosen % width - half], axis=1))
        missing = sorted(set(wanted) - set(kept))
        notes += [f"class {key}: no pixel can be a chip's centre, no chip." for key in missing]
        return (np.concatenate(anchors) if anchors else np.zeros((0, 2), np.int64)), notes


@dataclass(frozen=True)
class BalancedSampler(ClassSampler):
    """`count` chips per class of the label at their centre, drawn uniformly without replacement.

    A class with fewer candidate pixels gives what it has, and the log says so.
    """

    count: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        require_int_range("COUNT", self.count, 1, MAX_CHIPS, "The balanced sampler draws COUNT chips per class.")
        check_seed(self.seed)

    def reservoir_size(self) -> int:
        """`count`: no class is asked for more."""
        return self.count

    def wanted(self, pixels):
        """`count` for every class."""
        return {key: self.count for key in pixels}


@dataclass(frozen=True)
class StratifiedSampler(ClassSampler):
    """`count` chips in all, split among the classes, drawn uniformly without replacement within each class.

    `proportions` gives each class's share ({class: share}); by default each class's share of the candidate pixels.
    """

    count: int = 100
    proportions: dict | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        require_int_range("COUNT", self.count, 1, MAX_CHIPS, "The stratified sampler draws COUNT chips in all.")
        check_seed(self.seed)
        if self.proportions is not None and (not self.proportions or min(self.proportions.values()) < 0 or
                                             sum(self.proportions.values()) <= 0):
            raise PatchworkError(f"proportions are non-negative shares per class, got {self.proportions!r}")

    def reservoir_size(self) -> int:
        """`count`: no class is asked for more."""
        return self.count

    def wanted(self, pixels):
        """Each class's share of `count` (largest remainders, so the shares add up to `count`)."""
        shares = {int(k): float(v) for k, v in (self.proportions or pixels).items()}
        total = sum(shares.values())
        exact = {k: self.count * v / total for k, v in shares.items()}
        wanted = {k: int(np.floor(v)) for k, v in exact.items()}
        for k in sorted(exact, key=lambda k: wanted[k] - exact[k])[: self.count - sum(wanted.values())]:
            wanted[k] += 1
        return wanted


def points_along_lines(wkt_lines, spacing: float, geotransform,
                       raster_size: tuple[int, int] | None = None) -> list[list[float]]:
    """[row, col] pixel positions every `spacing` pixels along each line (from its start), for a PointSampler.

    Lines are WKT in the raster's CRS; spacing is measured in pixels of its north-up grid (square pixels assumed
    along the line: map distance = spacing × pixel width). With `raster_size` (height, width), only the positions
    on the raster are kept, computed a chunk at a time: a line far longer than the raster costs no memory.
    Positions are OGR's (`Value`), computed the way it does.
    """
    from osgeo import ogr

    if not spacing > 0:
        raise PatchworkError(f"SPACING must be > 0 px, got {spacing}")
    step = spacing * abs(geotransform[1])
    rows_cols: list[np.ndarray] = []
    kept = 0
    for wkt in wkt_lines:
        geom = ogr.CreateGeometryFromWkt(wkt)
        if geom is None or geom.IsEmpty():
            continue
        parts = [geom.GetGeometryRef(i) for i in range(geom.GetGeometryCount())] \
            if ogr.GT_Flatten(geom.GetGeometryType()) == ogr.wkbMultiLineString else [geom]
        for part in parts:
            if ogr.GT_Flatten(part.GetGeometryType()) != ogr.wkbLineString:
                raise PatchworkError(f"LINES: lines are needed, got a {part.GetGeometryName()}.")
            for chunk in _positions_along(np.asarray(part.GetPoints(), dtype=np.float64)[:, :2], step):
                pixels = _map_to_pixels(chunk, geotransform)
                if raster_size is not None:
                    height, width = raster_size
                    pixels = pixels[(pixels[:, 0] >= 0) & (pixels[:, 0] < height) & (pixels[:, 1] >= 0)
                                    & (pixels[:, 1] < width)]
                kept += len(pixels)
                if kept > MAX_CHIPS:
                    raise PatchworkError(f"SPACING: the lines give more than {MAX_CHIPS:,} chip centres on the "
                                         "raster; raise SPACING or sample in several runs.")
                rows_cols.append(pixels)
    return np.concatenate(rows_cols).tolist() if rows_cols else []


_CHUNK = 65_536  # positions computed at once along a line


def _positions_along(coords: np.ndarray, step: float) -> Iterator[np.ndarray]:
    """(x, y) every `step` along a polyline from its start, a chunk at a time, as OGR's LineString.Value gives."""
    if len(coords) == 0:
        return
    dx, dy = np.diff(coords[:, 0]), np.diff(coords[:, 1])
    segment = np.sqrt(dx * dx + dy * dy)
    start = np.concatenate([[0.0], np.cumsum(segment)])  # each vertex's distance from the start (summed in order)
    length = start[-1]
    count = len(np.arange(0.0, length + 1e-9 * step, step))  # the distances the sampler always took
    for first in range(0, count, _CHUNK):
        distance = np.arange(first, min(first + _CHUNK, count), dtype=np.float64) * step
        if len(segment) == 0:
            yield np.repeat(coords[:1], len(distance), axis=0)
            continue
        i = np.clip(np.searchsorted(start, distance, side="right") - 1, 0, len(segment) - 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(segment[i] > 0, (distance - start[i]) / segment[i], 0.0)
        xy = coords[i] * (1 - ratio)[:, None] + coords[i + 1] * ratio[:, None]
        beyond = distance >= length  # past the end: the end point, as OGR gives it
        xy[beyond] = coords[-1]
        yield xy


def _map_to_pixels(xy: np.ndarray, geotransform) -> np.ndarray:
    """Map (x, y) → pixel (row, col) on a north-up grid, as PointSampler.from_map_points places them."""
    x0, px, _, y0, _, py = geotransform
    return np.stack([(xy[:, 1] - y0) / py, (xy[:, 0] - x0) / px], axis=1)


def sampler_from_name(name: str, *, step: int, jitter: float, min_distance: float, count: int, seed: int) -> Sampler:
    """The sampler a Processing run or the demo names, built from the flat parameter set."""
    if name == "regular":
        return RegularSampler(step=step)
    if name == "jittered":
        return JitteredSampler(step=step, jitter=jitter, seed=seed)
    if name == "poisson":
        return PoissonDiskSampler(min_distance=min_distance, count=count, seed=seed)
    if name == "random":
        return RandomSampler(count=count, seed=seed)
    if name == "balanced":
        return BalancedSampler(count=count, seed=seed)
    if name == "stratified":
        return StratifiedSampler(count=count, seed=seed)
    raise PatchworkError(f"unknown sampler '{name}'; use regular, jittered, poisson, random, balanced or stratified")


SAMPLER_NAMES: tuple[str, ...] = ("regular", "jittered", "poisson", "random", "balanced", "stratified")


@dataclass(frozen=True)
class Coverage:
    """How much of the raster the chips cover."""

    covered: int
    total: int
    bottom_rows: int  # rows at the bottom no chip reaches
    right_cols: int  # columns at the right no chip reaches
    chip_pixels: int = 0  # the chips' pixels on the raster, counted once per chip
    most: int = 0  # the most chips over one pixel

    @property
    def chips_per_pixel(self) -> float:
        """How many chips cover a covered pixel, on average (1: no overlap)."""
        return self.chip_pixels / self.covered if self.covered else 0.0

    @property
    def fraction(self) -> float:
        """The fraction of the raster's pixels in some chip."""
        return self.covered / self.total if self.total else 0.0

    def describe(self) -> str:
        """The coverage in words, for the log."""
        text = f"chips cover {self.covered:,} of {self.total:,} pixels ({100 * self.fraction:.2f}%)"
        edges = []
        if self.bottom_rows:
            edges.append("the last row" if self.bottom_rows == 1 else f"the last {self.bottom_rows} rows")
        if self.right_cols:
            edges.append("the last column" if self.right_cols == 1 else f"the last {self.right_cols} columns")
        if edges:
            text += f"; {' and '.join(edges)} are in no chip"
        return text


def coverage(windows: list[Window], height: int, width: int, strip: int = 1024) -> Coverage:
    """Exact count of raster pixels inside at least one window, and of how many windows lie over them.

    In strips of rows: O(strip·width) memory, at most 64 MB of counts however wide the raster.
    """
    if not windows:
        return Coverage(0, height * width, height, width)
    strip = max(1, min(strip, (1 << 24) // max(width, 1)))
    arr = np.array([(w.row_off, w.col_off, w.row_end, w.col_end) for w in windows], dtype=np.int64)
    arr[:, [0, 2]] = np.clip(arr[:, [0, 2]], 0, height)
    arr[:, [1, 3]] = np.clip(arr[:, [1, 3]], 0, width)
    covered = most = 0
    for s0 in range(0, height, strip):
        s1 = min(s0 + strip, height)
        hits = arr[(arr[:, 0] < s1) & (arr[:, 2] > s0)]
        if not len(hits):
            continue
        counts = np.zeros((s1 - s0, width), dtype=np.int32)
        for r0, c0, r1, c1 in hits:
            counts[max(r0 - s0, 0) : min(r1 - s0, s1 - s0), c0:c1] += 1
        covered += int(np.count_nonzero(counts))
        most = max(most, int(counts.max()))
    chip_pixels = int(((arr[:, 2] - arr[:, 0]) * (arr[:, 3] - arr[:, 1])).sum())
    return Coverage(covered, height * width, int(height - arr[:, 2].max()), int(width - arr[:, 3].max()),
                    chip_pixels, most)
