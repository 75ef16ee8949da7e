"""Where the model is outside its training data (#24, item 5): the area of applicability of Meyer & Pebesma (2021),
stored in a model trained by Patchwork and written by classify as a mask; on the real Sentinel-2 scene."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import PatchworkError, classify, load_model, train_classifier, write_geotiff
from patchwork.core.models.applicability import applicability, dissimilarity
from tests.conftest import REPO, read_all

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, s2_path):
    """A forest trained on the left half of the scene only (its labels: the rules map there)."""
    folder = tmp_path_factory.mktemp("aoa")
    rules = classify(s2_path, RULES, str(folder / "rules.tif"), scale=1e-4).output
    labels, gt, wkt, _ = read_all(rules)
    half = labels[0].copy()
    half[:, half.shape[1] // 2:] = 255
    left = write_geotiff(str(folder / "left.tif"), half, gt, wkt, nodata=255)
    model = str(folder / "forest.onnx")
    train_classifier(s2_path, model, labels=left, estimator="random_forest", parameters='{"n_estimators": 20}',
                     seed=3)
    return model, folder


def test_the_dissimilarity_index_is_meyer_and_pebesmas(trained, s2_path):
    """DI: the nearest stored training pixel in the importance-weighted, standardised space, over their mean
    distance; the threshold the largest training DI (another chip's nearest) under Q3 + 1.5 IQR."""
    from scipy.spatial import cKDTree

    model, _folder = trained
    aoa = load_model(model).info.aoa
    points = np.array(aoa["points"])
    assert 10 < len(points) <= 1000 and len(aoa["weights"]) == 4
    assert np.mean(aoa["weights"]) == pytest.approx(1.0)  # importances, scaled to mean 1
    pairs = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    assert aoa["mean_distance"] == pytest.approx(pairs[np.triu_indices(len(points), 1)].mean())
    pixels = np.random.default_rng(0).normal(0, 0.2, (500, 4)) + np.array(aoa["mean"])
    z = (pixels - aoa["mean"]) / np.array(aoa["std"]) * np.array(aoa["weights"])
    nearest, _ = cKDTree(points).query(z)
    np.testing.assert_allclose(dissimilarity(pixels, aoa), nearest / aoa["mean_distance"], rtol=1e-10)
    # the threshold on made-up training data, by hand
    features = np.random.default_rng(1).normal(size=(60, 3))
    groups = np.repeat(np.arange(6), 10)
    made = applicability(features, np.array([1.0, 1.0, 1.0]), groups, seed=0)
    z = (features - features.mean(0)) / features.std(0)
    d = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))
    mean_distance = d[np.triu_indices(60, 1)].mean()
    d[groups[:, None] == groups[None]] = np.inf
    training = d.min(1) / mean_distance
    q1, q3 = np.percentile(training, [25, 75])
    assert made["threshold"] == pytest.approx(training[training <= q3 + 1.5 * (q3 - q1)].max())


def test_classify_maps_where_the_pixels_are_unlike_the_training_pixels(trained, s2_path, tmp_path):
    model, _folder = trained
    result = classify(s2_path, model, str(tmp_path / "c.tif"), aoa=str(tmp_path / "aoa.tif"), block_size=64,
                      workers=2)
    mask = gdal.Open(result.aoa).ReadAsArray()
    assert set(np.unique(mask)) <= {0, 1}
    left, right = mask[:, : mask.shape[1] // 2], mask[:, mask.shape[1] // 2:]
    assert left.mean() > 0.9  # where it was trained, the model knows its pixels
    assert left.mean() > right.mean()  # elsewhere less so
    # a scene unlike the training one: the same bands, ten times brighter — outside
    data, gt, wkt, _ = read_all(s2_path)
    bright = write_geotiff(str(tmp_path / "bright.tif"), data * 10, gt, wkt)
    outside = classify(bright, model, str(tmp_path / "b.tif"), aoa=str(tmp_path / "b_aoa.tif"))
    assert gdal.Open(outside.aoa).ReadAsArray().mean() < 0.05
    again = classify(s2_path, model, str(tmp_path / "c1.tif"), aoa=str(tmp_path / "aoa1.tif"), block_size=64,
                     workers=1)
    assert (gdal.Open(again.aoa).ReadAsArray() == mask).all()  # the same bits on one worker
    assert os.path.exists(str(tmp_path / "aoa.qml"))


def test_a_model_without_training_data_has_no_area_of_applicability(s2_path, tmp_path):
    with pytest.raises(PatchworkError, match="OUTPUT_AOA: 'NDVI / NDWI water, bare land and vegetation' carries no"):
        classify(s2_path, RULES, str(tmp_path / "c.tif"), aoa=str(tmp_path / "a.tif"), check_only=True)
    assert not list(tmp_path.iterdir())


def test_the_model_carries_its_area_of_applicability_as_json_metadata(trained):
    import onnx

    model, _folder = trained
    meta = {p.key: p.value for p in onnx.load(model).metadata_props}
    aoa = json.loads(meta["patchwork:aoa"])
    assert aoa["method"] == "Meyer & Pebesma 2021" and aoa["threshold"] > 0
