"""Tiled inference on real rasters: identical to the full-scene call, georeferenced, nodata kept, errors clean."""
from __future__ import annotations

import glob
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import Cancelled, PatchworkError, classify
from patchwork.core.engine.blocks import full_scene_prediction
from tests.conftest import REPO, SHARED_DATA, CancelAfter, files_under, read_all
from tests.onnx_models import batch_one_inside, conv_model, free_spatial_dims, two_head_model

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")
DEEPNESS_MODELS = sorted(glob.glob(os.path.join(SHARED_DATA, "models", "*.onnx")))


def read_band(path: str) -> np.ndarray:
    return gdal.Open(path).ReadAsArray()


def assert_same_grid(output: str, source: str) -> None:
    out, src = gdal.Open(output), gdal.Open(source)
    assert (out.RasterXSize, out.RasterYSize) == (src.RasterXSize, src.RasterYSize)
    assert out.GetGeoTransform() == src.GetGeoTransform()
    assert out.GetSpatialRef().IsSame(src.GetSpatialRef())


@pytest.mark.parametrize("tiling", [
    dict(tile_size=256, overlap=0, window="boxcar", aggregation="hardvote"),
    dict(tile_size=256, overlap=64, window="hann", aggregation="softvote"),
    dict(tile_size=96, overlap=40, window="triangular", aggregation="hardvote"),
    dict(tile_size=50, overlap=0, window="boxcar", aggregation="softvote"),
], ids=["256-no-overlap-hardvote", "256-overlap-hann-softvote", "96-triangular", "50-softvote"])
def test_rules_model_on_sentinel2_tiled_equals_full_scene_on_every_pixel(tmp_path, s2_path, tiling):
    """A per-pixel model is predicted block by block: whatever tiling is asked, every pixel is the full scene's."""
    reference, valid = full_scene_prediction(s2_path, RULES, scale=1e-4)
    out = str(tmp_path / "classes.tif")
    result = classify(s2_path, RULES, out, scale=1e-4, block_size=100, **tiling)
    classes = read_band(out)
    assert valid.all() and classes.shape == reference.shape
    agreement = (classes == reference).mean()
    assert f"{agreement:.2%}" == "100.00%" and np.array_equal(classes, reference)  # not rounded: every pixel
    assert set(np.unique(classes)) == {0, 1, 2}
    assert result.blocks == 12 and result.tiles == 0  # 343 x 206 px in blocks of 100 px: 4 x 3
    assert_same_grid(out, s2_path)


def test_class_map_carries_palette_names_and_style(tmp_path, s2_path):
    gdal.SetConfigOption("GDAL_PAM_ENABLED", "YES")  # category names live in the .aux.xml side-car
    try:
        out = str(tmp_path / "classes.tif")
        result = classify(s2_path, RULES, out, scale=1e-4, probabilities=str(tmp_path / "p.tif"))
        dataset = gdal.Open(out)
        band = dataset.GetRasterBand(1)
        # (GDAL 3.6's GTiff loads the side-car lazily: the colour table first, as gdalinfo and QGIS do.)
        assert band.GetColorTable().GetColorEntry(2)[:3] == (0x1A, 0x96, 0x41)
        assert band.GetCategoryNames()[:3] == ["water", "bare land / scrub", "vegetation"]
    finally:
        gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")
    assert band.DataType == gdal.GDT_Byte and band.GetNoDataValue() == 255
    qml = open(result.style).read()
    assert result.style == str(tmp_path / "classes.qml")
    assert 'type="paletted"' in qml and 'label="vegetation"' in qml and 'color="#2c7bb6"' in qml
    probs = gdal.Open(str(tmp_path / "p.tif"))
    assert probs.RasterCount == 3 and probs.GetRasterBand(3).GetDescription() == "vote share(vegetation)"
    assert sorted(p for p in os.listdir(tmp_path)) == ["classes.qml", "classes.tif", "classes.tif.aux.xml", "p.tif"]


def test_class_names_travel_inside_the_geotiff_without_its_side_car(tmp_path, s2_path):
    from patchwork.core import compare_classifications
    from patchwork.core.io.palette import read_classes

    out = str(tmp_path / "classes.tif")  # the tests run with GDAL_PAM_ENABLED=NO: no .aux.xml is written
    classify(s2_path, RULES, out, scale=1e-4)
    assert not os.path.exists(out + ".aux.xml")
    dataset = gdal.Open(out)
    band = dataset.GetRasterBand(1)
    assert band.GetMetadataItem("CLASS_2") == "vegetation"  # what gdalinfo and QGIS's Information tab show
    assert read_classes(band) == {0: ("water", "#2c7bb6"), 1: ("bare land / scrub", "#d8b365"),
                                  2: ("vegetation", "#1a9641")}
    assert compare_classifications(out, out).names == {0: "water", 1: "bare land / scrub", 2: "vegetation"}


