"""RESOLUTION: the model runs on a resampled grid, read through a GDAL warped VRT; the map equals the model on a
GDAL-warped copy at that resolution, and can be brought back to the input grid."""
from __future__ import annotations

import os

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import PatchworkError, classify
from tests.conftest import REPO, SHARED_DATA, CancelInGdal, files_under, read_all

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


def test_twice_the_pixel_size_equals_the_model_on_a_warped_copy(tmp_path, s2_path):
    gt = gdal.Open(s2_path).GetGeoTransform()
    target = 2 * gt[1]
    result = classify(s2_path, RULES, str(tmp_path / "coarse.tif"), scale=1e-4, resolution=target)
    classes, out_gt, _, _ = read_all(result.output)
    assert out_gt[0] == gt[0] and out_gt[3] == gt[3] and out_gt[1] == pytest.approx(target, rel=1e-12)
    warped = str(tmp_path / "warped.tif")
    gdal.Warp(warped, s2_path, xRes=target, yRes=target, resampleAlg="average",
              outputBounds=(gt[0], gt[3] + gt[5] * 206, gt[0] + gt[1] * 343, gt[3]))
    reference = classify(warped, RULES, str(tmp_path / "reference.tif"), scale=1e-4)
    np.testing.assert_array_equal(classes, read_all(reference.output)[0])  # same grid, same classes
    assert 102 <= classes.shape[1] <= 103 and 171 <= classes.shape[2] <= 172  # 206 x 343 px at twice the size
    assert not [f for f in files_under(str(tmp_path)) if f.endswith(".vrt")]  # the warped VRT is gone
    native = classify(s2_path, RULES, str(tmp_path / "native.tif"), scale=1e-4, resolution=gt[1])
    assert read_all(native.output)[1] == gt  # its own pixel size: its own grid, no resampling

    back = classify(s2_path, RULES, str(tmp_path / "back.tif"), scale=1e-4, resolution=target, output_grid="input",
                    probabilities=str(tmp_path / "p.tif"), aggregation="softvote")
    on_input, back_gt, _, _ = read_all(back.output)
    assert back_gt == gt and on_input.shape[1:] == (206, 343)
    nearest = str(tmp_path / "nearest.tif")
    gdal.Warp(nearest, result.output, xRes=gt[1], yRes=-gt[5], resampleAlg="near",
              outputBounds=(gt[0], gt[3] + gt[5] * 206, gt[0] + gt[1] * 343, gt[3]))
    np.testing.assert_array_equal(on_input, read_all(nearest)[0])  # nearest for classes
    assert gdal.Open(str(tmp_path / "p.tif")).RasterXSize == 343
    assert os.path.exists(tmp_path / "back.qml") and not [f for f in files_under(str(tmp_path)) if ".partial-" in f]


def test_the_models_resolution_metadata_sets_the_grid(tmp_path, ortho_path):
    model = os.path.join(SHARED_DATA, "models-more", "dummy_regression_model.onnx")  # resolution 5.5 cm/px
    result = classify(ortho_path, model, str(tmp_path / "values.tif"), bands=[1, 2, 3], scale=1 / 255,
                      aggregation="mean")
    _, out_gt, _, _ = read_all(result.output)
    assert out_gt[1] == pytest.approx(0.055, rel=1e-12) and out_gt[5] == pytest.approx(-0.055, rel=1e-12)
    assert result.info.resolution_cm == 5.5


def test_resolution_errors(tmp_path, s2_path):
    model = os.path.join(SHARED_DATA, "models-more", "dummy_regression_model.onnx")
    with pytest.raises(PatchworkError, match="needs a raster in a projected CRS"):
        classify(s2_path, model, str(tmp_path / "x.tif"), bands=[1, 2, 3], aggregation="mean")
    with pytest.raises(PatchworkError, match="RESOLUTION: -1"):
        classify(s2_path, RULES, str(tmp_path / "x.tif"), resolution=-1)
    with pytest.raises(PatchworkError, match="OUTPUT_GRID"):
        classify(s2_path, RULES, str(tmp_path / "x.tif"), output_grid="raster")


def test_maps_brought_back_to_the_input_grid_are_cogs_when_asked_and_all_or_none_on_cancel(tmp_path, s2_path):
    from osgeo_utils.samples.validate_cloud_optimized_geotiff import validate

    from patchwork.core import Cancelled

    gt = gdal.Open(s2_path).GetGeoTransform()
    out, probabilities = str(tmp_path / "back.tif"), str(tmp_path / "p.tif")
    classify(s2_path, RULES, out, scale=1e-4, resolution=2 * gt[1], output_grid="input", probabilities=probabilities,
             aggregation="softvote", output_format="COG")
    for path in (out, probabilities):
        _warnings, errors, _details = validate(path, full_check=True)
        assert errors == [] and gdal.Open(path).GetGeoTransform() == gt
    assert gdal.Open(out).GetRasterBand(1).GetColorTable() is not None
    earlier = {path: open(path, "rb").read() for path in (out, probabilities)}

    progress = {"maps": 0, "done": 1.0}

    def half_way_through_the_second_map(frame) -> bool:
        done = frame.f_locals["complete"]
        progress["maps"] += done < progress["done"]  # progress starting again: the next map
        progress["done"] = done
        return progress["maps"] == 2 and done > 0.5

    with pytest.raises(Cancelled):
        classify(s2_path, RULES, out, scale=1e-4, resolution=2 * gt[1], output_grid="input",
                 probabilities=probabilities, aggregation="softvote",
                 feedback=CancelInGdal(half_way_through_the_second_map))
    assert {path: open(path, "rb").read() for path in (out, probabilities)} == earlier
    assert sorted(files_under(str(tmp_path))) == ["back.qml", "back.tif", "p.tif"]
