"""#28: Dask runs that carry probabilities on a real 4096² scene, and a cluster that fails mid-run: a clear message,
never a hang or a dead client, and RESUME finishes the map afterwards with the same bytes."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import PatchworkError, classify
from patchwork.core.engine import executors
from patchwork.core.engine.journal import journal_folder
from tests.cluster import workers_without_our_files
from tests.conftest import SHARED_DATA, Recorder

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

DEEPNESS = os.path.join(SHARED_DATA, "models", "one_output_softmax_bsx2x512x512.onnx")
TWO_HEADS = os.path.join(SHARED_DATA, "models", "two_outputs_softmax_bsx2x512x512.onnx")
SOFT_VOTE = dict(bands=[1, 2, 3], scale=1 / 255, overlap=64, window="hann", aggregation="softvote", block_size=1024)


def digest(path: str) -> bytes:
    return gdal.Open(path).ReadAsArray().tobytes()


@pytest.fixture(scope="module")
def scene_4096(tmp_path_factory, ortho_path) -> str:
    """The orthophoto tiled to 4096² (RGBA, 8-bit, tiled GeoTIFF) on its own grid."""
    ortho = gdal.Open(ortho_path)
    pixels = np.tile(ortho.ReadAsArray(), (1, 5, 4))[:, :4096, :4096]
    path = str(tmp_path_factory.mktemp("scene") / "ortho_4096.tif")
    out = gdal.GetDriverByName("GTiff").Create(path, 4096, 4096, 4, gdal.GDT_Byte, ["TILED=YES"])
    out.SetGeoTransform(ortho.GetGeoTransform())
    out.SetProjection(ortho.GetProjection())
    out.WriteArray(pixels)
    out = None
    return path


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, scene_4096) -> dict[str, str]:
    """The soft vote with probabilities and uncertainty on two local worker threads: what every run must equal."""
    folder = tmp_path_factory.mktemp("local")
    paths = {name: str(folder / f"{name}.tif") for name in ("classes", "probabilities", "uncertainty")}
    classify(scene_4096, DEEPNESS, paths["classes"], probabilities=paths["probabilities"],
             uncertainty=paths["uncertainty"], workers=2, **SOFT_VOTE)
    return paths


@pytest.fixture(autouse=True, scope="module")
def workers_as_the_readme_advises():
    """Workers (those the nannies restart included) start without MALLOC_TRIM_THRESHOLD_, as the README advises: a
    nanny writes its variables into this process's environment for good, where later tests' clusters inherit them."""
    before = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        yield
    if before is None:
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    else:
        os.environ["MALLOC_TRIM_THRESHOLD_"] = before


def cluster(**config):
    """A LocalCluster of two worker processes and its client, with these Dask settings."""
    with dask.config.set(config):
        local = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    return local, distributed.Client(local)


def test_a_4096_soft_vote_with_probabilities_on_dask_is_the_same_bytes_as_local_workers(tmp_path, scene_4096,
                                                                                       local_run):
    """The case that failed 7 of 7 (distributed's result(timeout) cancelled gathers of blocks slower than 0.1 s)."""
    local, client = cluster()
    try:
        for run in range(2):
            paths = {name: str(tmp_path / f"{name}{run}.tif") for name in local_run}
            result = classify(scene_4096, DEEPNESS, paths["classes"], probabilities=paths["probabilities"],
                              uncertainty=paths["uncertainty"], scheduler=client, **SOFT_VOTE)
            assert result.executor.startswith("Dask cluster")
            for name in local_run:
                assert digest(paths[name]) == digest(local_run[name]), name
        shares = gdal.Open(local_run["probabilities"]).ReadAsArray()
        assert np.ptp(shares) > 0.2  # (probabilities that vary over the scene, not a constant)
        assert client.submit(sum, [1, 2]).result() == 3  # the client is still alive
    finally:
        client.close()
        local.close()


def test_a_scheduler_lost_mid_run_is_a_clear_error_and_resume_finishes_the_same_map(tmp_path, scene_4096,
                                                                                   local_run):
    local, client = cluster(**{"distributed.comm.timeouts.connect": "3s"})
    out, probabilities = str(tmp_path / "classes.tif"), str(tmp_path / "probabilities.tif")
    started = time.monotonic()
    try:
        with pytest.raises(PatchworkError, match="DASK_SCHEDULER: lost the Dask scheduler at 'tcp://.*' mid-run.*"
                                                 "RESUME on goes on from the blocks it had finished"):
            classify(scene_4096, DEEPNESS, out, probabilities=probabilities, scheduler=client, resume=True,
                     feedback=Recorder(30, local.close), **SOFT_VOTE)
    finally:
        client.close()
        local.close()
    assert time.monotonic() - started < 60  # a message, not a hang
    kept = [name for name in os.listdir(journal_folder(out)) if name.endswith(".npz")]
    assert kept and not os.path.exists(out)  # blocks finished before, and no half map
    log = Recorder()
    result = classify(scene_4096, DEEPNESS, out, probabilities=probabilities, resume=True, workers=2, feedback=log,
                      **SOFT_VOTE)
    assert result.blocks_resumed == len(kept) < result.blocks  # the rest computed now
    assert any(f"RESUME: {len(kept)} finished blocks of an earlier run" in line for line in log.lines), log.lines
    assert digest(out) == digest(local_run["classes"]) and digest(probabilities) == digest(local_run["probabilities"])


def test_workers_that_die_or_leave_mid_run_are_a_clear_error_and_the_client_lives_on(tmp_path, scene_4096,
                                                                                     monkeypatch):
    monkeypatch.setattr(executors, "NO_WORKERS_GRACE", 3)
    local, client = cluster(**{"distributed.scheduler.allowed-failures": 0})
    try:  # workers killed (as the kernel's out-of-memory killer does) while they compute
        pids = list(client.run(os.getpid).values())
        with pytest.raises(PatchworkError, match="Dask workers died computing a block.*runs out of memory"):
            classify(scene_4096, DEEPNESS, str(tmp_path / "a.tif"), scheduler=client, feedback=Recorder(
                30, lambda: [os.kill(pid, signal.SIGKILL) for pid in pids]), **SOFT_VOTE)
        client.wait_for_workers(2, timeout=60)  # (the nannies start new workers)
        assert client.submit(sum, [1, 2]).result() == 3  # the client works on
    finally:
        client.close()
        local.close()
    local, client = cluster()
    try:  # every worker retired mid-run: the tasks wait for workers that never come
        with pytest.raises(PatchworkError, match="has had no workers for 3 s"):
            classify(scene_4096, DEEPNESS, str(tmp_path / "b.tif"), scheduler=client,
                     feedback=Recorder(30, lambda: local.scale(0)), **SOFT_VOTE)
        local.scale(2)
        client.wait_for_workers(2, timeout=60)
        assert client.submit(sum, [1, 2]).result() == 3
    finally:
        client.close()
        local.close()
    assert not os.path.exists(tmp_path / "a.tif") and not os.path.exists(tmp_path / "b.tif")


def test_a_model_with_two_heads_gives_each_heads_maps_on_dask_as_on_local_workers(tmp_path, scene_4096):
    local, client = cluster()
    try:
        runs = {how: classify(scene_4096, TWO_HEADS, str(tmp_path / how / "classes.tif"),
                              probabilities=str(tmp_path / how / "probabilities.tif"), **SOFT_VOTE, **settings)
                for how, settings in (("local", {"workers": 2}), ("dask", {"scheduler": client}))}
    finally:
        client.close()
        local.close()
    local_files, dask_files = (sorted(os.listdir(tmp_path / how)) for how in ("local", "dask"))
    assert local_files == dask_files and len(runs["dask"].other_heads) == 1
    rasters = [name for name in local_files if name.endswith(".tif")]
    assert len(rasters) == 4  # classes and probabilities of each head
    for name in rasters:
        assert digest(str(tmp_path / "dask" / name)) == digest(str(tmp_path / "local" / name)), name


def test_workers_that_share_no_filesystem_read_a_cog_over_http_and_get_the_model_sent(tmp_path, scene_4096,
                                                                                      local_run):
    """#28 item 5: the raster is a cloud-optimised GeoTIFF behind an HTTP server that answers byte ranges only, the
    model file exists on the client alone; workers in their own folders read their blocks over HTTP, receive the
    model once, and the client writes the same bytes as local workers reading the file."""
    import shutil

    from tests.tiles import RangeServer

    client_side = tmp_path / "client"
    client_side.mkdir()
    model = str(client_side / "model.onnx")
    shutil.copy(DEEPNESS, model)
    gdal.Translate(str(client_side / "scene_cog.tif"), scene_4096, format="COG",
                   creationOptions=["BLOCKSIZE=512", "COMPRESS=DEFLATE"])
    server = RangeServer(str(client_side))
    url = f"/vsicurl/{server.url}scene_cog.tif"
    local = distributed.LocalCluster(n_workers=0, processes=True, dashboard_address=None)
    client = distributed.Client(local)
    workers = workers_without_our_files(local.scheduler_address, str(client_side), str(tmp_path / "workers"))
    if workers is None:
        pytest.skip("workers on another filesystem need root and unshare -m here")
    try:
        client.wait_for_workers(2, timeout=60)
        assert set(client.run(os.path.exists, model).values()) == {False}  # (what "no shared filesystem" means)
        assert len(set(client.run(os.getcwd).values())) == 2
        paths = {name: str(client_side / f"{name}.tif") for name in local_run}
        result = classify(url, model, paths["classes"], probabilities=paths["probabilities"],
                          uncertainty=paths["uncertainty"], scheduler=client, **SOFT_VOTE)
        assert result.executor.startswith("Dask cluster") and result.blocks > 4
        for name in local_run:
            assert digest(paths[name]) == digest(local_run[name]), name
        assert all(ranged.startswith("bytes=") for path, ranged in server.requests if path.endswith(".tif"))
        received = client.run(lambda: sorted(os.listdir(os.path.join(__import__("tempfile").gettempdir(),
                                                                     "patchwork-models"))))
        assert all(any(name.endswith(".onnx") for name in names) for names in received.values()), received
        # a raster only the client can see: refused before any block, naming the fix
        with pytest.raises(PatchworkError, match=r"INPUT: 2 of the 2 Dask workers cannot read '.*scene_cog.tif'.*"
                                                 r"/vsicurl/"):
            classify(str(client_side / "scene_cog.tif"), model, str(client_side / "refused.tif"), scheduler=client,
                     **SOFT_VOTE)
        assert not os.path.exists(client_side / "refused.tif")
    finally:
        client.close()
        local.close()
        server.close()
        for worker in workers:
            worker.kill()
            worker.wait()
