"""Scale: the same bytes on 1 worker, 2 workers and a Dask cluster; runs that resume; COG; devices; O(block) plans."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import GeoTiffWriter, PatchworkError, classify, stitch_chips
from patchwork.core.engine.journal import journal_folder
from patchwork.core.engine.tiling import TileGrid, block_side, plan_blocks
from patchwork.core.models.onnx import execution_providers
from tests.conftest import REPO, SHARED_DATA, CancelInGdal, files_under
from tests.onnx_models import free_spatial_dims_file

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")
DEEPNESS = os.path.join(SHARED_DATA, "models", "one_output_softmax_bsx2x512x512.onnx")
RED_DETECTOR = os.path.join(SHARED_DATA, "models", "one_output_sigmoid_red_detector.onnx")  # finds both classes


def digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@pytest.fixture(scope="module")
def forest_onnx(tmp_path_factory, s2_path):
    """A random forest trained on the real S2 pixels (rules classes), exported by skl2onnx: a per-pixel ONNX model."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    from patchwork.core import load_model

    data = gdal.Open(s2_path).ReadAsArray().astype(np.float32) * np.float32(1e-4)
    pixels = data.reshape(4, -1).T
    labels = load_model(RULES).predict_pixels(pixels.astype(np.float64))
    pick = np.random.default_rng(0).choice(len(pixels), 3000, replace=False)
    forest = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0).fit(pixels[pick], labels[pick])
    path = tmp_path_factory.mktemp("forest") / "forest.onnx"
    path.write_bytes(to_onnx(forest, pixels[:1], options={id(forest): {"zipmap": False}},
                             target_opset=17).SerializeToString())
    return str(path)


@pytest.fixture(scope="module")
def deepness_free(tmp_path_factory):
    """A Deepness model with free tile sides, so it runs in small tiles (many blocks on the orthophoto)."""
    return free_spatial_dims_file(RED_DETECTOR, str(tmp_path_factory.mktemp("deepness") / "free.onnx"))


@pytest.fixture(scope="module")
def dask_cluster():
    """A real Dask cluster of two worker processes on this machine, closed after the module."""
    distributed = pytest.importorskip("distributed")
    import dask

    # As the README advises: workers without Dask's MALLOC_TRIM_THRESHOLD_ (2.6x faster blocks here).
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def runs(request) -> list[tuple[str, dict]]:
    return [("1 worker", {"workers": 1}), ("2 workers", {"workers": 2}),
            ("Dask, 2 processes", {"scheduler": request.getfixturevalue("dask_cluster")})]


@pytest.mark.parametrize("case", ["rules", "forest-onnx", "deepness-hann-softvote"])
def test_outputs_are_byte_identical_on_1_worker_2_workers_and_a_dask_cluster(request, tmp_path, case, s2_path,
                                                                             ortho_path):
    if case == "rules":
        raster, model, args = s2_path, RULES, dict(scale=1e-4, aggregation="softvote", block_size=64)
    elif case == "forest-onnx":
        raster, model = s2_path, request.getfixturevalue("forest_onnx")
        args = dict(scale=1e-4, aggregation="softvote", block_size=64)
    else:
        raster, model = ortho_path, request.getfixturevalue("deepness_free")
        args = dict(bands=[1, 2, 3], scale=1 / 255, tile_size=256, overlap=64, window="hann", aggregation="softvote",
                    block_size=256)
    measure = {"rules": "margin", "forest-onnx": "entropy", "deepness-hann-softvote": "disagreement"}[case]
    hashes, blocks = {}, set()
    for name, how in runs(request):
        out, probabilities = str(tmp_path / f"{name}.tif"), str(tmp_path / f"{name}-p.tif")
        uncertainty = str(tmp_path / f"{name}-u.tif")
        result = classify(raster, model, out, probabilities=probabilities, uncertainty=uncertainty,
                          uncertainty_measure=measure, **args, **how)
        hashes[name] = (digest(out), digest(probabilities), digest(uncertainty))
        blocks.add(result.blocks)
        if "scheduler" in how:
            assert result.executor.startswith("Dask cluster at tcp://") and "2 workers" in result.executor
    assert len(set(hashes.values())) == 1, hashes
    assert blocks.pop() >= 6  # several blocks, computed in parallel
    classes = gdal.Open(str(tmp_path / "1 worker.tif")).ReadAsArray()
    assert len(np.unique(classes)) >= 2  # a real map, not an empty one


