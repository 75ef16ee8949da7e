"""A real QGIS window under Xvfb: the plugin enabled, the panel driven on a real raster, screenshots saved."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html import unescape

import numpy as np
import pytest
from osgeo import gdal

from tests.conftest import REPO


@pytest.fixture(scope="module")
def session(tmp_path_factory, s2_path):
    if not shutil.which("qgis.bin") or not shutil.which("Xvfb"):
        pytest.fail("qgis.bin and Xvfb are needed (make test installs them)")
    out = tmp_path_factory.mktemp("gui")
    result = out / "result.json"
    # its own display, whatever the caller has; the packages of the Python running the tests
    env = dict(os.environ, PATCHWORK_OWN_XVFB="1", PATCHWORK_PYTHON=sys.executable)
    done = subprocess.run(["bash", os.path.join(REPO, "scripts", "screenshots.sh"), str(out), str(result), s2_path],
                          env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, json.loads(result.read_text())


def test_the_whole_chain_runs_from_the_panel_in_a_real_qgis_window(session):
    """Sample → augment → train → classify → compare, each from its tab, each handing its output on."""
    _, result = session
    assert "error" not in result and not result.get("python_errors"), result
    assert result["dock_visible"]
    assert result["preview_chips"] > 20  # Poisson-disk chips drawn on the canvas
    assert re.fullmatch(r"chips \(poisson, \d+\)", result["sample_layers"][0]), result["messages"]
    assert result["augmented_samples"] == 5  # the chip and 4 draws, as layers and in the gallery
    assert result["footprints_after_tab_change"] == 0
    assert re.fullmatch(r"augmented chips \(\d+\)", result["augment_layers"][0]), result["messages"]
    assert result["train_input_handed_on"]
    assert result["train_message"].startswith("Model trained, validation accuracy"), result["messages"]
    assert result["model_in_classify"].endswith("forest.onnx")  # the trained model appears in Classify
    assert result["classified_layers"] == ["classes — forest.onnx on Sentinel-2 (B, G, R, NIR)"]
    assert result["class_renderer"] == "paletted"
    assert result["compare_message"].startswith("Agreement ") and result["compare_layers"] == ["agreement"]
    assert result["accuracy_points"][0].startswith("points to label — ") and result["labels_saved"]
    assert not result["suggest_enabled_without_uncertainty"]  # that classification wrote no uncertainty map
    assert re.match(r"Overall accuracy 0\.\d{3} ± 0\.\d{3} \(95%\), from \d+ points", result["accuracy_message"]), \
        result["messages"]
    agreement = float(re.match(r"Agreement (\d+\.\d)%", result["compare_message"]).group(1))
    assert agreement > 90, result["compare_message"]


def test_patchwork_draws_on_the_canvas_only_while_its_panel_is_open_on_the_tab_that_owns_it(session):
    _, result = session
    assert result["canvas_items_panel_closed"] == 0  # a raster loaded with the panel closed: nothing drawn
    assert result["canvas_items_panel_open"] == 1  # the Sample tab's footprints
    assert result["canvas_items_sample_tab_again"] == 1
    assert result["canvas_items_after_close"] == 0  # closed with its toolbar button: nothing left


def test_unload_and_reload_leave_nothing_behind(session):
    _, result = session
    for state in result["after_unload"]:  # unloaded twice, as Plugin Reloader does
        assert state == {"docks": 0, "actions": 0, "provider": False, "preview_group": False,
                         "canvas_items": result["canvas_items_before"]}
    assert result["reloaded_provider"]


def test_screenshots_show_the_panel(session):
    out, result = session
    names = sorted(os.path.basename(p) for p in result["shots"])
    helps = [f"patchwork_help_{name}.png" for name in ("accuracy", "accuracysample", "augmentchips", "classify",
                                                         "compare", "detect", "recognize", "samplechips",
                                                         "stitchchips", "suggestlabels", "superresolve",
                                                         "trainclassifier", "trainsegmentation", "workflow",
                                                         "workflownetwork", "workflowpolygons")]
    assert names == sorted(["patchwork_augment_gallery.png", "patchwork_augment_preview.png", "patchwork_classify.png",
                            "patchwork_classify_scale_parameters.png", "patchwork_compare.png",
                            "patchwork_report.png", "patchwork_report_labelling.png", "patchwork_sample_preview.png",
                            "patchwork_stitch.png", "patchwork_train.png", *helps])
    # QGIS's window stays on the 1920×1080 screen with the panel open on every tab (it grew to 1298 px high before)
    assert {tuple(size) for size in result["window_sizes"].values()} == {(1920, 1080)}, result["window_sizes"]
    shown = " | ".join(result["classify_advanced"])  # the advanced group, opened in the real dialog
    for label in ("Worker threads (not set or 0: every core)", "Device for ONNX models", "Dask scheduler address",
                  "Resumable", "Output format"):
        assert label in shown, shown
    for name in names:
        picture = gdal.Open(str(out / name)).ReadAsArray().astype(float)
        assert picture.shape[1] > 300 and picture.std() > 10, name  # a real picture, not a blank window
    main = gdal.Open(str(out / "patchwork_classify.png")).ReadAsArray()
    classes = np.array([[0x2C, 0x7B, 0xB6], [0xD8, 0xB3, 0x65], [0x1A, 0x96, 0x41]])
    pixels = main[:3].reshape(3, -1).T
    for colour in classes:  # water, bare land and vegetation are on the map
        assert (np.abs(pixels - colour).sum(axis=1) < 8).sum() > 1000


def first_sentence(html: str) -> str:
    text = " ".join(re.sub(r"<[^>]+>", "", html).split())
    return unescape(text[: text.index(". ") + 1])


def test_each_dialogs_help_panel_shows_whole_sentences(session):
    """QGIS makes a paragraph of each line of the help: a sentence split in two would show as two paragraphs."""
    _, result = session
    assert len(result["help"]) >= 6
    assert "Samples labelled chips from a raster" in result["help"].pop("workflow")  # the models' own help
    assert "and label polygons" in result["help"].pop("workflowpolygons")  # its dialog opened (3.22 crashed on a
    # map-layer input with a field under it; a vector-layer input is the field's usual parent)
    assert "trains a segmentation network" in result["help"].pop("workflownetwork")
    for name, shown in result["help"].items():
        source = open(os.path.join(REPO, "resources", "help", f"{name}.html"), encoding="utf-8").read()
        assert shown and first_sentence(source) in shown, (name, shown[:300] if shown else shown)
