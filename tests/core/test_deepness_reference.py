"""Deepness's own test models, each run by Patchwork and by Deepness's processing rules (`tests/deepness_reference`,
written out from its code): the same classes and values, pixel for pixel, on the real orthophoto.

Deepness copies each tile's core and Patchwork blends overlapping tiles, so where a model's output depends on a
tile's surroundings the two may differ within the overlap of neighbouring tiles; these models are per pixel (a 1×1
convolution and its softmax or sigmoid; slices of the input), so every pixel must agree.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import classify
from tests.conftest import SHARED_DATA
from tests.deepness_reference import deepness_map, deepness_tiles, regression_decision, segmentation_decision

MODELS, MORE = os.path.join(SHARED_DATA, "models"), os.path.join(SHARED_DATA, "models-more")


def test_the_reference_tiles_cover_each_pixel_once():
    covered = np.zeros((841, 1243), int)
    for _r, _c, core in deepness_tiles(841, 1243, 512, 64):
        covered[core[0].start : min(core[0].stop, 841), core[1].start : min(core[1].stop, 1243)] += 1
    assert (covered == 1).all()


@pytest.mark.parametrize("model, threshold, mixed", [
    ("one_output_softmax_bsx2x512x512.onnx", None, False),  # (its first class wins everywhere on this scene)
    ("one_output_sigmoid_bsx1x512x512.onnx", 0.4, True),  # p 0.32–0.48 here: all 0 at Deepness's default 0.5
    ("one_output_sigmoid_red_detector.onnx", None, True),
    ("one_output_sigmoid_red_detector.onnx", 0.55, True)])
@pytest.mark.parametrize("overlap", [0, 64])
def test_segmentation_models_classify_every_pixel_as_deepness_does(tmp_path, ortho_path, model, threshold, mixed,
                                                                   overlap):
    path = os.path.join(MODELS, model)
    rgb = gdal.Open(ortho_path).ReadAsArray()[:3]
    expected = deepness_map(path, rgb, 512, overlap, segmentation_decision(threshold or 0.5))
    result = classify(ortho_path, path, str(tmp_path / "classes.tif"), bands=[1, 2, 3], scale=1 / 255, tile_size=512,
                      overlap=overlap, threshold=threshold)
    classes = gdal.Open(result.output).ReadAsArray()
    assert result.info.class_values == [0, 1]
    np.testing.assert_array_equal(classes, expected)
    assert (0.01 < classes.mean() < 0.99) == mixed  # both classes on the map, where the model sees both


def test_the_regression_dummy_gives_deepness_values_scaled_by_its_reg_output_scaling(tmp_path, ortho_path):
    path = os.path.join(MORE, "dummy_regression_model.onnx")  # reg_output_scaling 1.1; its input is 512 px
    rgb = gdal.Open(ortho_path).ReadAsArray()[:3]
    expected = deepness_map(path, rgb, 512, 56, regression_decision(1.1))  # tiles_overlap 11 % of 512 px
    native = gdal.Open(ortho_path).GetGeoTransform()[1]  # (its 5.5 cm resolution is tested elsewhere)
    result = classify(ortho_path, path, str(tmp_path / "values.tif"), bands=[1, 2, 3], scale=1 / 255, overlap=56,
                      aggregation="mean", resolution=native)
    values = gdal.Open(result.output).ReadAsArray()
    assert values.shape == expected.shape[-2:] and np.ptp(expected) > 0.1
    np.testing.assert_allclose(values, expected[0], rtol=1e-6, atol=1e-6)