def test_one_worker_gives_a_network_every_core_and_a_per_pixel_model_one_thread(monkeypatch, forest_onnx):
    """WORKERS=1 keeps the machine busy on a network (its convolutions: the same bytes on any thread count, tested
    above); a tree ensemble's sum depends on the thread count, so it keeps one."""
    from patchwork.core.tasks import classify as task

    monkeypatch.setattr(task, "available_cores", lambda: 4)
    arguments = dict(model=RED_DETECTOR, head=None, model_type="auto", threshold=None, scheduler=None,
                     trust_model=False, device="cpu")
    threads = {}
    for workers in (1, 2, 4):
        network, _ = task._loaded_model(arguments, workers)
        forest, _ = task._loaded_model({**arguments, "model": forest_onnx}, workers)
        threads[workers] = tuple(m.session.get_session_options().intra_op_num_threads for m in (network, forest))
    assert threads == {1: (4, 1), 2: (2, 1), 4: (1, 1)}


def test_detections_and_super_resolution_are_the_same_on_1_worker_2_workers_and_a_dask_cluster(request, tmp_path,
                                                                                               ortho_path):
    """detect and superresolve share the tile-group loop (`engine.tile_groups`): any executor, the same bytes."""
    from patchwork.core import detect, superresolve
    from tests.onnx_models import cell_detector

    detector = cell_detector(str(tmp_path / "cells.onnx"), "v8")
    superres = os.path.join(SHARED_DATA, "models-more", "dummy_superresolution_model.onnx")
    scene = str(tmp_path / "scene.tif")
    gdal.Translate(scene, ortho_path, srcWin=[0, 0, 600, 420], bandList=[1, 2, 3])
    found, finer = {}, {}
    for name, how in runs(request):
        boxes = detect(ortho_path, detector, str(tmp_path / f"{name}.gpkg"), bands=[1, 2, 3], scale=1 / 255,
                       tile_size=128, overlap=32, batch_size=2, **how)
        found[name] = (boxes.tiles, boxes.boxes.tobytes())
        result = superresolve(scene, superres, str(tmp_path / f"{name}.tif"), scale=1 / 255, overlap=16, batch_size=3,
                              **how)
        finer[name] = digest(result.output)
    assert len(set(found.values())) == 1 and len(set(finer.values())) == 1, (found.keys(), finer)
    tiles, boxes = found["1 worker"]
    assert tiles == 9 * 13 and len(np.frombuffer(boxes).reshape(-1, 6)) > 50  # many groups, a real result


def test_similarity_maps_are_the_same_on_any_executor_and_a_journal_is_kept_per_query(request, tmp_path, ortho_path):
    """recognize sends Dask workers the model file and the query's embedding (a ModelFile with its query); a
    journal of another query's run is never reused."""
    from patchwork.core import recognize

    model = os.path.join(SHARED_DATA, "models-more", "dummy_recognition_model.onnx")
    native = gdal.Open(ortho_path).GetGeoTransform()[1]
    queries = []
    for i, (col, row) in enumerate(((224, 224), (700, 300))):
        queries.append(str(tmp_path / f"query{i}.tif"))
        gdal.Translate(queries[-1], ortho_path, srcWin=[col, row, 224, 224], bandList=[1, 2, 3])
    args = dict(bands=[1, 2, 3], scale=1 / 255, overlap=64, resolution=native, block_size=256)
    maps = {name: digest(recognize(ortho_path, model, queries[0], str(tmp_path / f"{name}.tif"), **args,
                                   **how).output) for name, how in runs(request)}
    assert len(set(maps.values())) == 1, maps

    class MachineDownError(Exception):
        pass

    class DiesAtHalf:
        def set_progress(self, percent):
            if percent >= 50:
                raise MachineDownError()

        def is_cancelled(self):
            return False

        def info(self, message):
            pass

    out = str(tmp_path / "resumed.tif")
    with pytest.raises(MachineDownError):
        recognize(ortho_path, model, queries[0], out, resume=True, feedback=DiesAtHalf(), **args)
    assert os.listdir(journal_folder(out))  # the finished blocks of the first query's run
    messages = []
    log = type("Log", (), {"set_progress": lambda self, p: None, "is_cancelled": lambda self: False,
                           "info": lambda self, m: messages.append(m)})()
    other = recognize(ortho_path, model, queries[1], out, resume=True, feedback=log, **args)
    assert other.blocks_resumed == 0 and any("Removed the journal" in m for m in messages)
    fresh = recognize(ortho_path, model, queries[1], str(tmp_path / "fresh.tif"), **args)
    assert digest(out) == digest(fresh.output) != maps["1 worker"]


