"""#25: a segmentation network trained from chips on the real orthophoto, augmented while it learns, exported so that
Patchwork and Deepness's processing give the same map; the same seed gives the same network."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import Cancelled, PatchworkError, RegularSampler, classify, read_index, sample_chips
from tests.conftest import SHARED_DATA, CancelAfter, Recorder, files_under
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
    with pytest.raises(Cancelled):
        train_segmentation(red_chips[0], str(tmp_path / "out" / "net.onnx"), epochs=2, feedback=CancelAfter(0))
    assert files_under(str(tmp_path)) == []


def test_bad_settings_are_refused_before_training(tmp_path, red_chips):
    for kwargs, match in (({"epochs": 0}, "EPOCHS"), ({"validation_fraction": 1.0}, "VALIDATION_FRACTION"),
                          ({"device": "tpu"}, "DEVICE"), ({"pipeline": '{"class": "MixUp", "config": {}}'}, "MixUp")):
        with pytest.raises(PatchworkError, match=match):
            train_segmentation(red_chips[0], str(tmp_path / "net.onnx"), **kwargs)
    with pytest.raises(PatchworkError, match="given twice"):
        train_segmentation([red_chips[0], red_chips[0]], str(tmp_path / "net.onnx"))
    with pytest.raises(PatchworkError, match=".onnx name"):
        train_segmentation(red_chips[0], str(tmp_path / "net.pt"))
    assert not os.path.exists(tmp_path / "net.onnx")


@pytest.fixture(scope="module")
def two_scenes(tmp_path_factory, ortho_path, red_chips):
    """The orthophoto's west and east parts as two scenes, each with its labels, and a chip index of each."""
    folder = tmp_path_factory.mktemp("scenes")
    indexes = []
    for name, window in (("west", [0, 0, 640, 841]), ("east", [640, 0, 603, 841])):
        for path, source in ((f"{name}.tif", ortho_path), (f"{name}_labels.tif", red_chips[1])):
            written = gdal.Translate(str(folder / path), source, srcWin=window)
            written = None  # noqa: F841 - (closed: flushed to disk)
        indexes.append(sample_chips(str(folder / f"{name}.tif"), RegularSampler(step=64), 64,
                                    str(folder / f"{name}_chips"), labels=str(folder / f"{name}_labels.tif"))
                       .index_path)
    return indexes, folder


def test_several_chip_indexes_train_one_network_with_validation_apart_in_each_scene(tmp_path, two_scenes):
    two_scenes, _folder = two_scenes
    west, east = (read_index(index) for index in two_scenes)
    log = Recorder()
    result = train_segmentation(two_scenes, str(tmp_path / "both.onnx"), epochs=1, seed=1, feedback=log)
    names = [os.path.basename(index) for index in two_scenes]
    assert f"2 chip indexes: {names[0]} ({len(west)} chips), {names[1]} ({len(east)} chips)" in log.lines
    meta = {p.key: json.loads(p.value) for p in onnx.load(result.output).metadata_props}
    assert meta["patchwork:training"]["chips"] == len(west) + len(east) and result.class_values == [0, 1]
    # the pooled band statistics are the statistics of both scenes' chips together, exactly
    from patchwork.core.data.chip_dataset import ChipDataset

    chips = ChipDataset(two_scenes)
    pixels = np.concatenate([chips[i]["image"][:, chips[i]["valid"]] for i in range(len(chips))], axis=1)
    assert [b["mean"] for b in chips.band_statistics] == pytest.approx(pixels.mean(1).tolist(), rel=1e-12)
    assert [b["std"] for b in chips.band_statistics] == pytest.approx(pixels.std(1).tolist(), rel=1e-12)
    assert meta["standardization_mean"] == pytest.approx((pixels.mean(1) / 255).tolist(), rel=1e-6)  # (float32)
    std = np.where(pixels.std(1) > 0, pixels.std(1), 255)  # (the constant alpha band keeps std 1)
    assert meta["standardization_std"] == pytest.approx((std / 255).tolist(), rel=1e-6)
    # chips of two scenes at the same rows and columns are not neighbours: validation is held out in each scene
    records = chips.records
    training, validation = spatial_split(records, 0.3, seed=1)
    for t in training:
        for v in validation:
            a, b = records[t], records[v]
            if a["source"] == b["source"]:
                assert (a["row_off"] + 64 <= b["row_off"] or b["row_off"] + 64 <= a["row_off"]
                        or a["col_off"] + 64 <= b["col_off"] or b["col_off"] + 64 <= a["col_off"])
    same_place = {(r["row_off"], r["col_off"]) for r in west} & {(r["row_off"], r["col_off"]) for r in east}
    assert same_place  # (so the check above could fail if scenes were mixed)


def test_chip_indexes_that_disagree_are_refused_naming_the_difference(tmp_path, two_scenes, s2_path):
    (west, _east), folder = two_scenes
    s2 = sample_chips(s2_path, RegularSampler(step=64), 64, str(tmp_path / "s2")).index_path
    with pytest.raises(PatchworkError, match="disagree: .* has float64 pixels, where .* has uint8"):
        train_segmentation([west, s2], str(tmp_path / "net.onnx"))
    renamed = str(tmp_path / "renamed_labels.tif")
    ds = gdal.Translate(renamed, str(folder / "east_labels.tif"))
    ds = None
    ds = gdal.Open(renamed, gdal.GA_Update)
    ds.GetRasterBand(1).SetMetadataItem("CLASS_1", "water")  # (where Patchwork's class maps keep their names)
    ds = None
    water = sample_chips(str(folder / "east.tif"), RegularSampler(step=64), 64, str(tmp_path / "water"),
                         labels=renamed).index_path
    with pytest.raises(PatchworkError, match="disagree on class 1: 'class 1' in one, 'water' in"):
        train_segmentation([west, water], str(tmp_path / "net.onnx"))
    assert not os.path.exists(tmp_path / "net.onnx")
