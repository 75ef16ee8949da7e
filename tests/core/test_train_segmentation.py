"""#25: a segmentation network trained from chips on the real orthophoto, augmented while it learns, exported so that
Patchwork and Deepness's processing give the same map; the same seed gives the same network."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import Cancelled, PatchworkError, RegularSampler, classify, read_index, sample_chips
from tests.conftest import SHARED_DATA, files_under
from tests.deepness_reference import deepness_map, deepness_tiles, segmentation_decision

torch = pytest.importorskip("torch")  # (QGIS 3.40/3.44's roots have no CPU wheel: the refusal is tested there)
onnx = pytest.importorskip("onnx")

from patchwork.core.tasks.train_segmentation import spatial_split, train_segmentation  # noqa: E402

RED = os.path.join(SHARED_DATA, "models", "one_output_sigmoid_red_detector.onnx")


@pytest.fixture(scope="module")
def red_chips(tmp_path_factory, ortho_path):
    """64 px chips of the orthophoto (RGBA, 8-bit) labelled red / not red by Deepness's red detector."""
    folder = tmp_path_factory.mktemp("red")
    labels = classify(ortho_path, RED, str(folder / "red.tif"), bands=[1, 2, 3], scale=1 / 255).output
    chips = sample_chips(ortho_path, RegularSampler(step=64), 64, str(folder / "chips"), labels=labels)
    return chips.index_path, labels


@pytest.fixture(scope="module")
def network(tmp_path_factory, red_chips):
    index, _labels = red_chips
    folder = tmp_path_factory.mktemp("net")
    runs = [train_segmentation(index, str(folder / f"net{i}.onnx"), pipeline="geometric", epochs=3, seed=3,
                               report=str(folder / f"net{i}.html")) for i in range(2)]
    return runs


