"""Handing on what tiles add past their block's edges, so that no tile is computed twice.

A block computes only the tiles that start inside it (`tiling`). With overlap, those tiles also reach the
first rows of the block below and the first columns of the block to the right. A block's result therefore
comes with pieces: the sums of the strips past its edges, and the sums its own tiles made over its top and
left border strips, which earlier blocks' tiles reach too. Here, where the results are written in plan
order, each block's border strips are completed with the pieces handed on to it and finished (classes,
probabilities, uncertainty, the mask), and its own outgoing pieces are kept for the blocks they reach.

A block's left, upper and upper-left neighbours come before it in the plan, so everything a border strip
needs has arrived when its block is written, and the sums are added in plan order whatever computed them:
the same bytes on one worker, many, a Dask cluster, or a resumed run. What waits here is a band of strips
as deep as the overlap along the plan's shorter side: O(overlap × min(height, width)).
"""
from __future__ import annotations

from .blocks import BlockJob, covered_pixels, finished_block
from .journal import BlockResult, Piece
from .tiling import Block


class HaloExchange:
    """The pieces blocks hand on, until the blocks they reach are written."""

    def __init__(self, blocks: list[Block], job: BlockJob) -> None:
        self.windows = [(b.index, b.window) for b in blocks]
        self.job = job
        self.waiting: dict[int, list[Piece]] = {}  # block index → pieces handed on to it, in plan order

    def complete(self, block: Block, result: BlockResult) -> BlockResult:
        """`result` with its border strips finished from every tile that reaches them; its outgoing pieces kept.

        Call in plan order, for every block (a block computed from nothing takes no pieces, and hands on none).
        """
        handed = self.waiting.pop(block.index, [])
        w = block.window
        for piece in result.pieces:
            if w.contains(piece.window):  # a border strip: its own tiles' sums, then the earlier blocks'
                for earlier in handed:
                    piece.add(earlier)
                self._paste(result, piece)
            else:  # past its edges: for the blocks it reaches
                for index, window in self.windows:
                    both = window.intersection(piece.window)
                    if both is not None and index != block.index:
                        self.waiting.setdefault(index, []).append(piece.part(both))
        result.pieces = []
        return result

    def _paste(self, result: BlockResult, piece: Piece) -> None:
        """Finish a border strip and write it over the block's arrays (which its own tiles alone had made)."""
        job, info, s = self.job, self.job.info, piece.window
        strip = finished_block(result.index, piece.sums, info, job.probabilities, 0, job.aggregation,
                               job.uncertainty, piece.votes, piece.squares)
        if job.mask is not None:
            strip = job.mask.applied(strip, job.mask.inside(s), info)
        w = result.window
        here = (slice(s.row_off - w.row_off, s.row_end - w.row_off),
                slice(s.col_off - w.col_off, s.col_end - w.col_off))
        before = covered_pixels(result.main[(..., *here)], info)
        result.main[(..., *here)] = strip.main
        result.covered += strip.covered - before
        for name in ("probabilities", "uncertainty"):
            if getattr(result, name) is not None:
                getattr(result, name)[(..., *here)] = getattr(strip, name)

