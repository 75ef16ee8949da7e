"""Deepness's one-class models as Deepness reads them (#26): a float [N, H, W] output is one sigmoid channel (class 1
where p ≥ 0.5, or its seg_thresh), and an output the size of the input tile is a map, not a detector's boxes, when
no metadata says so."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import PatchworkError, classify, load_model
from tests.onnx_models import conv_model, sigmoid_map_model

GREEN_OVER_RED = np.array([-8.0, 8.0, 0.0])  # p = sigmoid(8·(green − red)), on values 0–1


def deepness_reference(ortho: str, weights: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """What Deepness's code computes for a one-channel sigmoid: class 1 where p ≥ threshold (in numpy)."""
    rgb = gdal.Open(ortho).ReadAsArray()[:3].astype(np.float32) / 255
    p = 1 / (1 + np.exp(-np.tensordot(weights.astype(np.float32), rgb, axes=1)))
    return (p >= threshold).astype(np.uint8)


@pytest.mark.parametrize("keep_channel", [False, True])
def test_a_one_class_sigmoid_map_without_metadata_classifies_as_deepness_does(tmp_path, ortho_path, keep_channel):
    path = sigmoid_map_model(str(tmp_path / "m.onnx"), [GREEN_OVER_RED], tile=64, keep_channel=keep_channel)
    info = load_model(path).info
    assert info.task == "classification" and info.class_names == ["background", "class 1"]
    result = classify(ortho_path, path, str(tmp_path / "c.tif"), bands=[1, 2, 3], scale=1 / 255, tile_size=64)
    classes = gdal.Open(result.output).ReadAsArray()
    expected = deepness_reference(ortho_path, GREEN_OVER_RED)
    decided = np.abs(gdal.Open(ortho_path).ReadAsArray()[1].astype(int) - gdal.Open(ortho_path).ReadAsArray()[0]) > 1
    np.testing.assert_array_equal(classes[decided], expected[decided])  # (p = 0.5 exactly: Deepness says 1)
    assert 0.05 < classes.mean() < 0.95


def test_a_two_head_sigmoid_model_without_metadata_is_two_maps_not_a_detector(tmp_path, ortho_path):
    path = sigmoid_map_model(str(tmp_path / "two.onnx"), [GREEN_OVER_RED, -GREEN_OVER_RED], tile=64)
    model = load_model(path)
    assert model.info.task == "classification" and model.info.heads == ["mask1", "mask2"]
    result = classify(ortho_path, path, str(tmp_path / "c.tif"), bands=[1, 2, 3], scale=1 / 255, tile_size=64)
    first, second = (gdal.Open(r.output).ReadAsArray() for r in (result, *result.other_heads))
    decided = np.abs(gdal.Open(ortho_path).ReadAsArray()[1].astype(int) - gdal.Open(ortho_path).ReadAsArray()[0]) > 1
    assert np.array_equal(first[decided], 1 - second[decided])  # the two heads say opposite things


def test_seg_thresh_moves_the_decision(tmp_path, ortho_path):
    path = sigmoid_map_model(str(tmp_path / "t.onnx"), [GREEN_OVER_RED], tile=64,
                             metadata={"model_type": "Segmentor", "seg_thresh": 0.8})
    result = classify(ortho_path, path, str(tmp_path / "c.tif"), bands=[1, 2, 3], scale=1 / 255, tile_size=64)
    classes = gdal.Open(result.output).ReadAsArray()
    expected = deepness_reference(ortho_path, GREEN_OVER_RED, 0.8)
    assert (classes == expected).mean() > 0.999  # (pixels at p = 0.8 exactly may differ by the last bit)


def test_the_threshold_parameter_moves_the_decision_as_seg_thresh_does(tmp_path, ortho_path):
    """#26: THRESHOLD is the user's seg_thresh; it wins over the model's own."""
    path = sigmoid_map_model(str(tmp_path / "t.onnx"), [GREEN_OVER_RED], tile=64, metadata={"seg_thresh": 0.3})
    result = classify(ortho_path, path, str(tmp_path / "c.tif"), bands=[1, 2, 3], scale=1 / 255, tile_size=64,
                      threshold=0.8)
    classes = gdal.Open(result.output).ReadAsArray()
    assert (classes == deepness_reference(ortho_path, GREEN_OVER_RED, 0.8)).mean() > 0.999
    assert (classes != deepness_reference(ortho_path, GREEN_OVER_RED, 0.3)).sum() > 1000  # not the model's own


def test_model_type_says_what_the_model_is_when_its_metadata_does_not(tmp_path, ortho_path):
    """#26: a one-sigmoid model without metadata reads as segmentation; MODEL_TYPE regression makes its p a value
    map instead (Deepness's Regressor), mean-stitched; a threshold for a model of several classes is refused."""
    path = sigmoid_map_model(str(tmp_path / "m.onnx"), [GREEN_OVER_RED], tile=64)
    values = classify(ortho_path, path, str(tmp_path / "v.tif"), bands=[1, 2, 3], scale=1 / 255, tile_size=64,
                      aggregation="mean", model_type="regression")
    assert values.info.task == "regression"
    rgb = gdal.Open(ortho_path).ReadAsArray()[:3].astype(np.float32) / 255
    p = 1 / (1 + np.exp(-np.tensordot(GREEN_OVER_RED.astype(np.float32), rgb, axes=1)))
    np.testing.assert_allclose(gdal.Open(values.output).ReadAsArray(), p, atol=1e-5)
    with pytest.raises(PatchworkError, match="MODEL_TYPE: 'segmentor' is not one of auto, segmentation"):
        load_model(path, model_type="segmentor")
    two = sigmoid_map_model(str(tmp_path / "two.onnx"), [GREEN_OVER_RED, -GREEN_OVER_RED], tile=64, keep_channel=True)
    softmax = conv_model(str(tmp_path / "soft.onnx"), np.ones((2, 3, 1, 1), np.float32), softmax=True)
    with pytest.raises(PatchworkError, match="THRESHOLD: 'soft.onnx' gives 2 class scores, not one sigmoid"):
        classify(ortho_path, softmax, str(tmp_path / "x.tif"), bands=[1, 2, 3], threshold=0.7, check_only=True)
    assert load_model(two, threshold=0.7).info.decision_weights == pytest.approx([0.7, 0.3])  # each head's sigmoid