def test_stitched_mosaic_is_identical_for_any_number_of_workers(tmp_path, example_path):
    chips = tmp_path / "chips"
    chips.mkdir()
    src = gdal.Open(example_path)
    gt = src.GetGeoTransform()
    rng = np.random.default_rng(3)
    for i, (r, c) in enumerate([(0, 0), (0, 200), (150, 100), (300, 400), (420, 600), (100, 500)]):
        labels = rng.integers(0, 3, size=(180, 200)).astype(np.uint8)
        ds = gdal.GetDriverByName("GTiff").Create(str(chips / f"chip{i}.tif"), 200, 180, 1, gdal.GDT_Byte)
        ds.SetGeoTransform((gt[0] + c * gt[1], gt[1], 0.0, gt[3] + r * gt[5], 0.0, gt[5]))
        ds.SetProjection(src.GetProjection())
        ds.GetRasterBand(1).WriteArray(labels)
        ds = None
    outs = []
    for workers in (1, 2):
        out = str(tmp_path / f"mosaic{workers}.tif")
        stitch_chips(str(chips), out, window="hann", aggregation="hardvote", n_classes=3, reference=example_path,
                     workers=workers, block_size=128)
        outs.append(digest(out))
    assert outs[0] == outs[1]


KILL_AT_HALF = textwrap.dedent("""
    import os, signal, sys
    from patchwork.core import classify, detect, superresolve

    class KillAtHalf:
        def set_progress(self, percent):
            if percent >= 50:
                os.kill(os.getpid(), signal.SIGKILL)  # a crash: no cleanup runs

        def is_cancelled(self):
            return False

        def info(self, message):
            pass

    task, raster, model, out = sys.argv[1:5]
    if task == "classify":
        probabilities = sys.argv[5]
        uncertainty = sys.argv[6] if len(sys.argv) > 6 else None
        classify(raster, model, out, probabilities=probabilities, bands=[1, 2, 3], scale=1 / 255, tile_size=256,
                 overlap=64, window="hann", aggregation="softvote", block_size=256, workers=2, resume=True,
                 uncertainty=uncertainty, uncertainty_measure="disagreement", feedback=KillAtHalf())
    elif task == "detect":
        detect(raster, model, out, bands=[1, 2, 3], scale=1 / 255, tile_size=128, overlap=32, batch_size=2,
               workers=2, resume=True, feedback=KillAtHalf())
    else:
        superresolve(raster, model, out, scale=1 / 255, overlap=16, batch_size=3, workers=2, resume=True,
                     feedback=KillAtHalf())
""")


