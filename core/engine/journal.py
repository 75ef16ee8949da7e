"""The journal of a resumable run: finished blocks (or groups of tiles) kept beside the output until it completes.

With RESUME, each finished block is saved (written under a temporary name, synced, renamed) in
``.<output>.journal/`` next to the output, with a description of the run. A run that dies leaves the
journal; the same run started again with RESUME reads the blocks back instead of computing them,
and writes the output from the first block on, so the file is the one an uninterrupted run writes.
A journal of another run (other input, model or parameters) is never used. Without RESUME, a
journal left for the same output is removed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field

import numpy as np

from ..geometry import Window
from ..io.partials import Log, sweep_debris
from .stitching import Finished

RUN_FILE = "run.json"


@dataclass
class Piece:
    """Sums of some tiles over `window`, to be added where other blocks' tiles reach too (see `halos`)."""

    window: Window
    sums: Finished  # the aggregation's sums
    votes: Finished | None = None  # each tile's vote (the disagreement measure)
    squares: Finished | None = None  # the values squared (the variance measure)

    def part(self, window: Window) -> Piece:
        """The piece over `window` (inside its own), with arrays of its own."""
        return Piece(window, *(None if f is None else f.part(window) for f in (self.sums, self.votes, self.squares)))

    def add(self, other: Piece) -> None:
        """Add `other` where the two meet."""
        for mine, theirs in ((self.sums, other.sums), (self.votes, other.votes), (self.squares, other.squares)):
            if mine is not None:
                mine.add(theirs)


@dataclass
class BlockResult:
    """One computed block: the arrays to write at `window`.

    Until `halos` completes it, also the sums of its border strips and of the strips past its edges (`pieces`).
    """

    index: int
    window: Window
    main: np.ndarray  # (h, w) classes, or (K, h, w) float32 values
    probabilities: np.ndarray | None  # (K, h, w) float32
    covered: int  # pixels with data
    tiles: int  # model tiles it predicted
    uncertainty: np.ndarray | None = None  # (h, w) float32, or (K, h, w) for values' variance
    aoa: np.ndarray | None = None  # (h, w) uint8: 1 inside the model's area of applicability, 0 outside, 255 nodata
    pieces: list[Piece] = field(default_factory=list)  # its border strips and the strips past its edges


def file_digest(path: str) -> str:
    """SHA-256 of a file: the identity of a model, whoever loads it."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def journal_folder(output: str) -> str:
    """The hidden folder beside `output` that keeps the finished blocks of a resumable run."""
    folder, name = os.path.split(os.path.abspath(output))
    return os.path.join(folder, f".{name}.journal")


class BlockJournal:
    """The blocks a resumable run has finished, kept beside its output until it completes."""
    def __init__(self, output: str, run: dict, enabled: bool, log: Log | None = None) -> None:
        self.folder = journal_folder(output)
        self.run = json.loads(json.dumps(run))  # as it reads back from the file
        self.enabled = enabled
        self.done: set[int] = set()
        log = log or (lambda _message: None)
        if os.path.isdir(self.folder):
            earlier = self._read_run()
            if enabled and earlier == self.run:
                self.done = {int(name[6:-4]) for name in os.listdir(self.folder)
                             if name.startswith("block-") and name.endswith(".npz")}
                log(f"RESUME: {len(self.done)} finished blocks of an earlier run of this output are reused "
                    f"('{os.path.basename(self.folder)}').")
            else:
                for target in (earlier or {}).get("outputs", []):
                    sweep_debris(target, log)  # the dead run's partial files, whatever it was writing
                shutil.rmtree(self.folder, ignore_errors=True)
                why = ("it was made with other inputs or parameters" if enabled else
                       "RESUME is off (set it to continue such a run instead of starting again)")
                log(f"Removed the journal of an earlier run of this output that did not finish: {why}.")
        if enabled and not self.done:
            os.makedirs(self.folder, exist_ok=True)
            self._atomic_write(RUN_FILE, lambda fh: fh.write(json.dumps(self.run, indent=1).encode()))

    def _read_run(self) -> dict | None:
        try:
            with open(os.path.join(self.folder, RUN_FILE), encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    def _atomic_write(self, name: str, write) -> None:
        tmp = os.path.join(self.folder, f".{name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, os.path.join(self.folder, name))

    def _path(self, index: int) -> str:
        return os.path.join(self.folder, f"block-{index}.npz")

    def load(self, index: int, window: Window) -> BlockResult | None:
        """The saved block, or None (not saved, or unreadable: it is computed again, and saved again)."""
        saved = self.load_arrays(index)
        if saved is None or "main" not in saved:
            self.done.discard(index)
            return None
        pieces = []
        for k in range(int(saved.get("pieces", 0))):
            parts = [Finished(Window(*saved[f"piece{k}_{name}_window"].tolist()), saved[f"piece{k}_{name}_sums"],
                              saved[f"piece{k}_{name}_weight"]) if f"piece{k}_{name}_sums" in saved else None
                     for name in ("sums", "votes", "squares")]
            pieces.append(Piece(parts[0].window, *parts))
        return BlockResult(index, window, saved["main"], saved.get("probabilities"), int(saved["covered"]), 0,
                           saved.get("uncertainty"), saved.get("aoa"), pieces)

    def save(self, result: BlockResult) -> None:
        """Keep a computed block (when resumable): its arrays, and its pieces as they came from its tiles."""
        arrays = {"main": result.main, "covered": np.int64(result.covered), "pieces": np.int64(len(result.pieces))}
        for name in ("probabilities", "uncertainty", "aoa"):
            if getattr(result, name) is not None:
                arrays[name] = getattr(result, name)
        for k, piece in enumerate(result.pieces):
            for name in ("sums", "votes", "squares"):
                part = getattr(piece, name)
                if part is not None:
                    w = part.window
                    arrays[f"piece{k}_{name}_window"] = np.array([w.row_off, w.col_off, w.height, w.width])
                    arrays[f"piece{k}_{name}_sums"], arrays[f"piece{k}_{name}_weight"] = part.sums, part.weight
        self.save_arrays(result.index, arrays)

    def load_arrays(self, index: int) -> dict[str, np.ndarray] | None:
        """The arrays saved for piece `index` (a block, a group of tiles), or None (not saved, or unreadable)."""
        if index not in self.done:
            return None
        try:
            with np.load(self._path(index)) as saved:
                return {name: saved[name] for name in saved.files}
        except (OSError, ValueError, KeyError):
            self.done.discard(index)
            return None

    def save_arrays(self, index: int, arrays: dict[str, np.ndarray]) -> None:
        """Keep the arrays of finished piece `index` (when resumable)."""
        if not self.enabled or index in self.done:
            return
        self._atomic_write(f"block-{index}.npz", lambda fh: np.savez(fh, **arrays))

    def remove(self) -> None:
        """Remove the journal: the run is complete."""
        shutil.rmtree(self.folder, ignore_errors=True)
