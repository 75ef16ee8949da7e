"""Tiles read and predicted in groups on any executor: the tile loop of detect and superresolve.

Their outputs are not a map on the input's grid (boxes; a finer grid). A run's tiles, in one order, are cut into
groups that start on a batch boundary; a group is read, given to the model in batches of `batch_size` in that order
and turned into what its task keeps (`finish`), on a worker thread or a Dask worker. A tile is therefore always
predicted in the same batch with the same neighbours, and the results come back in the run's order (`executors`):
the outputs are the same bytes on one worker, several, or a cluster. (Classify's blocks stitch their tiles where
they are computed: `blocks`.)
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import PatchworkError
from ..geometry import Window
from ..io.partials import OutputLock
from ..io.raster import RasterSource
from ..models import Model, load_model
from ..models.base import require_model_file
from ..version import PATCHWORK_VERSION
from .blocks import BlockProgress
from .executors import available_cores, resolve_workers
from .journal import BlockJournal, file_digest
from .model_input import DASK_NEEDS_A_FILE, InputTransform, ModelFile

GROUP_TILES = 16  # tiles a group holds at most (rounded to whole batches): a few MB of input, a second or so of work


@dataclass(frozen=True)
class TileGroup:
    """Consecutive tiles of a run, read and predicted together."""

    index: int
    windows: tuple[Window, ...]

    @property
    def work(self) -> int:
        """Its share of the run, for progress."""
        return len(self.windows)


def loaded_for_tiles(model: Model | str, device: str, workers: int,
                     scheduler: Any) -> tuple[Model, ModelFile | None, int]:
    """The model of a tile-group run, the file its workers load, and the local workers (1 with Dask).

    A model given loaded has no file (then no Dask). onnxruntime's threads are shared out among the local workers,
    so one worker alone keeps every core busy.
    """
    local_workers = 1 if scheduler else resolve_workers(workers)
    if not isinstance(model, str):
        if scheduler:
            raise PatchworkError(DASK_NEEDS_A_FILE)
        return model, None, local_workers
    require_model_file(model)
    model_file = ModelFile(os.path.abspath(model), False, device, file_digest(model))
    threads = max(1, available_cores() // local_workers)
    return load_model(model_file.path, device=device, threads=threads), model_file, local_workers


def tile_groups(windows: list[Window], batch_size: int, breaks: list[int] | None = None) -> list[TileGroup]:
    """`windows` cut into groups of whole batches (about GROUP_TILES tiles).

    A group never spans a `breaks` index (superresolve's rows of tiles: each row's batches start with the row).
    """
    per_group = max(1, GROUP_TILES // batch_size) * batch_size
    starts = sorted({0, *(breaks or [])} - {len(windows)})
    groups = []
    for first, end in zip(starts, [*starts[1:], len(windows)]):
        for start in range(first, end, per_group):
            groups.append(TileGroup(len(groups), tuple(windows[start : min(start + per_group, end)])))
    return groups


# What a task keeps of a batch: finish(model, windows, model input, validity) → anything picklable.
Finish = Callable[[Model, list[Window], np.ndarray, np.ndarray], Any]


@dataclass
class TileGroupJob:
    """Read and predict one group of tiles (a worker thread's or a Dask worker's task): `finish` of each batch."""

    raster: str
    transform: InputTransform
    batch_size: int
    finish: Finish  # a module-level function (or a functools.partial of one): Dask pickles it
    model_file: ModelFile | None
    model: Model | None = field(default=None, repr=False)
    progress: BlockProgress | None = field(default=None, repr=False)  # this process only: tiles done, cancel

    def __getstate__(self) -> dict:
        if self.model_file is None:
            raise PatchworkError(DASK_NEEDS_A_FILE)
        return {**self.__dict__, "model": None, "progress": None}

    def __call__(self, group: TileGroup) -> list:
        """Read and compute one group (a Dask worker's task)."""
        return self.compute(group, self.read(group))

    def read(self, group: TileGroup) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each tile's pixels and validity (padded as nodata beyond the raster)."""
        with RasterSource(self.raster) as src:  # one per group: thread-safe, and its GDAL cache is freed after
            return [src.read(w, self.transform.bands) for w in group.windows]

    def compute(self, group: TileGroup, pixels: list[tuple[np.ndarray, np.ndarray]]) -> list:
        """`finish` of each batch of the group, in order."""
        model = self.model or self.model_file.load()
        results = []
        for start in range(0, len(group.windows), self.batch_size):
            if self.progress:
                self.progress.tiles(group.index, min(self.batch_size, len(group.windows) - start))  # or Cancelled
            batch = pixels[start : start + self.batch_size]
            x = np.stack([self.transform.apply(data, valid) for data, valid in batch])
            valid = np.stack([valid for _, valid in batch])
            results.append(self.finish(model, list(group.windows[start : start + self.batch_size]), x, valid))
        return results


def run_tile_groups(job: TileGroupJob, groups: list[TileGroup], progress: BlockProgress, executor,
                    tile_pixels: int = 0, journal: BlockJournal | None = None) -> Iterator[tuple[TileGroup, list]]:
    """Each group with its batches' results, in the groups' order, computed by `executor` (`make_executor`).

    With a `journal` (RESUME), the groups an earlier run of the same task finished are read back from it and the
    others are saved to it as they come. What is still running stops when the iteration ends early (an error, a
    cancel).
    """
    job.progress = progress
    done = journal.done if journal else set()
    computed = executor.map(job, [g for g in groups if g.index not in done], progress.poll,
                            item_pixels=tile_pixels * GROUP_TILES)
    try:
        for group in groups:
            progress.poll()
            results = _from_arrays(journal.load_arrays(group.index)) if group.index in done else None
            if results is None:
                results = next(computed) if group.index not in done else job(group)  # (unreadable: again, here)
                if journal:
                    journal.save_arrays(group.index, _as_arrays(results))
            yield group, results
            progress.block_written(group)
        progress.poll()
    finally:
        progress.cancelled.set()  # an error or cancel stops the workers at their next batch …
        computed.close()  # … and what has not started


def _as_arrays(results: list[tuple]) -> dict[str, np.ndarray]:
    """A group's results (per batch, a tuple of arrays and numbers) as the journal keeps them."""
    return {f"b{i}_{j}": np.asarray(part) for i, parts in enumerate(results) for j, part in enumerate(parts)}


def _from_arrays(arrays: dict[str, np.ndarray] | None) -> list[tuple] | None:
    """A group's results back from the journal; None when it holds none."""
    if arrays is None:
        return None
    keys = sorted(arrays, key=lambda k: tuple(int(n) for n in k[1:].split("_")))
    batches: dict[int, list] = {}
    for key in keys:
        batches.setdefault(int(key[1:].split("_")[0]), []).append(arrays[key])
    return [tuple(batches[i]) for i in sorted(batches)]


@contextmanager
def tile_journal(task: str, job: TileGroupJob, windows: list[Window], output: str, resume: bool, log,
                 **settings) -> Iterator[BlockJournal]:
    """The journal of a run of `task` over `windows` (RESUME), removed when the run completes.

    The run holds `output`'s lock meanwhile (one run at a time writes an output and its journal). A journal is
    reused only by a run with the same raster (path, size, time changed), model file, input mapping, tiles and
    `settings`; any other run removes it (and without RESUME no journal is kept).
    """
    lock = OutputLock(output, "OUTPUT", log).acquire()
    try:
        stat = os.stat(job.raster) if os.path.exists(job.raster) else None
        run = {"patchwork": PATCHWORK_VERSION, "task": task, "raster": os.path.abspath(job.raster),
               "raster_bytes": stat.st_size if stat else None, "raster_mtime_ns": stat.st_mtime_ns if stat else None,
               "model": job.model_file.identity if job.model_file else job.model.info.name,
               "transform": repr(job.transform), "batch_size": job.batch_size,
               "tiles": hashlib.sha256(repr(windows).encode()).hexdigest(), "outputs": [os.path.abspath(output)],
               **settings}
        journal = BlockJournal(output, run, resume, log)
        yield journal
        journal.remove()
    finally:
        lock.release()