def test_run_killed_at_half_resumes_to_the_same_bytes_computing_only_what_was_lost(tmp_path, ortho_path,
                                                                                   deepness_free):
    args = dict(bands=[1, 2, 3], scale=1 / 255, tile_size=256, overlap=64, window="hann", aggregation="softvote",
                block_size=256, workers=2)
    reference, reference_p = str(tmp_path / "reference.tif"), str(tmp_path / "reference-p.tif")
    reference_u = str(tmp_path / "reference-u.tif")
    whole = classify(ortho_path, deepness_free, reference, probabilities=reference_p, uncertainty=reference_u,
                     uncertainty_measure="disagreement", **args)

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out, probabilities = str(out_dir / "classes.tif"), str(out_dir / "probabilities.tif")
    uncertainty = str(out_dir / "uncertainty.tif")
    killed = subprocess.run([sys.executable, "-c", KILL_AT_HALF, "classify", ortho_path, deepness_free, out,
                             probabilities, uncertainty], capture_output=True, text=True, env=os.environ)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not os.path.exists(out)  # the output appears only when complete
    journaled = sorted(f for f in os.listdir(journal_folder(out)) if f.startswith("block-"))
    assert 0 < len(journaled) < whole.blocks  # about half was done

    messages = []
    log = type("Log", (), {"set_progress": lambda self, p: None, "is_cancelled": lambda self: False,
                           "info": lambda self, m: messages.append(m)})()
    resumed = classify(ortho_path, deepness_free, out, probabilities=probabilities, resume=True, feedback=log,
                       uncertainty=uncertainty, uncertainty_measure="disagreement", **args)
    assert resumed.blocks_resumed == len(journaled)
    assert resumed.blocks - resumed.blocks_resumed == whole.blocks - len(journaled)  # the rest, nothing more
    assert resumed.tiles < whole.tiles
    assert digest(out) == digest(reference) and digest(probabilities) == digest(reference_p)
    assert digest(uncertainty) == digest(reference_u)  # the journal keeps the uncertainty of its blocks too
    assert any("RESUME" in m for m in messages) and any("died" in m for m in messages)  # debris and lock reported
    assert files_under(str(out_dir)) == ["classes.qml", "classes.tif", "probabilities.tif", "uncertainty.qml",
                                         "uncertainty.tif"]  # no journal, no debris


@pytest.mark.parametrize("task", ["detect", "superresolve"])
def test_detect_and_superresolve_killed_at_half_resume_to_the_same_result(tmp_path, ortho_path, task):
    from patchwork.core import detect, superresolve
    from tests.onnx_models import cell_detector

    if task == "detect":
        raster, model = ortho_path, cell_detector(str(tmp_path / "cells.onnx"), "v8")
        run = lambda out, **how: detect(raster, model, out, bands=[1, 2, 3], scale=1 / 255, tile_size=128,  # noqa
                                        overlap=32, batch_size=2, workers=2, **how)
        suffix = ".gpkg"
    else:
        raster = str(tmp_path / "scene.tif")
        gdal.Translate(raster, ortho_path, srcWin=[0, 0, 600, 420], bandList=[1, 2, 3])
        model = os.path.join(SHARED_DATA, "models-more", "dummy_superresolution_model.onnx")
        run = lambda out, **how: superresolve(raster, model, out, scale=1 / 255, overlap=16,  # noqa: E731
                                              batch_size=3, workers=2, **how)
        suffix = ".tif"
    whole = run(str(tmp_path / f"reference{suffix}"))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = str(out_dir / f"result{suffix}")
    killed = subprocess.run([sys.executable, "-c", KILL_AT_HALF, task, raster, model, out],
                            capture_output=True, text=True, env=os.environ)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not os.path.exists(out)  # the output appears only when complete
    journaled = [f for f in os.listdir(journal_folder(out)) if f.startswith("block-")]
    messages = []
    log = type("Log", (), {"set_progress": lambda self, p: None, "is_cancelled": lambda self: False,
                           "info": lambda self, m: messages.append(m)})()
    resumed = run(out, resume=True, feedback=log)
    assert journaled and any(f"RESUME: {len(journaled)} of" in m for m in messages), messages
    if task == "detect":
        assert resumed.boxes.tobytes() == whole.boxes.tobytes() and len(whole.boxes) > 50
    else:
        assert digest(out) == digest(whole.output)
    assert files_under(str(out_dir)) == [os.path.basename(out)]  # no journal, no debris