def test_nodata_in_is_nodata_out_and_never_classified(tmp_path, example_path):
    out, probs = str(tmp_path / "classes.tif"), str(tmp_path / "p.tif")
    classify(example_path, RULES, out, tile_size=128, overlap=32, window="hann", aggregation="softvote",
             probabilities=probs)
    data, *_ = read_all(example_path)
    nodata = (data == -9999).any(axis=0)
    classes = read_band(out)
    assert nodata.sum() > 10000
    np.testing.assert_array_equal(classes == 255, nodata)
    p = gdal.Open(probs).ReadAsArray()
    assert np.isnan(p[:, nodata]).all() and not np.isnan(p[:, ~nodata]).any()
    np.testing.assert_allclose(p[:, ~nodata].sum(axis=0), 1.0, atol=1e-6)
    assert_same_grid(out, example_path)


@pytest.mark.parametrize("model_path", DEEPNESS_MODELS, ids=os.path.basename)
def test_deepness_models_on_the_orthophoto_tiled_equal_one_full_scene_call(tmp_path, ortho_path, model_path):
    reference, valid = full_scene_prediction(ortho_path, free_spatial_dims(model_path), bands=[1, 2, 3],
                                             scale=1 / 255)
    out, probs = str(tmp_path / "classes.tif"), str(tmp_path / "p.tif")
    result = classify(ortho_path, model_path, out, bands=[1, 2, 3], scale=1 / 255, aggregation="softvote",
                      probabilities=probs)
    assert result.tile_size == 512 and result.tiles == 6  # 841 x 1243 px: 2 rows x 3 columns, shifted edges
    classes, p = read_band(out), gdal.Open(probs).ReadAsArray()
    assert (classes[~valid] == 255).all() and np.isnan(p[:, ~valid]).all()
    np.testing.assert_allclose(p[:, valid], reference[:, valid], atol=1e-5)
    tie = reference[0] == reference[1]
    decided = valid & ~tie
    np.testing.assert_array_equal(classes[decided], np.argmax(reference, axis=0)[decided])
    assert decided.mean() > 0.99
    assert_same_grid(out, ortho_path)


def test_every_head_of_a_two_head_model_is_a_map_equal_to_its_full_scene_call(tmp_path, ortho_path):
    from patchwork.core import load_model

    rgb = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1) * 20  # a class per colour: the strongest band wins
    model_path = two_head_model(str(tmp_path / "two.onnx"), rgb[:2], rgb,
                                {"model_type": "Segmentor", "class_names": [{"0": "bare", "1": "green"},
                                                                            {"0": "dry", "1": "wet", "2": "open"}]})
    out, probs = str(tmp_path / "map.tif"), str(tmp_path / "p.tif")
    result = classify(ortho_path, model_path, out, bands=[1, 2, 3], scale=1 / 255, aggregation="softvote",
                      probabilities=probs, tile_size=256, overlap=64, window="hann")
    assert [r.output for r in [result, *result.other_heads]] == [out, str(tmp_path / "map_water.tif")]
    assert result.other_heads[0].probabilities == str(tmp_path / "p_water.tif")
    assert result.info.class_names == ["bare", "green"]
    assert result.other_heads[0].info.class_names == ["dry", "wet", "open"]
    for head, head_result in enumerate([result, *result.other_heads]):
        reference, valid = full_scene_prediction(ortho_path, load_model(model_path, head=head), bands=[1, 2, 3],
                                                 scale=1 / 255)
        classes = read_band(head_result.output)
        ordered = np.sort(reference, axis=0)
        decided = valid & (ordered[-1] - ordered[-2] > 1e-5)
        np.testing.assert_array_equal(classes[decided], np.argmax(reference, axis=0)[decided])
        assert len(np.unique(classes[decided])) > 1  # a real map, not one class
        np.testing.assert_allclose(gdal.Open(head_result.probabilities).ReadAsArray()[:, valid],
                                   reference[:, valid], atol=1e-5)
        assert_same_grid(head_result.output, ortho_path)
    only_second = classify(ortho_path, model_path, str(tmp_path / "second.tif"), bands=[1, 2, 3], scale=1 / 255,
                           aggregation="softvote", tile_size=256, overlap=64, window="hann", head=1)
    assert not only_second.other_heads
    np.testing.assert_array_equal(read_band(only_second.output), read_band(result.other_heads[0].output))
    deepness = os.path.join(SHARED_DATA, "models", "two_outputs_softmax_bsx2x512x512.onnx")  # Deepness's own
    drinks = classify(ortho_path, deepness, str(tmp_path / "drinks.tif"), bands=[1, 2, 3], scale=1 / 255)
    assert [drinks.info.class_names, drinks.other_heads[0].info.class_names] == [["Coffee", "Tea"], ["Juice", "Beer"]]
    assert os.path.exists(tmp_path / "drinks_output2.tif") and os.path.exists(tmp_path / "drinks_output2.qml")


