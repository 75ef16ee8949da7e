"""Model adapters on real data: rules, scikit-learn (skops, pickles), ONNX per-pixel and image models."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from patchwork.core import PatchworkError, load_model
from tests.conftest import REPO, SHARED_DATA, read_all
from tests.onnx_models import conv_model

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


def seed_labels(reflectance: np.ndarray) -> np.ndarray:
    """The seed's three-class rule, verbatim (1e-10 in each denominator): water, then vegetation wins."""
    blue, green, red, nir = reflectance
    ndvi = (nir - red) / (nir + red + 1e-10)
    ndwi = (green - nir) / (green + nir + 1e-10)
    labels = np.ones(ndvi.shape, np.int64)
    labels[ndwi > 0.1] = 0
    labels[ndvi >= 0.25] = 2
    return labels


@pytest.fixture(scope="module")
def s2_pixels(s2_path):
    data, *_ = read_all(s2_path)
    reflectance = data * 1e-4  # float64, as the seed computes it
    return reflectance, reflectance.reshape(4, -1).T


@pytest.fixture(scope="module")
def forest(s2_pixels):
    """A random forest trained on the rules model's classes of the real S2 pixels."""
    from sklearn.ensemble import RandomForestClassifier

    reflectance, pixels = s2_pixels
    labels = seed_labels(reflectance).ravel()
    rng = np.random.default_rng(0)
    pick = rng.choice(len(pixels), 4000, replace=False)
    return RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0).fit(pixels[pick], labels[pick] * 5)


def test_shipped_rules_model_equals_the_seed_expression_on_sentinel2(s2_pixels):
    reflectance, pixels = s2_pixels
    model = load_model(RULES)
    assert model.info.class_names == ["water", "bare land / scrub", "vegetation"]
    assert model.info.band_names == ["blue", "green", "red", "nir"] and model.info.per_pixel
    labels = model.predict_pixels(pixels)
    expected = seed_labels(reflectance).ravel()
    np.testing.assert_array_equal(labels, expected)
    assert set(np.unique(expected)) == {0, 1, 2}  # the scene really has all three classes


def test_rules_model_on_float32_planes_computes_as_on_their_float64_copy(tmp_path, s2_path, s2_pixels):
    """float32 rasters reach the rules model as they are (no float64 copy of every band); it must classify exactly as
    on float64 copies, thresholds included: the float32 nearest to 0.3 is above 0.3."""
    from osgeo import gdal

    from patchwork.core import RasterSource, Window
    from patchwork.core.engine.model_input import input_transform

    rule = {"bands": ["b1", "b2"], "classes": [{"value": 0}, {"value": 1}], "default_class": 0,
            "rules": [{"class": 1, "when": [{"band": "b1", "op": ">", "value": 0.3}]}], "format": "patchwork-rules"}
    (tmp_path / "band.json").write_text(json.dumps(rule))
    at_threshold = np.array([[0.3, np.nextafter(np.float32(0.3), np.float32(0)), 0.2999999], [0, 0, 0]], np.float32)
    reflectance, _pixels = s2_pixels
    for model, x in ((load_model(RULES), reflectance.astype(np.float32).reshape(4, -1)),
                     (load_model(str(tmp_path / "band.json")), at_threshold)):
        expected = model.predict_planes(x.astype(np.float64))
        np.testing.assert_array_equal(model.predict_planes(x), expected)
        valid = np.ones((1, 1, x.shape[1]), bool)
        valid[0, 0, :2] = False  # invalid pixels: class index 0, as every per-pixel model gives them
        np.testing.assert_array_equal(model.predict(x[None, :, None, :], valid).ravel(),
                                      np.where(valid.ravel(), expected, 0))
    assert list(load_model(str(tmp_path / "band.json")).predict_planes(at_threshold)) == [1, 0, 0]
    scene = str(tmp_path / "float32.tif")
    gdal.Translate(scene, s2_path, outputType=gdal.GDT_Float32)
    with RasterSource(scene) as src:
        data, valid = src.read(Window(0, 0, 8, 8))
        as_they_are = input_transform(src, load_model(RULES).info, None, 1.0, 0.0)
        scaled = input_transform(src, load_model(RULES).info, None, 1e-4, 0.0)
    assert as_they_are.apply(data, valid) is data and scaled.apply(data.copy(), valid).dtype == np.float64


def test_rules_model_errors_name_the_problem(tmp_path):
    spec = json.load(open(RULES))
    spec["rules"][0]["when"][0]["index"] = "evi"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spec))
    with pytest.raises(PatchworkError, match="tests 'evi', which is neither an index"):
        load_model(str(bad))
    (tmp_path / "other.json").write_text('{"type": "FeatureCollection"}')
    with pytest.raises(PatchworkError, match="not a Patchwork rules model"):
        load_model(str(tmp_path / "other.json"))
    (tmp_path / "broken.json").write_text('{"format": "patchwork-rules", ')
    with pytest.raises(PatchworkError, match="cannot read .* as a JSON rules model"):
        load_model(str(tmp_path / "broken.json"))


def test_skops_model_loads_safely_and_predicts_like_sklearn(tmp_path, forest, s2_pixels):
    import skops.io as sio

    path = tmp_path / "forest.skops"
    sio.dump(forest, path)
    model = load_model(str(path))
    assert model.info.class_values == [0, 5, 10] and model.info.n_bands == 4
    _, pixels = s2_pixels
    np.testing.assert_allclose(model.predict_pixels(pixels), forest.predict_proba(pixels), atol=1e-6)