def test_without_resume_a_dead_runs_journal_is_removed_and_the_earlier_output_kept(tmp_path, ortho_path,
                                                                                   deepness_free):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out, probabilities = str(out_dir / "classes.tif"), str(out_dir / "probabilities.tif")
    classify(ortho_path, RULES, out, bands=[1, 2, 3, 4])  # an earlier output of the user's
    before = digest(out)
    killed = subprocess.run([sys.executable, "-c", KILL_AT_HALF, "classify", ortho_path, deepness_free, out,
                             probabilities], capture_output=True, text=True, env=os.environ)
    assert killed.returncode == -signal.SIGKILL
    assert digest(out) == before and os.path.isdir(journal_folder(out))
    messages = []
    log = type("Log", (), {"set_progress": lambda self, p: None, "is_cancelled": lambda self: False,
                           "info": lambda self, m: messages.append(m)})()
    result = classify(ortho_path, deepness_free, out, bands=[1, 2, 3], scale=1 / 255, tile_size=256, overlap=64,
                      block_size=256, feedback=log)
    assert result.blocks_resumed == 0
    assert any("Removed the journal" in m and "RESUME is off" in m for m in messages)
    assert files_under(str(out_dir)) == ["classes.qml", "classes.tif"]


def test_a_journal_of_other_parameters_is_not_used(tmp_path, s2_path):
    out = str(tmp_path / "classes.tif")
    folder = journal_folder(out)
    os.makedirs(folder)
    with open(os.path.join(folder, "run.json"), "w") as fh:
        fh.write('{"model": "another"}')
    np.savez(os.path.join(folder, "block-0.npz"), main=np.zeros((1, 1), np.uint8), covered=np.int64(1))
    messages = []
    log = type("Log", (), {"set_progress": lambda self, p: None, "is_cancelled": lambda self: False,
                           "info": lambda self, m: messages.append(m)})()
    result = classify(s2_path, RULES, out, scale=1e-4, resume=True, feedback=log)
    assert result.blocks_resumed == 0 and any("other inputs or parameters" in m for m in messages)
    assert not os.path.exists(folder)


def test_cog_output_passes_gdal_validation_with_overviews_and_keeps_the_palette(tmp_path, naip_path):
    from osgeo_utils.samples.validate_cloud_optimized_geotiff import validate

    out, probabilities = str(tmp_path / "classes.tif"), str(tmp_path / "p.tif")
    gdal.SetConfigOption("GDAL_PAM_ENABLED", "YES")  # category names live in the .aux.xml side-car
    try:
        classify(naip_path, RULES, out, bands=[3, 2, 1, 4], scale=1 / 255, probabilities=probabilities,
                 aggregation="softvote", output_format="COG")
        classes = gdal.Open(out)  # kept: a band must not outlive its dataset
        band = classes.GetRasterBand(1)
        assert band.GetColorTable() is not None and band.GetCategoryNames()[2] == "vegetation"
        band = classes = None
    finally:
        gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")
    for path in (out, probabilities):
        warnings, errors, _details = validate(path, full_check=True)
        assert errors == [], errors
        ds = gdal.Open(path)
        assert ds.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG"
        assert ds.GetRasterBand(1).GetOverviewCount() >= 1
    classes = gdal.Open(out)
    band = classes.GetRasterBand(1)
    assert band.GetColorTable() is not None and band.GetNoDataValue() == 255
    overview = band.GetOverview(0).ReadAsArray()
    assert set(np.unique(overview)) <= {0, 1, 2, 255}  # the mode of classes: no averaged class ids
    shares = gdal.Open(probabilities)
    p = shares.GetRasterBand(3)
    full, half = p.ReadAsArray(0, 0, 64, 64), p.GetOverview(0).ReadAsArray(0, 0, 32, 32)
    assert p.GetOverview(0).XSize == (p.XSize + 1) // 2
    # Averaged: the rules model's one-hot probabilities become quarters (GDAL weighs a little across the 2x2
    # boxes, the raster's odd size making the ratio not exactly 2).
    np.testing.assert_allclose(half, full.reshape(32, 2, 32, 2).mean(axis=(1, 3)), atol=0.05)
    assert np.isclose(half, 0.25, atol=0.01).any() and np.isclose(half, 0.5, atol=0.01).any()


