"""qgis_process end to end: the plugin enabled in a fresh profile, runs on the real rasters."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig

import numpy as np
import pytest
from osgeo import gdal
from scipy.spatial import cKDTree

from patchwork.core import classify, compare_classifications, read_index, write_geotiff
from patchwork.core.engine.blocks import full_scene_prediction
from tests.conftest import REPO, SHARED_DATA, files_under, read_all
from tests.onnx_models import free_spatial_dims

QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"
RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


@pytest.fixture(scope="module")
def qgis_env(tmp_path_factory):
    """A clean QGIS profile with Patchwork enabled, found through QGIS_PLUGINPATH."""
    profile = tmp_path_factory.mktemp("qgis-profile")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(profile),
               QGIS_PLUGINPATH=os.path.join(REPO, ".build", "pkgroot"))
    # pytest-qgis points these at its own test profile; qgis_process gets a fresh one instead.
    for inherited in ("QGIS_OPTS", "QGIS_OPTIONS_PATH"):
        env.pop(inherited, None)
    # QGIS's Python is the system one: the venv's packages (onnxruntime, scikit-learn, skops) are what a
    # user would pip-install into it.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [sysconfig.get_paths()["purelib"], env.get("PYTHONPATH")]))
    enabled = subprocess.run([QGIS_PROCESS, "plugins", "enable", "patchwork"], env=env, capture_output=True,
                             text=True, timeout=300)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    return env


def qgis_process(env, *args, timeout=300):
    return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_provider_is_listed(qgis_env):
    listing = qgis_process(qgis_env, "list")
    assert listing.returncode == 0, listing.stderr
    for algorithm in ("samplechips", "classify", "stitchchips", "compare"):
        assert f"patchwork:{algorithm}" in listing.stdout


def test_help_shows_parameters(qgis_env):
    helped = qgis_process(qgis_env, "help", "patchwork:samplechips")
    assert helped.returncode == 0, helped.stderr
    for name in ("INPUT", "SAMPLER", "BOUNDARY", "MAX_NODATA", "OUTPUT_DIR", "CHIP_COUNT"):
        assert name in helped.stdout


def test_poisson_run_on_sentinel2_with_json_output(qgis_env, tmp_path, s2_path):
    out_dir, index = str(tmp_path / "chips"), str(tmp_path / "chips.gpkg")
    done = qgis_process(qgis_env, "run", "patchwork:samplechips", "--json", "--", f"INPUT={s2_path}", "SAMPLER=2",
                        "CHIP_SIZE=32", "MIN_DISTANCE=40", "COUNT=0", "SEED=5", "BOUNDARY=0", "MAX_NODATA=0",
                        f"OUTPUT_DIR={out_dir}", f"OUTPUT={index}")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout)["results"]
    assert results["OUTPUT"] == index and results["OUTPUT_DIR"] == out_dir
    records = read_index(index)
    assert int(results["CHIP_COUNT"]) == len(records) > 5
    source, gt, _, _ = read_all(s2_path)
    anchors = np.array([(r["row_off"], r["col_off"]) for r in records])
    nearest, _ = cKDTree(anchors).query(anchors, k=2)
    assert nearest[:, 1].min() >= 40
    for rec in records:
        chip = gdal.Open(rec["image_path"])
        r, c = rec["row_off"], rec["col_off"]
        np.testing.assert_array_equal(chip.ReadAsArray(), source[:, r : r + 32, c : c + 32])
        assert chip.GetGeoTransform() == pytest.approx((gt[0] + c * gt[1], gt[1], 0, gt[3] + r * gt[5], 0, gt[5]))


def test_cli_error_is_clear_and_writes_nothing(qgis_env, tmp_path, s2_path):
    done = qgis_process(qgis_env, "run", "patchwork:samplechips", "--", f"INPUT={s2_path}", "CHIP_SIZE=300",
                        "BOUNDARY=2", f"OUTPUT_DIR={tmp_path / 'c'}", f"OUTPUT={tmp_path / 'i.gpkg'}")
    assert done.returncode != 0
    assert "larger than the raster" in done.stdout + done.stderr
    assert files_under(str(tmp_path)) == []


def test_choices_take_their_words_or_their_numbers(qgis_env, tmp_path, s2_path):
    """SAMPLER=poisson BOUNDARY=drop is SAMPLER=2 BOUNDARY=2; a wrong word is refused with the words, before the run."""
    indexes = {}
    for tag, sampler, boundary in (("words", "poisson", "Drop"), ("numbers", "2", "2")):
        index = str(tmp_path / f"{tag}.gpkg")
        done = qgis_process(qgis_env, "run", "patchwork:samplechips", "--", f"INPUT={s2_path}",
                            f"SAMPLER={sampler}", f"BOUNDARY={boundary}", "CHIP_SIZE=32", "MIN_DISTANCE=40", "SEED=5",
                            f"OUTPUT_DIR={tmp_path / tag}", f"OUTPUT={index}")
        assert done.returncode == 0, done.stdout + done.stderr
        indexes[tag] = [(r["row_off"], r["col_off"]) for r in read_index(index)]
    assert indexes["words"] == indexes["numbers"] and len(indexes["words"]) > 5
    before = files_under(str(tmp_path))
    refused = qgis_process(qgis_env, "run", "patchwork:classify", "--", f"INPUT={s2_path}", f"MODEL={RULES}",
                           "AGGREGATION=bogus", f"OUTPUT={tmp_path / 'classes.tif'}")
    assert refused.returncode != 0
    assert "AGGREGATION: 'bogus' is not one of hardvote, softvote, mean (or their numbers 0 to 2)." in refused.stdout \
        + refused.stderr
    refused = qgis_process(qgis_env, "run", "patchwork:classify", "--", f"INPUT={s2_path}", f"MODEL={RULES}",
                           "BANDS=1,2,3", f"OUTPUT={tmp_path / 'classes.tif'}")  # the model's check, before the run
    assert refused.returncode != 0
    assert "An error was encountered while checking parameter values" in refused.stdout + refused.stderr
    assert "BANDS: the model 'NDVI / NDWI water, bare land and vegetation' takes 4 bands" in refused.stdout \
        + refused.stderr
    assert files_under(str(tmp_path)) == before


def test_classify_scale_parameters_from_the_command_line(qgis_env, tmp_path, ortho_path):
    """WORKERS, DEVICE, RESUME and OUTPUT_FORMAT as a qgis_process user types them; the same bytes as one worker."""
    model = os.path.join(SHARED_DATA, "models", "one_output_sigmoid_red_detector.onnx")
    outputs = {}
    for workers in (1, 2):
        out = str(tmp_path / f"classes{workers}.tif")
        done = qgis_process(qgis_env, "run", "patchwork:classify", "--json", "--", f"INPUT={ortho_path}",
                            f"MODEL={model}", "BANDS=1,2,3", f"SCALE={1 / 255!r}", f"WORKERS={workers}", "DEVICE=0",
                            "RESUME=true", "OUTPUT_FORMAT=1", f"OUTPUT={out}")
        assert done.returncode == 0, done.stdout + done.stderr
        log = done.stdout + done.stderr
        assert f"{workers} worker thread" in log and "computing on CPU" in log
        outputs[workers] = open(out, "rb").read()
        assert gdal.Open(out).GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG"
    assert outputs[1] == outputs[2]
    assert sorted(os.listdir(tmp_path)) == ["classes1.qml", "classes1.tif", "classes2.qml", "classes2.tif"]


def test_classify_deepness_model_on_the_orthophoto_then_compare(qgis_env, tmp_path, ortho_path):
    """The whole inference path from the command line: bands picked as 1,2,3, tiled, compared."""
    model = os.path.join(SHARED_DATA, "models", "one_output_sigmoid_red_detector.onnx")
    tiled, single = str(tmp_path / "tiled.tif"), str(tmp_path / "probs.tif")
    done = qgis_process(qgis_env, "run", "patchwork:classify", "--json", "--", f"INPUT={ortho_path}",
                        f"MODEL={model}", "BANDS=1,2,3", f"SCALE={1 / 255!r}", "OVERLAP=64", "WINDOW=1",
                        "AGGREGATION=1", f"OUTPUT={tiled}", f"OUTPUT_PROBABILITIES={single}")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout)["results"]
    assert results["OUTPUT"] == tiled and int(results["TILES"]) == 6
    assert os.path.exists(str(tmp_path / "tiled.qml"))
    ref = str(tmp_path / "ref.tif")
    reference, valid = full_scene_prediction(ortho_path, free_spatial_dims(model), bands=[1, 2, 3], scale=1 / 255)
    write_geotiff(ref, np.where(valid, np.argmax(reference, axis=0), 255).astype(np.uint8),
                  *read_all(ortho_path)[1:3], nodata=255)
    compared = qgis_process(qgis_env, "run", "patchwork:compare", "--json", "--", f"INPUT={tiled}",
                            f"REFERENCE={ref}", f"OUTPUT_HTML={tmp_path / 'report.html'}")
    assert compared.returncode == 0, compared.stdout + compared.stderr
    agreement = json.loads(compared.stdout)["results"]
    ties = int((valid & (reference[0] == reference[1])).sum())
    assert float(agreement["AGREEMENT"]) >= 1 - ties / valid.sum()
    assert float(agreement["AGREEMENT"]) > 0.9999


def test_classify_bad_model_fails_cleanly(qgis_env, tmp_path, s2_path):
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not an onnx model")
    done = qgis_process(qgis_env, "run", "patchwork:classify", "--", f"INPUT={s2_path}", f"MODEL={broken}",
                        f"OUTPUT={tmp_path / 'out' / 'c.tif'}")
    assert done.returncode != 0
    assert "is not a valid ONNX model" in done.stdout + done.stderr
    assert files_under(str(tmp_path / "out")) == []


def test_missing_onnxruntime_is_explained(qgis_env, tmp_path, ortho_path):
    """In a QGIS whose Python lacks onnxruntime the plugin still loads and says what to install."""
    env = dict(qgis_env, PYTHONPATH="")
    model = os.path.join(SHARED_DATA, "models", "one_output_softmax_bsx2x512x512.onnx")
    probe = subprocess.run(["/usr/bin/python3", "-c", "import onnxruntime"], env=env, capture_output=True)
    if probe.returncode == 0:
        pytest.skip("the system Python has onnxruntime")
    done = qgis_process(env, "run", "patchwork:classify", "--", f"INPUT={ortho_path}", f"MODEL={model}",
                        "BANDS=1,2,3", f"OUTPUT={tmp_path / 'c.tif'}")
    assert done.returncode != 0
    assert "ONNX models: the Python package 'onnxruntime' (version 1.16 or newer) is needed" in \
        done.stdout + done.stderr
    assert files_under(str(tmp_path)) == []


def test_sample_then_augment_from_the_command_line(qgis_env, tmp_path, naip_path):
    index = str(tmp_path / "chips.gpkg")
    done = qgis_process(qgis_env, "run", "patchwork:samplechips", "--", f"INPUT={naip_path}", "CHIP_SIZE=64",
                        "STEP=200", f"OUTPUT_DIR={tmp_path / 'chips'}", f"OUTPUT={index}")
    assert done.returncode == 0, done.stdout + done.stderr
    preset = os.path.join(REPO, "resources", "augmentations", "geometric.json")
    done = qgis_process(qgis_env, "run", "patchwork:augmentchips", "--json", "--", f"INPUT={index}",
                        f"PIPELINE={preset}", "COPIES=2", "SEED=1", f"OUTPUT_DIR={tmp_path / 'aug'}",
                        f"OUTPUT={tmp_path / 'aug.gpkg'}")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout)["results"]
    assert int(results["CHIP_COUNT"]) == 2 * len(read_index(index)) == len(read_index(results["OUTPUT"]))


def test_workflow_model_runs_end_to_end(qgis_env, tmp_path, s2_path):
    """The shipped .model3 (sample → augment → train → classify) through qgis_process."""
    labels = str(tmp_path / "rules.tif")
    classify(s2_path, RULES, labels, scale=1e-4)
    model = os.path.join(REPO, "resources", "models", "patchwork_workflow.model3")
    classes, onnx_model = str(tmp_path / "classes.tif"), str(tmp_path / "model.onnx")
    done = qgis_process(qgis_env, "run", model, "--json", "--", f"raster={s2_path}", f"labels={labels}",
                        "chip_size=32", "copies=1", "estimator=0", f"classify:classified={classes}",
                        f"train:model={onnx_model}", f"train:report={tmp_path / 'report.html'}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert os.path.exists(onnx_model) and os.path.exists(tmp_path / "report.html")
    assert compare_classifications(labels, classes).agreement >= 0.95


def test_workflow_model_from_label_polygons_runs_end_to_end(qgis_env, tmp_path, naip_path):
    """The shipped polygon workflow as the README runs it: the classes come out named after the text field."""
    from patchwork.core import load_model
    from tests.core.test_vector_labels import CATEGORIES, polygons_in_wgs84

    gpkg = polygons_in_wgs84(naip_path, str(tmp_path / "labels.gpkg"))
    model = os.path.join(REPO, "resources", "models", "patchwork_workflow_polygons.model3")
    classes, onnx_model = str(tmp_path / "classes.tif"), str(tmp_path / "model.onnx")
    done = qgis_process(qgis_env, "run", model, "--json", "--", f"raster={naip_path}", f"labels={gpkg}",
                        "label_field=landcover", f"classify:classified={classes}", f"train:model={onnx_model}",
                        f"train:report={tmp_path / 'report.html'}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert load_model(onnx_model).info.class_names == sorted(CATEGORIES)
    from patchwork.core.io.palette import read_classes

    classified = gdal.Open(classes)  # kept: a band outlives no dataset
    assert [name for name, _ in read_classes(classified.GetRasterBand(1)).values()] == sorted(CATEGORIES)


def test_label_polygons_from_the_command_line(qgis_env, tmp_path, naip_path):
    from tests.core.test_vector_labels import polygons_in_wgs84, rasterized

    gpkg = polygons_in_wgs84(naip_path, str(tmp_path / "labels.gpkg"))
    index = str(tmp_path / "chips.gpkg")
    done = qgis_process(qgis_env, "run", "patchwork:samplechips", "--", f"INPUT={naip_path}", f"LABELS={gpkg}",
                        "LABEL_FIELD=code", "ALL_TOUCHED=true", "SAMPLER=regular", "STEP=300", "CHIP_SIZE=96",
                        f"OUTPUT_DIR={tmp_path / 'chips'}", f"OUTPUT={index}")
    assert done.returncode == 0, done.stdout + done.stderr
    for record in read_index(index):
        np.testing.assert_array_equal(gdal.Open(record["label_path"]).ReadAsArray(),
                                      rasterized(gpkg, "code", record["label_path"], all_touched=True))


def test_detect_superresolve_and_recognize_from_the_command_line(qgis_env, tmp_path, ortho_path):
    """The model kinds beyond maps, as a qgis_process user runs them: boxes, a finer grid, a similarity map."""
    from tests.onnx_models import cell_detector

    detector = cell_detector(str(tmp_path / "cells.onnx"), "v8")
    done = qgis_process(qgis_env, "run", "patchwork:detect", "--json", "--", f"INPUT={ortho_path}",
                        f"MODEL={detector}", "BANDS=1,2,3", f"SCALE={1 / 255!r}", "TILE_SIZE=256", "OVERLAP=64",
                        "CONFIDENCE=0.6", f"OUTPUT={tmp_path / 'boxes.gpkg'}")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout)["results"]
    assert int(results["DETECTIONS"]) > 10 and os.path.exists(tmp_path / "boxes.gpkg")
    small = str(tmp_path / "small.tif")
    gdal.Translate(small, ortho_path, srcWin=[0, 0, 128, 96], bandList=[1, 2, 3])
    done = qgis_process(qgis_env, "run", "patchwork:superresolve", "--json", "--", f"INPUT={small}",
                        f"MODEL={os.path.join(SHARED_DATA, 'models-more', 'dummy_superresolution_model.onnx')}",
                        f"SCALE={1 / 255!r}", "WINDOW=hann", f"OUTPUT={tmp_path / 'x2.tif'}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert gdal.Open(str(tmp_path / "x2.tif")).RasterXSize == 256
    query = str(tmp_path / "query.tif")
    gdal.Translate(query, ortho_path, srcWin=[224, 224, 224, 224], bandList=[1, 2, 3])
    done = qgis_process(qgis_env, "run", "patchwork:recognize", "--json", "--", f"INPUT={ortho_path}",
                        f"MODEL={os.path.join(SHARED_DATA, 'models-more', 'dummy_recognition_model.onnx')}",
                        f"QUERY={query}", "BANDS=1,2,3", f"SCALE={1 / 255!r}", "OVERLAP=0",
                        f"RESOLUTION={gdal.Open(ortho_path).GetGeoTransform()[1]!r}",
                        f"OUTPUT={tmp_path / 'similar.tif'}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert gdal.Open(str(tmp_path / "similar.tif")).ReadAsArray().max() == pytest.approx(1.0, abs=1e-4)


def test_accuracy_sample_then_accuracy_from_the_command_line(qgis_env, tmp_path, s2_path):
    """#24 as the README writes it: draw the sample, label it (here from a second map), assess; words for choices."""
    from osgeo import ogr

    class_map = classify(s2_path, RULES, str(tmp_path / "map.tif"), scale=1e-4).output
    sample = str(tmp_path / "sample.gpkg")
    drawn = qgis_process(qgis_env, "run", "patchwork:accuracysample", "--json", "--", f"INPUT={class_map}",
                         "EXPECTED_UA=0.8,0.85,0.9", "TARGET_SE=0.02", "ALLOCATION=proportional_minimum",
                         "MIN_PER_CLASS=40", "SEED=2", f"OUTPUT={sample}")
    assert drawn.returncode == 0, drawn.stdout + drawn.stderr
    assert "stratum 'water' (0)" in drawn.stdout and "Cochran's formula" in drawn.stdout
    points = int(json.loads(drawn.stdout)["results"]["POINTS"])
    truth = gdal.Open(class_map).ReadAsArray()
    gt = gdal.Open(class_map).GetGeoTransform()
    ds = ogr.Open(sample, 1)
    layer = ds.GetLayer(0)
    for feature in layer:  # the truth: the map, but its water in the top tenth of the scene is bare land
        row = int((feature.GetGeometryRef().GetY() - gt[3]) // gt[5])
        value = int(truth[row, int((feature.GetGeometryRef().GetX() - gt[0]) // gt[1])])
        feature.SetField("reference", 1 if value == 0 and row < truth.shape[0] / 10 else value)
        layer.SetFeature(feature)
    ds = layer = None
    report = str(tmp_path / "accuracy.json")
    assessed = qgis_process(qgis_env, "run", "patchwork:accuracy", "--json", "--", f"INPUT={class_map}",
                            f"SAMPLES={sample}", "REFERENCE_FIELD=reference", "DESIGN=map_classes",
                            f"OUTPUT_JSON={report}", f"OUTPUT_REPORT={tmp_path / 'accuracy.html'}")
    assert assessed.returncode == 0, assessed.stdout + assessed.stderr
    results = json.loads(assessed.stdout)["results"]
    figures = json.load(open(report))
    assert float(results["OVERALL_ACCURACY"]) == pytest.approx(figures["overall_accuracy"])
    assert int(results["POINTS_USED"]) == points
    water = figures["classes"][0]
    assert water["name"] == "water" and water["users_accuracy"] < 1 and water["producers_accuracy"] == 1
    mapped_water = water["map_area_m2"]
    assert water["area_m2"] + water["area_m2_ci"] < mapped_water  # the map overstates water, and the CI says so


def test_a_segmentation_network_trains_from_the_command_line(qgis_env, tmp_path, ortho_path):
    """#25: patchwork:trainsegmentation as a qgis_process user runs it: an ONNX network, its report and scores,
    from two chip indexes (the orthophoto's chips, and chips of a second scene: its east part, shifted by 32 px)."""
    pytest.importorskip("torch")
    from patchwork.core import RegularSampler, classify, sample_chips

    red = os.path.join(SHARED_DATA, "models", "one_output_sigmoid_red_detector.onnx")
    labels = classify(ortho_path, red, str(tmp_path / "red.tif"), bands=[1, 2, 3], scale=1 / 255).output
    index = sample_chips(ortho_path, RegularSampler(step=64), 64, str(tmp_path / "chips"), labels=labels).index_path
    for name, source in (("east.tif", ortho_path), ("east_red.tif", labels)):
        written = gdal.Translate(str(tmp_path / name), source, srcWin=[672, 32, 571, 809])
        written = None  # noqa: F841 - (closed: flushed to disk)
    east = sample_chips(str(tmp_path / "east.tif"), RegularSampler(step=64), 64, str(tmp_path / "east"),
                        labels=str(tmp_path / "east_red.tif")).index_path
    done = qgis_process(qgis_env, "run", "patchwork:trainsegmentation", "--json", "--", f"INPUT={index}",
                        f"INPUT={east}", "PIPELINE=geometric", "EPOCHS=2", "SEED=1",
                        f"OUTPUT_MODEL={tmp_path / 'net.onnx'}", f"OUTPUT_REPORT={tmp_path / 'net.html'}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"2 chip indexes: index.gpkg ({len(read_index(index))} chips), index.gpkg " in done.stdout
    results = json.loads(done.stdout)["results"]
    assert results["OUTPUT_MODEL"] == str(tmp_path / "net.onnx") and os.path.exists(tmp_path / "net.html")
    assert 0.8 < float(results["VAL_ACCURACY"]) <= 1 and 0.5 < float(results["VAL_MIOU"]) <= 1
    from patchwork.core import load_model

    info = load_model(str(tmp_path / "net.onnx")).info
    assert info.task == "classification" and info.tile_size == 64 and info.input_scale == pytest.approx(1 / 255)


def test_classify_a_cloud_optimised_geotiff_over_http(qgis_env, qgis_app, tmp_path, ortho_path):
    """INPUT as a QGIS user gives a COG layer (a STAC asset, a bucket): a /vsicurl/ URL, read by byte ranges. QGIS
    3.36 and later take the URL itself; before (qgis/QGIS#54264: Processing asked for a file on disk), a project
    layer with that source, as the Data Source Manager's Protocol tab adds it."""
    from qgis.core import Qgis, QgsProject, QgsRasterLayer

    from tests.tiles import RangeServer

    gdal.Translate(str(tmp_path / "ortho_cog.tif"), ortho_path, format="COG", creationOptions=["BLOCKSIZE=256"])
    server = RangeServer(str(tmp_path))
    url = f"/vsicurl/{server.url}ortho_cog.tif"
    project = QgsProject()
    layer = QgsRasterLayer(url, "ortho over http", "gdal")
    assert layer.isValid()
    project.addMapLayer(layer)
    assert project.write(str(tmp_path / "cog.qgz"))
    model = os.path.join(SHARED_DATA, "models", "one_output_softmax_bsx2x512x512.onnx")
    expected = str(tmp_path / "expected.tif")
    classify(ortho_path, model, expected, bands=[1, 2, 3], scale=1 / 255, overlap=64)
    ways = {"project layer": ([f"--project_path={tmp_path / 'cog.qgz'}"], "ortho over http")}
    if Qgis.QGIS_VERSION_INT >= 33600:
        ways["URL"] = ([], url)
    try:
        for way, (options, given) in ways.items():
            out = str(tmp_path / f"classes {way}.tif")
            done = qgis_process(qgis_env, "run", "patchwork:classify", *options, "--", f"INPUT={given}",
                                f"MODEL={model}", "BANDS=1,2,3", f"SCALE={1 / 255}", "OVERLAP=64", f"OUTPUT={out}")
            assert done.returncode == 0, way + done.stdout + done.stderr
            np.testing.assert_array_equal(read_all(out)[0], read_all(expected)[0])
            assert gdal.Open(out).GetGeoTransform() == gdal.Open(ortho_path).GetGeoTransform()
    finally:
        server.close()
    assert server.requests and all(ranged.startswith("bytes=") for path, ranged in server.requests
                                   if path.endswith(".tif"))
