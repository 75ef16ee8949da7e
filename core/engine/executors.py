"""Where the blocks of a run are computed: on local worker threads, or on a Dask cluster.

One interface: `executor.map(job, blocks)` yields `job(block)` for every block **in the order
given**, computing a few ahead, so the writer sees the same sequence whatever runs the blocks (and
writes byte-identical files). Closing the iterator early (an error, a cancel) cancels what has not
started and waits for what has.

Local workers are threads: GDAL reads, numpy arithmetic on whole planes and onnxruntime all release
the GIL, threads share the loaded model, and nothing is forked or spawned inside QGIS (whose
`sys.executable` is QGIS itself). Dask is optional and imported only here, when a scheduler is given.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any

from ..dependencies import require
from ..errors import PatchworkError, one_line

AHEAD_PER_WORKER = 2  # blocks submitted per worker before the first is written: bounds memory
# A Dask task computes about this many output pixels: each task costs a scheduler round trip (on a 2-core machine the
# scheduler shares the cores with the workers), which tasks of one 1024² block made 1.14-1.30x the local time.
TASK_PIXELS = 2048 * 2048
WAIT_STEP = 0.1  # s between progress and cancel checks while a block is computed elsewhere
CONNECT_TIMEOUT = 15  # s to reach a Dask scheduler
NO_WORKERS_GRACE = 20  # s a cluster may have no workers (a nanny restarting one) before the run gives up


def available_cores() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolve_workers(workers: int) -> int:
    """WORKERS: 0 means every core this process may use."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise PatchworkError(f"WORKERS must be 0 (all cores) or a positive whole number, got {workers!r}.")
    return workers or available_cores()


