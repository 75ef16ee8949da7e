"""Random valid and invalid parameters through the core API: a valid output or a PatchworkError, nothing else.

Whatever the values, no other exception escapes and no partial file, staging folder or lock stays behind.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from osgeo import gdal

from patchwork.core import (
    PatchworkError,
    augment_chips,
    classify,
    read_index,
    sample_chips,
    sampler_from_name,
    stitch_chips,
    train_classifier,
)
from tests.conftest import REPO, files_under

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")
FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ints = st.one_of(st.integers(-3, 300), st.sampled_from([0, 10**6, 10**9, 2**63, -(2**63)]))


@pytest.fixture(scope="module")
def scene(tmp_path_factory, naip_path):
    """A 96 x 120 px crop of the real NAIP tile, with a label raster of 3 classes."""
    folder = tmp_path_factory.mktemp("fuzz")
    path = str(folder / "scene.tif")
    gdal.Translate(path, naip_path, srcWin=[200, 200, 120, 96])
    ds = gdal.Open(path)
    labels = (ds.GetRasterBand(4).ReadAsArray() // 86).astype(np.uint8)
    label_path = str(folder / "labels.tif")
    out = gdal.GetDriverByName("GTiff").Create(label_path, 120, 96, 1, gdal.GDT_Byte)
    out.SetGeoTransform(ds.GetGeoTransform())
    out.SetProjection(ds.GetProjection())
    out.GetRasterBand(1).WriteArray(labels)
    out = None
    chips = sample_chips(path, sampler_from_name("regular", step=32, jitter=0, min_distance=1, count=0, seed=0), 32,
                         str(folder / "chips"), labels=label_path)
    return path, label_path, chips.index_path


def outcome(run, folder: str):
    """Run; a PatchworkError is a fine answer. Either way nothing hidden may stay in `folder`."""
    try:
        result = run()
    except PatchworkError:
        result = None
    leftovers = [f for f in files_under(folder) if any(p.startswith(".") for p in f.split(os.sep))]
    assert leftovers == [], leftovers
    return result


@FUZZ
@given(sampler=st.sampled_from(["regular", "jittered", "poisson", "random", "hexagonal"]), chip=ints, step=ints,
       jitter=st.floats(-1, 1), distance=st.floats(-5, 200), count=ints, seed=ints,
       boundary=st.sampled_from(["shift", "pad", "drop", "wrap"]), max_nodata=st.floats(-0.5, 1.5))
def test_sample_chips(scene, tmp_path, sampler, chip, step, jitter, distance, count, seed, boundary, max_nodata):
    folder = tempfile.mkdtemp(dir=tmp_path)

    def run():
        chosen = sampler_from_name(sampler, step=step, jitter=jitter, min_distance=distance, count=count, seed=seed)
        return sample_chips(scene[0], chosen, chip, os.path.join(folder, "chips"), boundary=boundary,
                            labels=scene[1], max_nodata=max_nodata)

    result = outcome(run, folder)
    if result is not None:
        records = read_index(result.index_path)
        assert len(records) == result.chip_count > 0
        assert all(gdal.Open(r["image_path"]).RasterXSize == chip for r in records)


@FUZZ
@given(pipeline=st.sampled_from(["default", "geometric", "radiometric", "{}", "not json",
                                 '{"class": "RandomCrop", "config": {"size": [8, 8]}}',
                                 '{"class": "RandomCrop", "config": {"size": [-8, 800]}}',
                                 '{"class": "BrightnessJitter", "config": {"low": 2, "high": 1}}']),
       copies=ints, seed=ints)
def test_augment_chips(scene, tmp_path, pipeline, copies, seed):
    folder = tempfile.mkdtemp(dir=tmp_path)
    result = outcome(lambda: augment_chips(scene[2], pipeline, os.path.join(folder, "aug"), copies=copies, seed=seed),
                     folder)
    if result is not None:
        assert len(read_index(result.index_path)) == result.chip_count == copies * len(read_index(scene[2]))


@FUZZ
@given(tile=st.one_of(st.none(), ints), overlap=st.one_of(st.none(), ints), batch=ints,
       window=st.sampled_from(["boxcar", "hann", "triangular", "gauss"]),
       aggregation=st.sampled_from(["hardvote", "softvote", "mean", "max"]),
       bands=st.one_of(st.none(), st.lists(st.integers(-1, 6), max_size=5)),
       scale=st.sampled_from([1.0, 0.0, -1.0, 1e-4, float("inf")]), probabilities=st.booleans())
def test_classify(scene, tmp_path, tile, overlap, batch, window, aggregation, bands, scale, probabilities):
    folder = tempfile.mkdtemp(dir=tmp_path)
    out = os.path.join(folder, "classes.tif")
    result = outcome(lambda: classify(scene[0], RULES, out, tile_size=tile, overlap=overlap, batch_size=batch,
                                      window=window, aggregation=aggregation, bands=bands, scale=scale,
                                      probabilities=os.path.join(folder, "p.tif") if probabilities else None), folder)
    if result is not None:
        ds = gdal.Open(out)
        assert (ds.RasterXSize, ds.RasterYSize) == (120, 96) and ds.GetGeoTransform() == gdal.Open(
            scene[0]).GetGeoTransform()


@FUZZ
@given(window=st.sampled_from(["boxcar", "hann", "x"]), aggregation=st.sampled_from(["hardvote", "softvote", "mean"]),
       n_classes=ints)
def test_stitch_chips(scene, tmp_path, window, aggregation, n_classes):
    folder = tempfile.mkdtemp(dir=tmp_path)
    labels = os.path.join(os.path.dirname(scene[2]), "labels")
    outcome(lambda: stitch_chips(labels, os.path.join(folder, "mosaic.tif"), window=window, aggregation=aggregation,
                                 n_classes=n_classes), folder)


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(estimator=st.sampled_from(["random_forest", "logistic_regression", "knn", "svm"]),
       parameters=st.sampled_from([None, "", "{}", "[1]", "nope", '{"n_estimators": -5}', '{"n_estimators": 3}',
                                   '{"max_iter": "x"}', '{"bogus": 1}']),
       fraction=st.floats(-0.5, 1.5), max_pixels=ints, seed=ints)
def test_train_classifier(scene, tmp_path, estimator, parameters, fraction, max_pixels, seed):
    folder = tempfile.mkdtemp(dir=tmp_path)
    result = outcome(lambda: train_classifier(scene[2], os.path.join(folder, "m.onnx"), estimator=estimator,
                                              parameters=parameters, validation_fraction=fraction,
                                              max_pixels=max_pixels, seed=seed), folder)
    if result is not None:
        assert os.path.getsize(result.model) > 0