def test_the_validation_chips_are_whole_blocks_apart_from_the_training_chips(red_chips):
    records = read_index(red_chips[0])
    training, validation = spatial_split(records, 0.2, seed=3)
    assert 0.1 < len(validation) / len(records) < 0.4 and not set(training) & set(validation)
    box = lambda r: (r["row_off"], r["col_off"], r["row_off"] + r["height"], r["col_off"] + r["width"])  # noqa: E731
    for t in training:  # no training chip touches a validation chip's pixels
        r0, c0, r1, c1 = box(records[t])
        for v in validation:
            v0, w0, v1, w1 = box(records[v])
            assert r1 <= v0 or v1 <= r0 or c1 <= w0 or w1 <= c0
    blocks = {((r["row_off"] + 32) // 256, (r["col_off"] + 32) // 256) for r in (records[v] for v in validation)}
    assert len(blocks) >= 2 and len(validation) >= 16 * (len(blocks) - 1)  # whole blocks of 4 x 4 chips


def test_the_network_learns_the_labels_and_the_same_seed_gives_the_same_map(tmp_path, network, ortho_path, red_chips):
    first, second = network
    assert first.device == "cpu" and first.class_values == [0, 1]
    assert first.val_accuracy > 0.9 and first.val_miou > 0.8 and 1 <= first.best_epoch <= first.epochs_run == 3
    assert len(first.history) == 3 and all(np.isfinite(e["train_loss"]) for e in first.history)
    maps = [gdal.Open(classify(ortho_path, run.output, str(tmp_path / f"map{i}.tif"), scale=1 / 255, overlap=16).output)
            .ReadAsArray() for i, run in enumerate(network)]
    np.testing.assert_array_equal(maps[0], maps[1])  # the same SEED: the same network, the same class map
    labels = gdal.Open(red_chips[1]).ReadAsArray()
    assert (maps[0] == labels).mean() > 0.9  # and it learnt what it was shown


def test_the_model_carries_deepness_metadata_and_patchworks(network, red_chips):
    model = onnx.load(network[0].output)
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert meta["model_type"] == "Segmentor" and meta["class_names"] == {"0": "background", "1": "class 1"}
    assert meta["tiles_size"] == 64 and meta["resolution"] == pytest.approx(2.0, rel=1e-3)  # cm per pixel
    assert len(meta["standardization_mean"]) == len(meta["standardization_std"]) == 4
    assert meta["patchwork:input_scale"] == pytest.approx(1 / 255) and meta["patchwork:class_values"] == [0, 1]
    training = meta["patchwork:training"]
    assert training["seed"] == 3 and training["best_epoch"] == network[0].best_epoch
    assert len(training["chip_index_sha256"]) == 64
    from patchwork.core import load_model

    assert load_model(network[0].output).info.class_colors == meta["patchwork:class_colors"]  # the labels' colours
    batch = model.graph.input[0].type.tensor_type.shape.dim
    assert batch[0].dim_param and [d.dim_value for d in batch[1:]] == [4, 64, 64]  # dynamic batch, fixed tile


def test_the_report_shows_curves_scores_and_validation_chips(network):
    page = open(network[0].output[:-len(".onnx")] + ".html", encoding="utf-8").read()
    assert page.count("<svg") == 2 and page.count("<polyline") == 4  # losses; accuracy and mean IoU
    assert "Validation confusion matrix" in page and page.count("data:image/png;base64,") == 18  # 6 chips x 3
    for name in ("background", "class 1"):
        assert f"<th style='text-align:left'>{name}</th>" in page
    assert f"Best epoch <b>{network[0].best_epoch}</b>" in page and "geometric" in page


def test_deepness_and_classify_give_the_same_map_from_the_trained_network(tmp_path, network, ortho_path):
    path = network[0].output
    meta = {p.key: json.loads(p.value) for p in onnx.load(path).metadata_props}
    rgba = gdal.Open(ortho_path).ReadAsArray()
    expected = deepness_map(path, rgba, 64, 0, segmentation_decision(), meta["standardization_mean"],
                            meta["standardization_std"])
    classes = gdal.Open(classify(ortho_path, path, str(tmp_path / "classes.tif"), scale=1 / 255, overlap=0,
                                 tile_size=64).output).ReadAsArray()
    # the tiles both cut alike: all but Deepness's last row and column (it pads them, Patchwork shifts them back)
    last_r, last_c = max(r for r, _c, _ in deepness_tiles(841, 1243, 64, 0)), max(c for _r, c, _ in
                                                                                  deepness_tiles(841, 1243, 64, 0))
    same = (expected[:last_r, :last_c] == classes[:last_r, :last_c]).mean()
    assert same > 0.999, same  # (float rounding may flip a pixel whose two classes tie)
    assert 0.05 < classes.mean() < 0.95


def test_cancel_stops_within_a_batch_and_writes_nothing(tmp_path, red_chips):
    class CancelAtOnce:
        def set_progress(self, percent):
            pass

        def is_cancelled(self):
            return True

        def info(self, message):
            pass

    with pytest.raises(Cancelled):
        train_segmentation(red_chips[0], str(tmp_path / "out" / "net.onnx"), epochs=2, feedback=CancelAtOnce())
    assert files_under(str(tmp_path)) == []


def test_bad_settings_are_refused_before_training(tmp_path, red_chips):
    for kwargs, match in (({"epochs": 0}, "EPOCHS"), ({"validation_fraction": 1.0}, "VALIDATION_FRACTION"),
                          ({"device": "tpu"}, "DEVICE"), ({"pipeline": '{"class": "MixUp", "config": {}}'}, "MixUp")):
        with pytest.raises(PatchworkError, match=match):
            train_segmentation(red_chips[0], str(tmp_path / "net.onnx"), **kwargs)
    with pytest.raises(PatchworkError, match=".onnx name"):
        train_segmentation(red_chips[0], str(tmp_path / "net.pt"))
    assert not os.path.exists(tmp_path / "net.onnx")