@pytest.mark.parametrize("cancelled_in", ["classes.tif", "p.tif"])
def test_cancel_while_the_cog_is_written_leaves_the_earlier_outputs_untouched_and_no_debris(tmp_path, naip_path,
                                                                                            cancelled_in):
    """The COG rewrite of a large output takes a while: Cancel is heard there too. Every output is finished before
    any is renamed, so a cancel in the second file's rewrite leaves the first one's earlier file too."""
    from patchwork.core import Cancelled

    out, probabilities = str(tmp_path / "classes.tif"), str(tmp_path / "p.tif")
    for path in (out, probabilities):
        with open(path, "wb") as fh:
            fh.write(b"an earlier output")

    def rewriting_it(frame) -> bool:
        while frame.f_code.co_name != "_to_cog":  # up to the writer whose file GDAL is rewriting
            frame = frame.f_back
        return os.path.basename(frame.f_locals["self"].path) == cancelled_in

    feedback = CancelInGdal(rewriting_it)
    with pytest.raises(Cancelled):
        classify(naip_path, RULES, out, bands=[3, 2, 1, 4], scale=1 / 255, probabilities=probabilities,
                 aggregation="softvote", output_format="COG", feedback=feedback)
    assert feedback.pressed
    assert files_under(str(tmp_path)) == ["classes.tif", "p.tif"]
    for path in (out, probabilities):
        assert open(path, "rb").read() == b"an earlier output"


@pytest.mark.parametrize("device, available, expected, warned", [
    ("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"], False),
    ("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"],
     False),
    ("cuda", ["CPUExecutionProvider"], ["CPUExecutionProvider"], True),
    ("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"],
     False),
    ("auto", ["DmlExecutionProvider", "CPUExecutionProvider"], ["DmlExecutionProvider", "CPUExecutionProvider"],
     False),
    ("auto", ["CoreMLExecutionProvider", "CPUExecutionProvider"],
     ["CoreMLExecutionProvider", "CPUExecutionProvider"], False),
    ("auto", ["AzureExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"], False),
])
def test_device_choice_gives_onnxruntime_these_providers(device, available, expected, warned):
    providers, warning = execution_providers(device, available)
    assert providers == expected and (warning is not None) == warned


def test_device_auto_runs_on_this_machines_cpu_and_says_so(tmp_path, ortho_path):
    import onnxruntime

    assert "CUDAExecutionProvider" not in onnxruntime.get_available_providers()  # what this machine has
    messages = []
    log = type("Log", (), {"set_progress": lambda self, p: None, "is_cancelled": lambda self: False,
                           "info": lambda self, m: messages.append(m)})()
    classify(ortho_path, DEEPNESS, str(tmp_path / "c.tif"), bands=[1, 2, 3], scale=1 / 255, device="auto", feedback=log)
    assert any(m.endswith("computing on CPU") for m in messages)
    messages.clear()
    classify(ortho_path, DEEPNESS, str(tmp_path / "c.tif"), bands=[1, 2, 3], scale=1 / 255, device="cuda", feedback=log)
    assert any(m.startswith("Warning: DEVICE cuda: this onnxruntime has no CUDA provider") for m in messages)
    with pytest.raises(PatchworkError, match="DEVICE: 'gpu' is not one of auto, cpu, cuda"):
        classify(ortho_path, DEEPNESS, str(tmp_path / "c.tif"), bands=[1, 2, 3], device="gpu")


def test_block_plan_memory_does_not_grow_with_the_raster():
    """200,000 x 5,000 px: blocks are about the block side whatever the raster; each block reads its tiles only."""
    grid = TileGrid(5000, 200_000, 512, 0, 64)
    side = block_side(grid, 3)
    blocks = plan_blocks(5000, 200_000, grid, side)
    assert max(b.window.width for b in blocks) < side + grid.stride
    assert max(b.window.height for b in blocks) < side + grid.stride + grid.size  # the last one takes the rest
    assert sum(b.window.width * b.window.height for b in blocks) == 5000 * 200_000  # a partition of the raster
    inputs = [b.input_window(grid) for b in blocks]
    assert max(w.width for w in inputs) <= side + grid.tile + grid.stride
    assert blocks[1].window.row_off > 0  # the short side first: the writer's waiting tiles span 5,000 px, not 200,000
    no_overlap = TileGrid(4096, 4096, 256, 0, 0)
    assert all(b.single_cover(no_overlap) for b in plan_blocks(4096, 4096, no_overlap, 2048))
    assert sum(b.tiles for b in plan_blocks(4096, 4096, no_overlap, 2048)) == no_overlap.count  # no tile twice