def test_pickles_are_refused_unless_trusted(tmp_path, forest, s2_pixels):
    path = tmp_path / "forest.pkl"
    path.write_bytes(pickle.dumps(forest))
    with pytest.raises(PatchworkError, match="runs whatever code it contains.*TRUST_MODEL=true"):
        load_model(str(path))
    model = load_model(str(path), trust=True)
    _, pixels = s2_pixels
    np.testing.assert_allclose(model.predict_pixels(pixels[:500]), forest.predict_proba(pixels[:500]), atol=1e-6)


@pytest.mark.parametrize("zipmap", [True, False])
def test_skl2onnx_export_with_and_without_zipmap_matches_sklearn(tmp_path, forest, s2_pixels, zipmap):
    from skl2onnx import to_onnx

    # float32 input: the trees compare in float32 as scikit-learn does internally (double thresholds would
    # split a few pixels lying exactly on a threshold differently).
    pixels = s2_pixels[1].astype(np.float32)
    onx = to_onnx(forest, pixels[:1], options={id(forest): {"zipmap": zipmap}}, target_opset=17)
    path = tmp_path / f"forest-{zipmap}.onnx"
    path.write_bytes(onx.SerializeToString())
    model = load_model(str(path))
    assert model.info.per_pixel and model.info.n_bands == 4
    # ZipMap keys carry the class ids; a plain tensor does not, so the classes are numbered 0..K-1.
    assert model.info.class_values == ([0, 5, 10] if zipmap else [0, 1, 2])
    np.testing.assert_allclose(model.predict_pixels(pixels[:3000]), forest.predict_proba(pixels[:3000]), atol=1e-5)


def test_deepness_metadata_is_read(tmp_path):
    weights = np.random.default_rng(1).normal(size=(3, 3, 1, 1))
    path = conv_model(str(tmp_path / "deepness.onnx"), weights, softmax=True, metadata={
        "model_type": "Segmentor", "class_names": [{"0": "road", "1": "roof", "2": "grass"}],
        "tiles_size": 256, "tiles_overlap": 25, "resolution": 10.0,
        "standardization_mean": [0.4, 0.4, 0.4], "standardization_std": [0.2, 0.2, 0.2]})
    info = load_model(path).info
    assert info.class_names == ["road", "roof", "grass"] and info.class_values == [0, 1, 2]
    assert (info.tile_size, info.default_tile_size, info.default_overlap) == (None, 256, 64)
    assert info.mean == [0.4] * 3 and info.std == [0.2] * 3 and info.batch_size is None


def test_shipped_deepness_models_describe_themselves():
    from tests.conftest import SHARED_DATA

    models = os.path.join(SHARED_DATA, "models")
    sigmoid = load_model(os.path.join(models, "one_output_sigmoid_bsx1x512x512.onnx")).info
    assert sigmoid.class_names == ["background", "Coffee"] and sigmoid.tile_size == 512
    two_heads = load_model(os.path.join(models, "two_outputs_softmax_bsx2x512x512.onnx")).info
    assert two_heads.class_names == ["Coffee", "Tea"]  # the first head


def test_valid_convolution_model_reports_its_margin(tmp_path):
    weights = np.ones((2, 3, 5, 5)) / 75
    info = load_model(conv_model(str(tmp_path / "valid.onnx"), weights, tile=64, batch=2)).info
    assert (info.tile_size, info.margin, info.batch_size) == (64, 2, 2)


@pytest.mark.parametrize("content, message", [
    (b"this is not a protobuf", "is not a valid ONNX model"),
    (b"", "is not a valid ONNX model"),
])
def test_corrupt_onnx_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(PatchworkError, match=message):
        load_model(str(path))


def test_missing_model_and_unknown_format(tmp_path):
    with pytest.raises(PatchworkError, match="no model file at"):
        load_model(str(tmp_path / "nope.onnx"))
    (tmp_path / "model.h5").write_bytes(b"\x89HDF")
    with pytest.raises(PatchworkError, match=r"not a model Patchwork reads; use one of \.onnx"):
        load_model(str(tmp_path / "model.h5"))


def test_a_model_file_checked_once_is_not_loaded_again_until_it_changes(tmp_path, monkeypatch):
    """Processing checks a run's model, then runs it: one load. Another file content, or other settings, load anew."""
    import shutil

    from patchwork.core.models import onnx as onnx_adapter

    path = str(tmp_path / "model.onnx")
    shutil.copy(os.path.join(SHARED_DATA, "models", "one_output_softmax_bsx2x512x512.onnx"), path)
    loads = []
    real = onnx_adapter.load_onnx
    monkeypatch.setattr(onnx_adapter, "load_onnx", lambda *args: loads.append(args) or real(*args))
    first = load_model(path)
    again = load_model(path, threshold=None, device="cpu")  # the same settings, spelled out
    assert len(loads) == 1 and again.session is first.session  # read once, the graph shared
    again.predict = None  # a caller's own change stays its own
    again.info.batch_size = 1
    assert load_model(path).predict is not None and load_model(path).info.batch_size != 1
    other = load_model(path, model_type="regression")
    assert other.session is not first.session and other.info.task == "regression" and len(loads) == 2
    shutil.copy(os.path.join(SHARED_DATA, "models", "one_output_sigmoid_bsx1x512x512.onnx"), path)  # replaced
    replaced = load_model(path)
    assert replaced.session is not first.session and len(loads) == 3
    assert replaced.info.class_names != first.info.class_names