def test_models_that_fix_their_batch_run_with_any_batch_size_and_say_so(tmp_path, ortho_path):
    from patchwork.core import SilentFeedback

    class Log(SilentFeedback):
        def __init__(self):
            self.lines = []

        def info(self, text):
            self.lines.append(text)

    rgb = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1) * 20
    names = {"model_type": "Segmentor", "class_names": {"0": "red", "1": "green", "2": "blue"}}
    free = classify(ortho_path, conv_model(str(tmp_path / "free.onnx"), rgb, softmax=True, metadata=names),
                    str(tmp_path / "free.tif"), bands=[1, 2, 3], scale=1 / 255, tile_size=256)
    expected = read_band(free.output)
    assert len(np.unique(expected)) == 3
    fixed_two = conv_model(str(tmp_path / "two.onnx"), rgb, softmax=True, batch=2, metadata=names)
    inside = batch_one_inside(str(tmp_path / "one.onnx"), rgb, names)
    for model, said in ((fixed_two, "fixes its batch at 2 tiles; BATCH_SIZE 4 is not used"),
                        (inside, "takes one tile per call although its input says any batch: BATCH_SIZE 4 was "
                                 "lowered to 1")):
        log = Log()
        result = classify(ortho_path, model, str(tmp_path / f"{os.path.basename(model)}.tif"), bands=[1, 2, 3],
                          scale=1 / 255, tile_size=256, batch_size=4, feedback=log)
        assert any(said in line for line in log.lines), log.lines
        np.testing.assert_array_equal(read_band(result.output), expected)  # every tile, none lost or padded in


@pytest.mark.parametrize("aggregation", ["hardvote", "softvote"])
def test_a_sigmoid_heads_seg_thresh_decides_its_class(tmp_path, ortho_path, aggregation):
    import onnx

    source = os.path.join(SHARED_DATA, "models", "one_output_sigmoid_red_detector.onnx")
    model = onnx.load(source)
    entry = model.metadata_props.add()
    entry.key, entry.value = "seg_thresh", "0.3"
    thresholded = str(tmp_path / "red_0.3.onnx")
    onnx.save(model, thresholded)
    reference, valid = full_scene_prediction(ortho_path, free_spatial_dims(source), bands=[1, 2, 3], scale=1 / 255)
    p = reference[1]
    out = str(tmp_path / "red.tif")
    classify(ortho_path, thresholded, out, bands=[1, 2, 3], scale=1 / 255, overlap=128, window="hann",
             aggregation=aggregation)
    classes = read_band(out)
    decided = valid & (np.abs(p - 0.3) > 1e-5)
    np.testing.assert_array_equal(classes[decided], (p > 0.3)[decided].astype(np.uint8))
    assert ((p > 0.3) & (p <= 0.5) & decided).sum() > 1000  # pixels the default 0.5 would call background


def test_red_detector_finds_red_with_overlap_and_hann(tmp_path, ortho_path):
    model_path = os.path.join(SHARED_DATA, "models", "one_output_sigmoid_red_detector.onnx")
    reference, valid = full_scene_prediction(ortho_path, free_spatial_dims(model_path), bands=[1, 2, 3],
                                             scale=1 / 255)
    out = str(tmp_path / "red.tif")
    classify(ortho_path, model_path, out, bands=[1, 2, 3], scale=1 / 255, overlap=128, window="hann",
             aggregation="softvote")
    classes = read_band(out)
    decided = valid & (reference[0] != reference[1])
    np.testing.assert_array_equal(classes[decided], np.argmax(reference, axis=0)[decided])
    assert 0.05 < (classes[valid] == 1).mean() < 0.95  # a real mix of red and not red


def test_model_with_a_receptive_margin_matches_the_full_scene_inside(tmp_path, ortho_path):
    """A 5x5 valid convolution: each output pixel needs 2 px around it. Tiles keep only their centres."""
    weights = np.random.default_rng(3).normal(size=(2, 3, 5, 5)) / 10
    free = conv_model(str(tmp_path / "free.onnx"), weights, softmax=True,
                      metadata={"patchwork:receptive_margin": 2})
    fixed = conv_model(str(tmp_path / "fixed.onnx"), weights, softmax=True, tile=100, batch=3)
    reference, _ = full_scene_prediction(ortho_path, free, bands=[1, 2, 3], scale=1 / 255)
    assert reference.shape[1:] == (841 - 4, 1243 - 4)  # the full-scene call loses its own 2 px border
    for model in (free, fixed):
        probs = str(tmp_path / f"p-{os.path.basename(model)}.tif")
        result = classify(ortho_path, model, str(tmp_path / "c.tif"), bands=[1, 2, 3], scale=1 / 255,
                          tile_size=100, aggregation="softvote", probabilities=probs)
        assert result.overlap == 4  # raised to twice the margin
        p = gdal.Open(probs).ReadAsArray()
        np.testing.assert_allclose(p[:, 2:-2, 2:-2], reference, atol=1e-5)
    with pytest.raises(PatchworkError, match="not larger than the model's receptive margin"):
        classify(ortho_path, free, str(tmp_path / "small.tif"), bands=[1, 2, 3], tile_size=4)
    undeclared = conv_model(str(tmp_path / "undeclared.onnx"), weights, softmax=True)
    with pytest.raises(PatchworkError, match="declare the margin in its metadata as patchwork:receptive_margin"):
        classify(ortho_path, undeclared, str(tmp_path / "small.tif"), bands=[1, 2, 3], tile_size=100)
    assert not os.path.exists(tmp_path / "small.tif")


