"""Super-resolution with Deepness's dummy model on the real orthophoto: a grid k times finer, georeferenced exactly,
values equal to the model's own output (one call where the raster is one tile, each tile's without overlap)."""
from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import pytest
from osgeo import gdal

from patchwork.core import PatchworkError, superresolve
from tests.conftest import SHARED_DATA, files_under, read_all

MODEL = os.path.join(SHARED_DATA, "models-more", "dummy_superresolution_model.onnx")


def _window(ortho_path: str, path: str, cols: int, rows: int) -> str:
    gdal.Translate(path, ortho_path, srcWin=[200, 100, cols, rows], bandList=[1, 2, 3])
    return path


def _model_call(x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


def test_one_tile_equals_one_call_on_a_grid_twice_as_fine(tmp_path, ortho_path):
    small = _window(ortho_path, str(tmp_path / "small.tif"), 64, 64)
    result = superresolve(small, MODEL, str(tmp_path / "x2.tif"), scale=1 / 255)
    assert (result.scale_factor, result.width, result.height, result.tiles) == (2, 128, 128, 1)
    values, gt, wkt, _ = read_all(result.output)
    source = gdal.Open(small)
    sgt = source.GetGeoTransform()
    assert gt == (sgt[0], sgt[1] / 2, 0.0, sgt[3], 0.0, sgt[5] / 2) and wkt == source.GetProjection()
    expected = _model_call(source.ReadAsArray()[None] / 255.0)[0]
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-6)


def test_tiles_land_on_the_finer_grid_where_their_pixels_are(tmp_path, ortho_path):
    scene = _window(ortho_path, str(tmp_path / "scene.tif"), 192, 128)
    result = superresolve(scene, MODEL, str(tmp_path / "x2.tif"), scale=1 / 255, overlap=0)
    assert (result.width, result.height, result.tiles) == (384, 256, 6)
    values = read_all(result.output)[0]
    pixels = gdal.Open(scene).ReadAsArray() / 255.0
    for row in (0, 64):
        for col in (0, 64, 128):
            expected = _model_call(pixels[None, :, row : row + 64, col : col + 64])[0]
            np.testing.assert_allclose(values[:, 2 * row : 2 * row + 128, 2 * col : 2 * col + 128], expected,
                                       rtol=1e-6, atol=1e-6)
    blended = superresolve(scene, MODEL, str(tmp_path / "blended.tif"), scale=1 / 255, overlap=16)
    assert blended.tiles > 6 and not np.isnan(read_all(blended.output)[0]).any()


def test_superresolution_errors(tmp_path, ortho_path):
    scene = _window(ortho_path, str(tmp_path / "scene.tif"), 100, 100)
    segmentation = os.path.join(SHARED_DATA, "models", "one_output_softmax_bsx2x512x512.onnx")
    before = files_under(str(tmp_path))
    with pytest.raises(PatchworkError, match="not a super-resolution one"):
        superresolve(scene, segmentation, str(tmp_path / "x.tif"))
    with pytest.raises(PatchworkError, match="takes 3 bands but it would get 4"):
        superresolve(ortho_path, MODEL, str(tmp_path / "x.tif"))
    assert files_under(str(tmp_path)) == before


def test_a_mask_computes_only_the_tiles_that_reach_it_and_leaves_the_rest_nan(tmp_path, ortho_path):
    from patchwork.core import Aoi, Window

    scene = _window(ortho_path, str(tmp_path / "scene.tif"), 480, 320)
    ds = gdal.Open(scene)
    gt, crs = ds.GetGeoTransform(), ds.GetProjection()
    corners = [(150, 90), (300, 110), (260, 230), (140, 200)]  # a quadrilateral, in the scene's pixels (col, row)
    wkt = "POLYGON((" + ", ".join(f"{gt[0] + c * gt[1]} {gt[3] + r * gt[5]}" for c, r in [*corners, corners[0]]) + "))"
    whole = superresolve(scene, MODEL, str(tmp_path / "whole.tif"), scale=1 / 255, overlap=16)
    masked = superresolve(scene, MODEL, str(tmp_path / "masked.tif"), scale=1 / 255, overlap=16,
                          mask=Aoi([wkt], crs))
    assert masked.tiles < whole.tiles / 2  # the tiles away from the polygon are not computed
    full, part = read_all(whole.output)[0], read_all(masked.output)[0]
    finer = gdal.Open(masked.output).GetGeoTransform()
    inside = Aoi([wkt], crs).inside_mask(finer, Window(0, 0, full.shape[1], full.shape[2]))
    assert 0.05 < inside.mean() < 0.5
    np.testing.assert_array_equal(part[:, inside], full[:, inside])  # inside: the output without a mask
    assert np.isnan(part[:, ~inside]).all()