class ThreadExecutor:
    """`workers` threads of this process, fed by as many reader threads.

    A job with `read(item)` and `compute(item, read_result)` has its reads done ahead by threads of their own,
    so that a worker computes while the next input is read and the caller writes the last result: even one
    worker keeps I/O off its path.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.description = f"{workers} worker thread{'s' if workers > 1 else ''}"
        self.notes: list[str] = []
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="patchwork-block")
        self.reader = ThreadPoolExecutor(workers, thread_name_prefix="patchwork-read")

    def map(self, job: Callable[[Any], Any], items: Iterable[Any],
            waiting: Callable[[], None] | None = None, item_pixels: int = 0) -> Iterator[Any]:
        """`job` over `items` on the threads, results in the order of `items` (`item_pixels`: for Dask only)."""
        read, compute = getattr(job, "read", None), getattr(job, "compute", None)

        def submit(item: Any) -> Future:
            if read is None or compute is None:
                return self.pool.submit(job, item)
            pixels = self.reader.submit(read, item)
            return self.pool.submit(lambda: compute(item, pixels.result()))

        return _ordered(submit, items, self.workers * AHEAD_PER_WORKER, waiting)

    def close(self) -> None:
        """Stop the threads; what has not started is dropped."""
        self.reader.shutdown(wait=True, cancel_futures=True)
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Blocks as tasks on a Dask distributed cluster; the results come back here to be written.

    The job is pickled to the workers (paths and parameters, never a loaded model): workers need
    Patchwork importable, numpy, GDAL's Python bindings, the model file and read access to the raster.
    """

    def __init__(self, scheduler: Any) -> None:
        distributed = require("distributed", "DASK_SCHEDULER")
        self.owns_client = isinstance(scheduler, str)
        if self.owns_client:
            try:
                self.client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, ValueError) as exc:
                raise PatchworkError(
                    f"DASK_SCHEDULER: cannot reach a Dask scheduler at '{scheduler}' ({one_line(exc)}). Start one "
                    "with `dask scheduler` and workers with `dask worker <address>`, or leave DASK_SCHEDULER empty "
                    "to run on this computer.") from exc
        else:
            self.client = scheduler  # a distributed.Client the caller made (and closes)
        workers = self.client.scheduler_info().get("workers", {})
        if not workers:
            self.close()
            raise PatchworkError(f"DASK_SCHEDULER: the scheduler at '{self.client.scheduler.address}' has no "
                                 "workers. Start some with `dask worker <scheduler address>`.")
        self.workers = sum(int(w.get("nthreads", 1)) for w in workers.values())
        self.address = self.client.scheduler.address  # (kept for messages: a lost scheduler has no address)
        self.description = (f"Dask cluster at {self.address}: {len(workers)} workers, "
                            f"{self.workers} threads")
        trimmed = sorted({v for v in self.client.run(_malloc_trim_threshold).values() if v})
        self.notes = [] if not trimmed else [
            f"Note: the Dask workers run with MALLOC_TRIM_THRESHOLD_={','.join(trimmed)} (Dask's default for workers "
            "started by a nanny): every large numpy array is then fresh memory from the system, which made blocks "
            "2.6x slower in Patchwork's benchmark. Start the workers with that setting removed (see the README, "
            "'Dask distributed') for full speed."]

    def map(self, job: Callable[[Any], Any], items: Iterable[Any],
            waiting: Callable[[], None] | None = None, item_pixels: int = 0) -> Iterator[Any]:
        """`job` over `items` on the cluster, results in the order of `items`.

        Items of `item_pixels` output pixels are computed a few consecutive ones per task, up to TASK_PIXELS a
        task, fewer as the end nears (each worker gets tasks until the last), two tasks a worker in flight. The
        items and their order are the local workers', so the outputs are the same bytes.
        """
        items = list(items)
        per_task = max(1, TASK_PIXELS // item_pixels) if item_pixels else 1
        groups, start, share = [], 0, self.workers * AHEAD_PER_WORKER
        while start < len(items):  # smaller tasks towards the end, so that no worker waits long on the last one
            size = max(1, min(per_task, -(-(len(items) - start) // share)))
            groups.append(items[start : start + size])
            start += size
        ahead = share  # two tasks a worker: one computed while the other's result comes back
        shipped = self._ship(job)
        self._workers_seen = time.monotonic()

        def waiting_here() -> None:
            if waiting:
                waiting()
            self._check_cluster()

        try:
            for results in _ordered(lambda group: self.client.submit(_each, job, group, *shipped, pure=False),
                                    groups, ahead, waiting_here):
                yield from results
        except (CancelledError, OSError) as exc:  # (a lost scheduler cancels the futures; a lost link is an OSError)
            if isinstance(exc, OSError) and self.client.status == "running":
                raise
            raise self._lost(f"lost the Dask scheduler at '{self.address}' mid-run") from exc
        except Exception as exc:
            if type(exc).__name__ == "ClosedClientError":  # (a task submitted after the client lost its scheduler)
                raise self._lost(f"lost the Dask scheduler at '{self.address}' mid-run") from exc
            if type(exc).__name__ != "KilledWorker":  # (the job's own errors come back as they are)
                raise
            raise self._lost("Dask workers died computing a block, as often as the scheduler allows "
                             "(distributed.scheduler.allowed-failures): often a worker runs out of memory; give the "
                             "workers more, or set a smaller block size") from exc

    def _ship(self, job: Any) -> tuple:
        """What the workers lack, checked before the first task: `_each`'s extra arguments.

        Each worker reads the raster itself (a worker that cannot is refused, naming the fix), and a model file
        missing on a worker is sent to it, once. So workers need share no filesystem with this computer: the raster
        can be a URL (a cloud-optimised GeoTIFF over /vsicurl/, /vsis3/, ...), and the model goes with the run.
        """
        raster, model_file = getattr(job, "raster", None), getattr(job, "model_file", None)
        views = self.client.run(_worker_view, raster, model_file)
        unreadable = {address: reason for address, (reason, _) in views.items() if reason}
        if unreadable:
            address, reason = next(iter(unreadable.items()))
            raise PatchworkError(
                f"INPUT: {len(unreadable)} of the {len(views)} Dask workers cannot read '{raster}' (worker {address}: "
                f"{reason}). The workers read the raster themselves: give them it at the same path, or a URL every "
                "worker can read (/vsicurl/https://..., /vsis3/..., a STAC item's asset).")
        if model_file is None or all(has_model for _, has_model in views.values()):
            return ()
        with open(model_file.path, "rb") as fh:  # (the workers check its SHA-256 against the run's)
            data = self.client.scatter(fh.read(), broadcast=True, hash=False)
        return model_file, data

    def _check_cluster(self) -> None:
        """Between waits: refuse to wait on a closed client, or on a cluster left without workers for long."""
        if self.client.status in ("closing", "closed"):
            raise self._lost(f"the Dask client lost the scheduler at '{self.address}'")
        if self.client.scheduler_info().get("workers"):  # (kept up to date by the client, every few seconds)
            self._workers_seen = time.monotonic()
        elif time.monotonic() - self._workers_seen > NO_WORKERS_GRACE:
            raise self._lost(f"the Dask scheduler at '{self.address}' has had no workers for {NO_WORKERS_GRACE} s")

    def _lost(self, what: str) -> PatchworkError:
        return PatchworkError(f"DASK_SCHEDULER: {what}. Start the scheduler and workers again (or leave "
                              "DASK_SCHEDULER empty to run on this computer) and run again; a run with RESUME on goes "
                              "on from the blocks it had finished.")

    def close(self) -> None:
        """Close the client this executor opened (a client given to it stays open)."""
        if self.owns_client:
            self.client.close()


def _each(job: Callable[[Any], Any], items: list[Any], model_file: Any = None, data: bytes | None = None) -> list[Any]:
    """On a Dask worker: `job` over a task's items (with the model file's bytes when the client sent them)."""
    if data is not None:
        from .model_input import receive

        receive(model_file, data)
    return [job(item) for item in items]


def _worker_view(raster: str | None, model_file: Any) -> tuple[str | None, bool]:
    """On a Dask worker: why it cannot read `raster` (None: it can), and whether it has the model file."""
    reason = None
    if raster is not None:
        from ..io.raster import RasterSource

        try:
            with RasterSource(raster):
                pass
        except (PatchworkError, RuntimeError, OSError) as exc:
            reason = one_line(exc)
    return reason, model_file is not None and model_file.is_here()


def _malloc_trim_threshold() -> str | None:
    """On a Dask worker: glibc's trim threshold from its environment (Dask's nanny sets 65536 by default)."""
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


class _Outcome:
    """What a future gave, fetched by its done-callback, so that the caller's thread never blocks on `result()`.

    Dask's `result(timeout)` cancels its gather when the timeout passes (distributed#8514: runs whose blocks took
    longer than a wait step to come back failed), and its `result()` waits for good for data whose worker is gone.
    The callback's thread fetches the result instead; the caller waits on an event, in steps, between which it
    hears cancel and checks the cluster.
    """

    def __init__(self, future: Future) -> None:
        self.future = future
        self.ready = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        future.add_done_callback(self._fetch)

    def _fetch(self, future: Future) -> None:
        try:
            self.value = future.result()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, which raises it
            self.error = exc
        finally:
            self.ready.set()

    def cancel(self) -> None:
        """Cancel the future, if its executor can still be told (a closed Dask client cannot, and needs not)."""
        try:
            self.future.cancel()
        except Exception:  # noqa: BLE001 - cleaning up after another error, which must not be masked
            pass


def _ordered(submit: Callable[[Any], Future], items: Iterable[Any], ahead: int,
             waiting: Callable[[], None] | None) -> Iterator[Any]:
    """Results of `submit(item)` futures in item order, with at most `ahead` submitted and not yet yielded.

    concurrent.futures and Dask futures alike: `add_done_callback`, `result()` and `cancel()` (see `_Outcome`).

    While a result is awaited, `waiting()` runs every WAIT_STEP seconds (progress, a cancel that raises, the
    cluster's health) in the caller's thread.
    """
    pending: deque[_Outcome] = deque()
    items = iter(items)
    try:
        for item in items:
            pending.append(_Outcome(submit(item)))
            if len(pending) >= ahead:
                break
        while pending:
            outcome = pending.popleft()
            while not outcome.ready.wait(WAIT_STEP):
                if waiting:
                    waiting()
            if outcome.error is not None:
                raise outcome.error
            for item in items:  # keep `ahead` in flight while this one is written
                pending.append(_Outcome(submit(item)))
                break
            yield outcome.value
    finally:
        for outcome in pending:
            outcome.cancel()


def make_executor(workers: int = 0, scheduler: Any = None) -> ThreadExecutor | DaskExecutor:
    """The executor for WORKERS and DASK_SCHEDULER (an address like tcp://host:8786, or a distributed.Client)."""
    if scheduler:
        return DaskExecutor(scheduler)
    return ThreadExecutor(resolve_workers(workers))