def test_regression_model_writes_values_with_the_mean(tmp_path, s2_path):
    import skops.io as sio
    from sklearn.linear_model import LinearRegression

    data, *_ = read_all(s2_path)
    pixels = data.reshape(4, -1).T * 1e-4
    ndvi = (pixels[:, 3] - pixels[:, 2]) / (pixels[:, 3] + pixels[:, 2])
    regressor = LinearRegression().fit(pixels, ndvi)
    sio.dump(regressor, tmp_path / "ndvi.skops")
    out = str(tmp_path / "ndvi.tif")
    classify(s2_path, str(tmp_path / "ndvi.skops"), out, scale=1e-4, tile_size=64, overlap=16, window="hann",
             aggregation="mean")
    dataset = gdal.Open(out)
    values = dataset.ReadAsArray()
    assert dataset.GetRasterBand(1).DataType == gdal.GDT_Float32
    np.testing.assert_allclose(values, regressor.predict(pixels.astype(np.float32)).reshape(values.shape),
                               atol=1e-5)
    with pytest.raises(PatchworkError, match="regression model; votes need classes"):
        classify(s2_path, str(tmp_path / "ndvi.skops"), str(tmp_path / "x.tif"), aggregation="hardvote")
    with pytest.raises(PatchworkError, match="'mean' averages values and is for regression"):
        classify(s2_path, RULES, str(tmp_path / "x.tif"), aggregation="mean")


def _bad_runs(tmp_path, s2_path, ortho_path):
    forest_pickle = tmp_path / "models" / "forest.pkl"
    forest_pickle.parent.mkdir()
    forest_pickle.write_bytes(pickle.dumps({"not": "a model"}))
    corrupt = tmp_path / "models" / "corrupt.onnx"
    whole = Path(DEEPNESS_MODELS[0]).read_bytes()
    corrupt.write_bytes(whole[: len(whole) // 2])  # a download cut short
    return [
        ("band count", lambda out: classify(ortho_path, DEEPNESS_MODELS[0], out),
         r"takes 3 bands but it would get 4 .*Set BANDS"),
        ("band count rules", lambda out: classify(ortho_path, RULES, out, bands=[1, 2, 3]),
         r"takes 4 bands \(blue, green, red, nir\) but it would get 3"),
        ("corrupt model", lambda out: classify(s2_path, str(corrupt), out), "is not a valid ONNX model"),
        ("missing model", lambda out: classify(s2_path, str(tmp_path / "none.onnx"), out), "no model file"),
        ("untrusted pickle", lambda out: classify(s2_path, str(forest_pickle), out), "TRUST_MODEL=true"),
        ("fixed tile", lambda out: classify(ortho_path, DEEPNESS_MODELS[0], out, bands=[1, 2, 3], tile_size=256),
         "takes 512 px tiles only"),
        ("bad band", lambda out: classify(s2_path, RULES, out, bands=[1, 2, 3, 9]), r"\[9\] not in the input"),
        ("output is input", lambda out: classify(s2_path, RULES, s2_path), "is the INPUT of this run"),
    ]


def test_errors_are_clear_and_leave_no_output(tmp_path, s2_path, ortho_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for what, run, message in _bad_runs(tmp_path, s2_path, ortho_path):
        with pytest.raises(PatchworkError, match=message):
            run(str(out_dir / "classes.tif"))
        assert files_under(str(out_dir)) == [], what


def test_cancel_mid_run_keeps_the_earlier_output(tmp_path, example_path):
    out = str(tmp_path / "classes.tif")
    classify(example_path, RULES, out, tile_size=64)
    before = open(out, "rb").read()
    feedback = CancelAfter(5)
    with pytest.raises(Cancelled):
        classify(example_path, RULES, out, block_size=32, probabilities=str(tmp_path / "p.tif"),
                 feedback=feedback)
    assert 0 < feedback.progress[-1] < 100
    assert open(out, "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == ["classes.qml", "classes.tif"]
