"""Stitching chip predictions back into a map, and comparing class maps."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import (
    Cancelled,
    PatchworkError,
    RegularSampler,
    classify,
    compare_classifications,
    sample_chips,
    stitch_chips,
    write_geotiff,
)
from patchwork.core.io.example import example_scene
from tests.conftest import REPO, CancelAfter, read_all

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


@pytest.fixture(scope="module")
def chip_predictions(tmp_path_factory, example_path):
    """Overlapping 64 px chips of the example scene, each classified on its own (as a user would outside QGIS)."""
    root = tmp_path_factory.mktemp("stitch")
    result = sample_chips(example_path, RegularSampler(step=40), 64, str(root / "chips"), max_nodata=1.0)
    predictions, probabilities = root / "predictions", root / "probs"
    for path in sorted((root / "chips" / "images").iterdir()):
        classify(str(path), RULES, str(predictions / path.name), probabilities=str(probabilities / path.name),
                 aggregation="softvote")
    full = str(root / "full.tif")
    classify(example_path, RULES, full)
    return result, str(predictions), str(probabilities), full


@pytest.mark.parametrize("window, aggregation", [("boxcar", "hardvote"), ("hann", "hardvote"),
                                                  ("triangular", "softvote")])
def test_stitched_chip_predictions_equal_the_full_scene_map(tmp_path, chip_predictions, example_path, window,
                                                            aggregation):
    _, predictions, probs, full = chip_predictions
    folder = predictions if aggregation == "hardvote" else probs
    out = str(tmp_path / "mosaic.tif")
    result = stitch_chips(folder, out, window=window, aggregation=aggregation, n_classes=3, reference=example_path)
    mosaic, reference = gdal.Open(out).ReadAsArray(), gdal.Open(full).ReadAsArray()
    np.testing.assert_array_equal(mosaic, reference)  # nodata wedge included
    small = str(tmp_path / "in_small_blocks.tif")  # 48 blocks of 100 px, each finding its own chips
    stitch_chips(folder, small, window=window, aggregation=aggregation, n_classes=3, reference=example_path,
                 block_size=100)
    np.testing.assert_array_equal(gdal.Open(small).ReadAsArray(), reference)
    assert result.chips > 200 and result.style and os.path.exists(result.style)
    ds, src = gdal.Open(out), gdal.Open(example_path)
    assert ds.GetGeoTransform() == src.GetGeoTransform() and ds.GetSpatialRef().IsSame(src.GetSpatialRef())


def test_union_grid_without_reference_and_uncovered_pixels_are_nodata(tmp_path, example_path):
    data, gt, wkt, _ = read_all(example_path)
    write_geotiff(str(tmp_path / "a.tif"), data[0, :50, :60], gt, wkt, nodata=-9999)
    shifted = (gt[0] + 100 * gt[1], gt[1], 0.0, gt[3] + 20 * gt[5], 0.0, gt[5])
    write_geotiff(str(tmp_path / "b.tif"), data[0, 20:70, 100:130], shifted, wkt, nodata=-9999)
    result = stitch_chips(str(tmp_path), str(tmp_path / "out" / "m.tif"), aggregation="mean")
    assert (result.width, result.height) == (130, 70)
    m = gdal.Open(str(tmp_path / "out" / "m.tif")).ReadAsArray()
    np.testing.assert_array_equal(m[:50, :60], data[0, :50, :60])
    np.testing.assert_array_equal(m[20:70, 100:130], data[0, 20:70, 100:130])
    assert np.isnan(m[60:, :60]).all() and np.isnan(m[:20, 100:]).all()


def test_stitch_errors(tmp_path, example_path):
    data, gt, wkt, _ = read_all(example_path)
    write_geotiff(str(tmp_path / "a.tif"), data[0, :10, :10], gt, wkt)
    half = (gt[0] + 5.0, gt[1], 0.0, gt[3], 0.0, gt[5])  # half a pixel off the grid
    write_geotiff(str(tmp_path / "b.tif"), data[0, :10, :10], half, wkt)
    with pytest.raises(PatchworkError, match="off the mosaic's pixel grid by 0.500 px"):
        stitch_chips(str(tmp_path), str(tmp_path / "m.tif"), aggregation="mean")
    with pytest.raises(PatchworkError, match="N_CLASSES"):
        stitch_chips(str(tmp_path), str(tmp_path / "m.tif"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PatchworkError, match="no GeoTIFF chips"):
        stitch_chips(str(tmp_path / "empty"), str(tmp_path / "m.tif"), aggregation="mean")
    assert not os.path.exists(tmp_path / "m.tif")


def test_compare_counts_agreement_confusion_and_writes_report(tmp_path, example_path):
    _, classes = example_scene()
    _, gt, wkt, _ = read_all(example_path)
    truth = write_geotiff(str(tmp_path / "truth.tif"), classes, gt, wkt, nodata=255)
    predicted = str(tmp_path / "predicted.tif")
    classify(example_path, RULES, predicted)
    result = compare_classifications(truth, predicted, agreement=str(tmp_path / "agree.tif"),
                                     report=str(tmp_path / "report.html"), strip_rows=100)
    pred = gdal.Open(predicted).ReadAsArray()
    valid = (classes != 255) & (pred != 255)
    assert result.pixels == valid.sum() and result.skipped == (~valid).sum()
    assert result.agreement == pytest.approx((classes[valid] == pred[valid]).mean(), abs=1e-12)
    assert 0.8 < result.agreement < 1.0  # the rules model is good, not perfect, on the example scene
    for i, a in enumerate(result.classes):
        for j, b in enumerate(result.classes):
            assert result.matrix[i, j] == ((classes == a) & (pred == b) & valid).sum()
    agree = gdal.Open(str(tmp_path / "agree.tif")).ReadAsArray()
    np.testing.assert_array_equal(agree, np.where(valid, classes == pred, 255))
    report = (tmp_path / "report.html").read_text()
    assert f"{result.agreement:.4%}" in report and "kappa" in report
    assert json.loads(json.dumps(result.to_dict()))["matrix"] == result.matrix.tolist()
    with pytest.raises(PatchworkError, match="not a class raster"):
        compare_classifications(example_path, example_path)
    with pytest.raises(Cancelled):
        compare_classifications(truth, predicted, agreement=str(tmp_path / "again.tif"), feedback=CancelAfter(1),
                                strip_rows=100)
    assert not os.path.exists(tmp_path / "again.tif")
