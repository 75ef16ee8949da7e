"""The plan of a tiled run: model tiles on a regular grid, and the output cut into independent blocks.

Tiles: output tiles of `size = tile - 2·margin` px on a regular stride, the last row and column
shifted back to end on the raster edge (so every pixel is predicted, edges included); each tile is
read with its margin around it (boundless at the raster border).

Blocks: the output raster is cut into blocks of several hundred px whose edges lie on tile anchors.
A block owns the tiles that start inside it, so each tile of the grid is computed once, by one
block. With overlap, an owned tile reaches past the block's bottom or right edge: the block hands
those sums on (`halos`), and the blocks below and to the right finish their top and left strips
with them, in plan order, where the results are written. Blocks still run in any order, on any
worker, with memory O(block) per worker; every pixel's contributions are added in one order fixed
by the plan, so the result is bit-identical for one worker, many, a cluster, or a resumed run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import Window, regular_anchors

# A block's side, before it snaps to the tile grid. Blocks own their tiles (no tile computed twice at any block
# size), so small blocks cost nothing in compute and keep their sums in the CPU's caches: on the Deepness model,
# 16384², Hann and soft vote, blocks of 768 px took 0.45x the time of 2048 px blocks and 0.55x the peak memory.
DEFAULT_BLOCK_PX = 768
PIXEL_BLOCK_PX = 1024  # per-pixel models: no tiles cross blocks, so smaller blocks only pipeline better
BLOCK_ACCUMULATOR_BYTES = 256 * 1024**2  # float64 sums of one block stay below this


def tile_anchors(extent: int, size: int, stride: int) -> np.ndarray:
    """Output-tile anchors along one axis: every pixel covered, the last tile ending on the edge."""
    if extent <= size:
        return np.zeros(1, dtype=np.int64)
    return regular_anchors(extent, size, stride, "shift")


@dataclass(frozen=True)
class TileGrid:
    """Where the model's tiles go on a raster of `height` × `width` px."""

    height: int
    width: int
    tile: int  # input side, px
    margin: int  # px cut from each side of a tile's prediction
    overlap: int

    @property
    def size(self) -> int:
        """The output side of a tile."""
        return self.tile - 2 * self.margin

    @property
    def stride(self) -> int:
        """Pixels between the starts of neighbouring tiles."""
        return self.tile - self.overlap

    @property
    def rows(self) -> np.ndarray:
        """Output rows where tiles start."""
        return tile_anchors(self.height, self.size, self.stride)

    @property
    def cols(self) -> np.ndarray:
        """Output columns where tiles start."""
        return tile_anchors(self.width, self.size, self.stride)

    @property
    def count(self) -> int:
        """Tiles in the grid."""
        return len(self.rows) * len(self.cols)


@dataclass(frozen=True)
class Block:
    """One piece of the output, and the tiles it computes: those that start inside it."""

    index: int
    window: Window  # output pixels, inside the raster
    tile_rows: tuple[int, ...]  # anchors of the tiles it owns (they start inside its window)
    tile_cols: tuple[int, ...]

    @property
    def tiles(self) -> int:
        """Tiles this block computes."""
        return len(self.tile_rows) * len(self.tile_cols)

    @property
    def work(self) -> int:
        """Its share of a run, for progress: its tiles, or its pixels when there are none (per-pixel models)."""
        return self.tiles or self.window.height * self.window.width

    def input_window(self, grid: TileGrid) -> Window:
        """The input pixels its tiles read, margins included (may reach outside the raster)."""
        r0, c0 = self.tile_rows[0] - grid.margin, self.tile_cols[0] - grid.margin
        return Window(r0, c0, self.tile_rows[-1] + grid.tile - grid.margin - r0,
                      self.tile_cols[-1] + grid.tile - grid.margin - c0)

    def single_cover(self, grid: TileGrid) -> bool:
        """Whether each of its pixels lies in exactly one of its tiles (no overlap among its tiles)."""
        return all(np.all(np.diff(a) >= grid.size) for a in (self.tile_rows, self.tile_cols))

    def reach(self, grid: TileGrid | None) -> Window:
        """The output pixels its tiles reach: its window, and past its bottom and right edges with overlap."""
        if grid is None or not self.tile_rows:
            return self.window
        w = self.window
        return Window(w.row_off, w.col_off, max(w.row_end, self.tile_rows[-1] + grid.size) - w.row_off,
                      max(w.col_end, self.tile_cols[-1] + grid.size) - w.col_off)

    def border(self, grid: TileGrid | None) -> list[Window]:
        """The parts of its window that earlier blocks' tiles reach too: a top strip, and a left strip below it."""
        if grid is None:
            return []
        w = self.window
        top, left = (_reached_from_before(anchors, grid.size, start, extent) for anchors, start, extent in (
            (grid.rows, w.row_off, w.height), (grid.cols, w.col_off, w.width)))
        strips = [Window(w.row_off, w.col_off, top, w.width)] if top else []
        if left and top < w.height:
            strips.append(Window(w.row_off + top, w.col_off, w.height - top, left))
        return strips

    def outgoing(self, grid: TileGrid | None) -> list[Window]:
        """The parts of its reach beyond its window, handed on: a right strip (its reach's rows), a bottom strip."""
        w, r = self.window, self.reach(grid)
        strips = [Window(r.row_off, w.col_end, r.height, r.col_end - w.col_end)] if r.col_end > w.col_end else []
        if r.row_end > w.row_end:
            strips.append(Window(w.row_end, w.col_off, r.row_end - w.row_end, w.width))
        return strips