@pytest.mark.parametrize("height,width,tile,overlap,side", [
    (4096, 4096, 512, 64, 2048), (16384, 16384, 512, 64, 2048), (8000, 8000, 512, 64, 2048), (5000, 200_000, 512, 64,
    1024), (1000, 1300, 96, 40, 256), (841, 1243, 64, 16, 128), (300, 300, 512, 64, 2048)])
def test_every_tile_of_the_grid_is_computed_by_exactly_one_block(height, width, tile, overlap, side):
    """#28: no tile computed twice. A block owns the tiles that start inside it; what they add past its edges is
    handed on (halos), landing only in its border's neighbours, which come later in the plan."""
    grid = TileGrid(height, width, tile, 0, overlap)
    blocks = plan_blocks(height, width, grid, side)
    owned = [(r, c) for b in blocks for r in b.tile_rows for c in b.tile_cols]
    assert len(owned) == len(set(owned)) == grid.count  # 1.00x the grid's tiles (1.24-1.41x before)
    order = {b.index: k for k, b in enumerate(blocks)}
    for b in blocks:
        assert all(b.window.contains(s) for s in b.border(grid))
        for strip in b.outgoing(grid):  # handed on to later blocks only, and only into their border strips
            for other in blocks:
                both = other.window.intersection(strip)
                if both is not None:
                    assert order[other.index] > order[b.index]
                    parts = [both.intersection(s) for s in other.border(grid)]  # (the strips do not overlap)
                    assert sum(p.height * p.width for p in parts if p) == both.height * both.width


def test_block_writes_assemble_whole_file_tiles(tmp_path):
    """Blocks cut across the file's 512 px tiles: each tile is written once, whole, and the pixels are right."""
    rng = np.random.default_rng(5)
    data = rng.integers(0, 200, size=(1300, 1100)).astype(np.uint8)
    path = str(tmp_path / "blocks.tif")
    with GeoTiffWriter(path, 1100, 1300, 1, np.uint8, (0, 1, 0, 0, 0, -1), "") as writer:
        for block in plan_blocks(1300, 1100, None, 300):
            w = block.window
            writer.write_block(data[w.row_off : w.row_end, w.col_off : w.col_end], w.row_off, w.col_off)
        assert writer.waiting == {}
    np.testing.assert_array_equal(gdal.Open(path).ReadAsArray(), data)


def test_dask_workers_with_malloc_trimming_get_a_note(dask_cluster):
    from patchwork.core.engine.executors import DaskExecutor

    assert DaskExecutor(dask_cluster).notes == []  # started as the README advises
    dask_cluster.run(lambda: os.environ.__setitem__("MALLOC_TRIM_THRESHOLD_", "65536"))  # Dask's nanny default
    try:
        notes = DaskExecutor(dask_cluster).notes
    finally:
        dask_cluster.run(lambda: os.environ.pop("MALLOC_TRIM_THRESHOLD_", None))
    assert len(notes) == 1 and "MALLOC_TRIM_THRESHOLD_=65536" in notes[0] and "README" in notes[0]


