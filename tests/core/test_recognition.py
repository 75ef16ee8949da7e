"""Recognition with Deepness's dummy model on the real orthophoto: each tile's value is its embedding's cosine
similarity to the query's, and the tile the query was cut from scores 1."""
from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import pytest
from osgeo import gdal

from patchwork.core import PatchworkError, recognize
from tests.conftest import SHARED_DATA, read_all

MODEL = os.path.join(SHARED_DATA, "models-more", "dummy_recognition_model.onnx")


def test_each_tile_scores_its_similarity_to_the_query(tmp_path, ortho_path):
    query = str(tmp_path / "query.tif")
    gdal.Translate(query, ortho_path, srcWin=[224, 224, 224, 224], bandList=[1, 2, 3])  # one tile of the grid
    native = gdal.Open(ortho_path).GetGeoTransform()[1]  # the raster's own grid, not the model's 3 cm
    result = recognize(ortho_path, MODEL, query, str(tmp_path / "similar.tif"), bands=[1, 2, 3], scale=1 / 255,
                       overlap=0, window="boxcar", resolution=native)
    similarity = read_all(result.output)[0][0]
    assert similarity.shape == (841, 1243) and result.tiles == 4 * 6  # 224 px tiles, the last ones shifted back
    session = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
    pixels = gdal.Open(ortho_path).ReadAsArray()[:3].astype(np.float32) / 255
    query_vector = session.run(None, {"input": pixels[None, :, 224:448, 224:448]})[0][0]
    for row, rows in ((0, 224), (224, 224), (448, 617 - 448)):  # the last row of tiles starts at 617 (shifted)
        for col in (0, 224, 448, 672):
            vector = session.run(None, {"input": pixels[None, :, row : row + 224, col : col + 224]})[0][0]
            expected = vector @ query_vector / np.linalg.norm(vector) / np.linalg.norm(query_vector)
            np.testing.assert_allclose(similarity[row : row + rows, col : col + 224], expected, atol=1e-5)
    assert similarity[224:448, 224:448] == pytest.approx(1.0, abs=1e-5)
    assert similarity.max() == pytest.approx(1.0, abs=1e-5)


def test_recognition_needs_a_recognition_model(tmp_path, ortho_path):
    segmentation = os.path.join(SHARED_DATA, "models", "one_output_softmax_bsx2x512x512.onnx")
    with pytest.raises(PatchworkError, match="not a recognition one"):
        recognize(ortho_path, segmentation, ortho_path, str(tmp_path / "x.tif"), bands=[1, 2, 3])
    from patchwork.core import classify

    with pytest.raises(PatchworkError, match="is a recognition model"):
        classify(ortho_path, MODEL, str(tmp_path / "x.tif"), bands=[1, 2, 3])


def test_the_models_resolution_is_the_default_grid(tmp_path, ortho_path):
    query = str(tmp_path / "query.tif")
    gdal.Translate(query, ortho_path, srcWin=[224, 224, 224, 224], bandList=[1, 2, 3])
    result = recognize(ortho_path, MODEL, query, str(tmp_path / "similar.tif"), bands=[1, 2, 3], scale=1 / 255)
    assert read_all(result.output)[1][1] == pytest.approx(0.03, rel=1e-12)  # its metadata: 3 cm per pixel


def test_the_similarity_map_comes_back_to_the_rasters_grid_with_output_grid_input(tmp_path, ortho_path):
    query = str(tmp_path / "query.tif")
    gdal.Translate(query, ortho_path, srcWin=[224, 224, 224, 224], bandList=[1, 2, 3])
    model_grid = recognize(ortho_path, MODEL, query, str(tmp_path / "model.tif"), bands=[1, 2, 3], scale=1 / 255)
    on_input = recognize(ortho_path, MODEL, query, str(tmp_path / "input.tif"), bands=[1, 2, 3], scale=1 / 255,
                         output_grid="input")
    coarse, back, source = (gdal.Open(p) for p in (model_grid.output, on_input.output, ortho_path))
    assert coarse.GetGeoTransform()[1] == pytest.approx(0.03, rel=1e-3)  # the model's 3 cm
    assert (back.RasterXSize, back.RasterYSize) == (source.RasterXSize, source.RasterYSize)
    # exactly the raster's grid, its not quite square pixels (2 cm by 1.99993 cm) included
    assert back.GetGeoTransform() == pytest.approx(source.GetGeoTransform(), rel=1e-12)
    values = back.ReadAsArray()
    assert np.nanmax(values) == pytest.approx(np.nanmax(coarse.ReadAsArray()), abs=0.05)
    assert np.isfinite(values).mean() > 0.9


def test_a_loaded_model_cannot_resume_or_go_to_dask(tmp_path, ortho_path):
    """A journal or a worker knows a model by its file; a loaded one's query would not travel with it."""
    from patchwork.core import load_model

    query = str(tmp_path / "query.tif")
    gdal.Translate(query, ortho_path, srcWin=[224, 224, 224, 224], bandList=[1, 2, 3])
    with pytest.raises(PatchworkError, match="give the recognition model's file"):
        recognize(ortho_path, load_model(MODEL), query, str(tmp_path / "s.tif"), bands=[1, 2, 3], scale=1 / 255,
                  resume=True)
    assert not os.path.exists(tmp_path / "s.tif")