def _reached_from_before(anchors: np.ndarray, size: int, start: int, extent: int) -> int:
    """How many px from `start` on the tiles that start before it still reach (at most `extent`)."""
    before = anchors[anchors < start]
    return int(min(max(before[-1] + size - start, 0), extent)) if len(before) else 0


def block_side(grid: TileGrid | None, channels: int, requested: int | None = None) -> int:
    """The block side (px) before snapping: small enough for float64 sums of `channels` planes."""
    side = requested or (DEFAULT_BLOCK_PX if grid else PIXEL_BLOCK_PX)
    by_memory = int((BLOCK_ACCUMULATOR_BYTES / (8 * (channels + 1))) ** 0.5)
    side = min(side, max(by_memory, 256))
    if grid is None and side >= 512:
        side -= side % 512  # blocks then fill whole 512 px tiles of the written GeoTIFF
    return max(side, grid.size if grid else 1)


def _edges(extent: int, anchors: np.ndarray | None, side: int) -> list[int]:
    """Block edges along one axis: on tile anchors when there are tiles, about `side` apart."""
    if anchors is None or len(anchors) == 1:
        edges = list(range(0, extent, side))
    else:
        edges, last = [0], 0
        for a in anchors[1:]:
            if a - last >= side:
                edges.append(int(a))
                last = int(a)
    return [*edges, extent]


def plan_blocks(height: int, width: int, grid: TileGrid | None, side: int) -> list[Block]:
    """The blocks covering a `height` × `width` output, in the order they are written.

    With a tile grid, block edges lie on tile anchors, and each block owns the tiles that start inside it:
    a block's left, upper and upper-left neighbours come before it. The order runs along the raster's shorter
    side first, so the rows of output tiles still waiting for a neighbouring block (the writer's
    frontier) span the shorter side: memory O(min(height, width)), whatever the other side is.
    """
    rows = grid.rows if grid else None
    cols = grid.cols if grid else None
    row_edges, col_edges = _edges(height, rows, side), _edges(width, cols, side)
    cells = [(i, j) for i in range(len(row_edges) - 1) for j in range(len(col_edges) - 1)]
    if width > height:
        cells.sort(key=lambda ij: (ij[1], ij[0]))  # column by column
    blocks = []
    for index, (i, j) in enumerate(cells):
        r0, r1, c0, c1 = row_edges[i], row_edges[i + 1], col_edges[j], col_edges[j + 1]
        window = Window(r0, c0, r1 - r0, c1 - c0)
        if grid is None:
            blocks.append(Block(index, window, (), ()))
        else:  # the tiles that start inside it
            blocks.append(Block(index, window, tuple(int(a) for a in rows[(rows >= r0) & (rows < r1)]),
                                tuple(int(a) for a in cols[(cols >= c0) & (cols < c1)])))
    return blocks
