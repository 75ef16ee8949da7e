"""Per-pixel uncertainty from classify (#24, item 3): each measure is what its formula gives on the very
probabilities (or votes) the run stitched, on the real Sentinel-2 scene, with overlapping tiles that disagree."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import PatchworkError, classify
from tests.onnx_models import tile_dependent_model

WEIGHTS = np.random.default_rng(7).normal(0, 25, (3, 4, 3, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def softmax_model(tmp_path_factory):
    return tile_dependent_model(str(tmp_path_factory.mktemp("m") / "conv.onnx"), WEIGHTS, True, {})


@pytest.fixture(scope="module")
def value_model(tmp_path_factory):
    return tile_dependent_model(str(tmp_path_factory.mktemp("m") / "values.onnx"), WEIGHTS[:2], False,
                                {"model_type": "Regressor"})


def read(path: str) -> np.ndarray:
    return gdal.Open(path).ReadAsArray().astype(np.float64)


def run(s2_path, model, tmp_path, measure, aggregation="softvote", overlap=24, **extra):
    out = tmp_path / f"{measure}-{aggregation}-{overlap}"
    out.mkdir()
    probabilities = str(out / "p.tif") if aggregation != "mean" else None
    return classify(s2_path, model, str(out / "c.tif"), scale=1e-4, tile_size=48, overlap=overlap,
                    aggregation=aggregation, probabilities=probabilities, uncertainty=str(out / "u.tif"),
                    uncertainty_measure=measure, block_size=64, **extra)


@pytest.mark.parametrize("measure", ["entropy", "margin", "least_confidence"])
def test_probability_measures_are_their_formulas_on_the_probabilities_written(tmp_path, s2_path, softmax_model,
                                                                              measure):
    result = run(s2_path, softmax_model, tmp_path, measure)
    p, u = read(result.probabilities), read(result.uncertainty)
    assert not np.isnan(p).any()
    if measure == "entropy":  # normalised by log K: 0 for a sure pixel, 1 when all classes are equally likely
        expected = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), axis=0) / np.log(3)
    elif measure == "margin":
        top = np.sort(p, axis=0)
        expected = 1 - (top[-1] - top[-2])
    else:
        expected = 1 - p.max(axis=0)
    np.testing.assert_allclose(u, np.clip(expected, 0, 1), atol=2e-7)
    assert u.min() < 0.05 and u.max() > 0.3  # sure and unsure pixels both exist on the scene
    written = gdal.Open(result.uncertainty)
    assert written.GetRasterBand(1).GetDescription() == measure


def test_disagreement_is_the_share_of_tiles_voting_another_class(tmp_path, s2_path, softmax_model):
    """With hard votes and a boxcar window, the vote shares written as probabilities count the tiles: the
    disagreement is 1 − the share of the class written; where one tile covers a pixel, it is 0."""
    result = run(s2_path, softmax_model, tmp_path, "disagreement", aggregation="hardvote")
    shares, u = read(result.probabilities), read(result.uncertainty)
    classes = read(result.output).astype(int)
    written = np.take_along_axis(shares, classes[None], axis=0)[0]
    np.testing.assert_allclose(u, 1 - written, atol=1e-6)
    assert (u > 0).sum() > 100  # the tiles disagree near their seams
    alone = run(s2_path, softmax_model, tmp_path, "disagreement", aggregation="softvote", overlap=0)
    # without overlap a pixel has one tile, but in the last row and column of tiles (moved back onto the scene)
    assert read(alone.uncertainty)[:144, :288].max() == 0


def test_variance_of_values_is_zero_without_overlap_and_measures_the_tiles_spread(tmp_path, s2_path, value_model):
    flat = run(s2_path, value_model, tmp_path, "auto", aggregation="mean", overlap=0)
    assert gdal.Open(flat.uncertainty).RasterCount == 2  # a variance per value band
    assert read(flat.uncertainty)[:, :144, :288].max() == 0  # one tile per pixel there (see above)
    spread = run(s2_path, value_model, tmp_path, "variance", aggregation="mean")
    variance = read(spread.uncertainty)
    assert (variance >= 0).all() and (variance > 1e-6).sum() > 100
    values = read(spread.output)
    seams = variance[0] > 1e-6
    assert np.abs(values[0][seams]).mean() > 0  # where tiles disagree, the map is their mean


def test_uncertainty_is_nodata_outside_the_mask_and_where_the_input_is(tmp_path, s2_path, softmax_model):
    from patchwork.core import Aoi

    ds = gdal.Open(s2_path)
    gt = ds.GetGeoTransform()
    x0, y0 = gt[0] + 50 * gt[1], gt[3] + 40 * gt[5]
    x1, y1 = gt[0] + 200 * gt[1], gt[3] + 150 * gt[5]
    mask = Aoi([f"POLYGON (({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"], ds.GetProjection())
    result = run(s2_path, softmax_model, tmp_path, "entropy", mask=mask)
    u, classes = read(result.uncertainty), read(result.output)
    written = gdal.Open(result.output)  # (held while its band is read)
    nodata = written.GetRasterBand(1).GetNoDataValue()
    np.testing.assert_array_equal(np.isnan(u), classes == nodata)
    assert np.isnan(u[:30]).all() and not np.isnan(u[60:140, 60:190]).any()


def test_a_measure_for_the_other_kind_of_map_is_refused_before_anything_is_written(tmp_path, s2_path,
                                                                                    softmax_model, value_model):
    with pytest.raises(PatchworkError, match="UNCERTAINTY: 'variance' does not apply to a class map; use entropy"):
        classify(s2_path, softmax_model, str(tmp_path / "c.tif"), uncertainty=str(tmp_path / "u.tif"),
                 uncertainty_measure="variance", check_only=True)
    with pytest.raises(PatchworkError, match="UNCERTAINTY: 'margin' does not apply to a map of values; use variance"):
        classify(s2_path, value_model, str(tmp_path / "v.tif"), aggregation="mean",
                 uncertainty=str(tmp_path / "u.tif"), uncertainty_measure="margin")
    assert not list(tmp_path.iterdir())