def test_dask_tasks_compute_a_few_consecutive_small_blocks_each_and_give_them_back_in_order(dask_cluster,
                                                                                            monkeypatch):
    """Each Dask task costs a scheduler round trip: small blocks go a few to a task, still in order, fewer towards the
    end so that every worker has a task until the last."""
    from patchwork.core.engine.executors import TASK_PIXELS, DaskExecutor

    executor = DaskExecutor(dask_cluster)
    tasks = []
    submit = dask_cluster.submit
    monkeypatch.setattr(dask_cluster, "submit", lambda *a, **k: tasks.append(len(a[2])) or submit(*a, **k))
    assert list(executor.map(abs, range(-40, 0), item_pixels=TASK_PIXELS // 4)) == list(range(40, 0, -1))
    assert tasks == [4] * 7 + [3, 3, 2, 1, 1, 1, 1]  # 1024² blocks: four to a task, then fewer
    tasks.clear()
    assert list(executor.map(abs, range(-8, 0), item_pixels=64 * 64)) == list(range(8, 0, -1))
    assert tasks == [2, 2, 1, 1, 1, 1]  # tiny blocks: still tasks for both workers to the end
    tasks.clear()
    assert list(executor.map(abs, range(-3, 0), item_pixels=TASK_PIXELS)) == [3, 2, 1] and tasks == [1] * 3


def test_dask_scheduler_errors_are_clear(tmp_path, s2_path, monkeypatch):
    from patchwork.core import load_model
    from patchwork.core.engine import executors

    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", 2)
    with pytest.raises(PatchworkError, match="DASK_SCHEDULER: a model given as a Python object cannot be sent"):
        classify(s2_path, load_model(RULES), str(tmp_path / "c.tif"), scheduler="tcp://127.0.0.1:1")
    with pytest.raises(PatchworkError, match="DASK_SCHEDULER: cannot reach a Dask scheduler at 'tcp://127.0.0.1:1'"):
        classify(s2_path, RULES, str(tmp_path / "c.tif"), scheduler="tcp://127.0.0.1:1")
    assert files_under(str(tmp_path)) == []


def test_chip_files_are_identical_for_any_number_of_writer_threads(tmp_path, naip_path):
    from patchwork.core import RegularSampler, augment_chips, sample_chips

    folders = {}
    for workers in (1, 2):
        chips = sample_chips(naip_path, RegularSampler(48), 64, str(tmp_path / f"chips{workers}"), workers=workers)
        augmented = augment_chips(chips.index_path, "geometric", str(tmp_path / f"aug{workers}"), copies=2, seed=3,
                                  workers=workers)
        folders[workers] = (chips, augmented)
    for kind in ("chips", "aug"):
        one, two = tmp_path / f"{kind}1" / "images", tmp_path / f"{kind}2" / "images"
        names = sorted(os.listdir(one))
        assert len(names) > 100 and names == sorted(os.listdir(two))
        assert all(digest(str(one / n)) == digest(str(two / n)) for n in names)


def test_a_gpu_that_fails_to_start_falls_back_to_the_cpu_with_a_warning(monkeypatch):
    """No GPU here: onnxruntime is told it has CUDA, and the CUDA session fails as a broken driver makes it fail."""
    import onnxruntime

    from patchwork.core.models import onnx as onnx_models

    real_session = onnx_models._session

    def session(ort, path, providers, threads):
        if providers[0] == "CUDAExecutionProvider":
            raise RuntimeError("CUDA driver version is insufficient for CUDA runtime version")
        return real_session(ort, path, providers, threads)

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider",
                                                                        "CPUExecutionProvider"])
    monkeypatch.setattr(onnx_models, "_session", session)
    model = onnx_models.load_onnx(DEEPNESS, "auto")
    assert model.device == "CPU"
    assert model.device_warning.startswith("DEVICE auto: CUDAExecutionProvider could not start (CUDA driver version")
    assert model.device_warning.endswith("running on the CPU.")


def test_an_unreadable_journal_entry_is_computed_and_saved_again(tmp_path):
    from patchwork.core import Window
    from patchwork.core.engine.journal import BlockJournal, BlockResult

    out, run, window = str(tmp_path / "c.tif"), {"model": "m"}, Window(0, 0, 2, 2)
    block = BlockResult(3, window, np.arange(4, dtype=np.uint8).reshape(2, 2), None, 4, 1)
    BlockJournal(out, run, True).save(block)
    with open(os.path.join(journal_folder(out), "block-3.npz"), "wb") as fh:
        fh.write(b"cut short by a power failure")
    journal = BlockJournal(out, run, True)
    assert journal.done == {3} and journal.load(3, window) is None and journal.done == set()
    journal.save(block)  # what classify does with the block it computed again
    again = BlockJournal(out, run, True).load(3, window)
    np.testing.assert_array_equal(again.main, block.main)
