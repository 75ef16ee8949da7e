"""Object detection by tiles on the real orthophoto: the boxes of one call on the whole raster, none twice at tile
borders, in map coordinates, for YOLOv5- and YOLOv8-style outputs."""
from __future__ import annotations

import os

import numpy as np
import pytest
from osgeo import gdal, ogr

from patchwork.core import PatchworkError, RasterSource, Window, detect, load_model
from patchwork.core.engine.model_input import input_transform
from patchwork.core.tasks.detect import non_maximum_suppression
from tests.conftest import SHARED_DATA, files_under
from tests.onnx_models import cell_detector


def whole_raster_boxes(raster: str, model, stride: int) -> np.ndarray:
    """The reference: the model called once on the whole raster (padded to its stride), then NMS."""
    with RasterSource(raster) as src:
        transform = input_transform(src, model.info, [1, 2, 3], 1 / 255, 0.0)
        height, width = (-(-n // stride) * stride for n in (src.height, src.width))
        data, valid = src.read(Window(0, 0, height, width), transform.bands)  # beyond the raster: nodata, 0
        x = transform.apply(data, valid)
    rows = model.boxes(x[None])[0]
    return non_maximum_suppression(rows[rows[:, 4] >= model.confidence], model.iou)


def read_boxes(path: str, geotransform) -> tuple[np.ndarray, list[str]]:
    """The written polygons back in raster pixels (x0, y0, x1, y1, score, class) and their names."""
    ds = ogr.Open(path)
    rows, names = [], []
    inverse = gdal.InvGeoTransform(geotransform)
    for feature in ds.GetLayerByName("detections"):
        xmin, xmax, ymin, ymax = feature.GetGeometryRef().GetEnvelope()
        c0, r0 = gdal.ApplyGeoTransform(inverse, xmin, ymax)
        c1, r1 = gdal.ApplyGeoTransform(inverse, xmax, ymin)
        rows.append([c0, r0, c1, r1, feature.GetField("score"), feature.GetField("class")])
        names.append(feature.GetField("name"))
    ds = None
    return np.array(rows), names


@pytest.mark.parametrize("layout", ["v5", "v8"])
def test_tiled_detections_equal_one_call_on_the_whole_orthophoto(tmp_path, ortho_path, layout):
    model_path = cell_detector(str(tmp_path / f"cells_{layout}.onnx"), layout)
    model = load_model(model_path)
    reference = whole_raster_boxes(ortho_path, model, 16)
    out = str(tmp_path / "boxes.gpkg")
    result = detect(ortho_path, model_path, out, bands=[1, 2, 3], scale=1 / 255, tile_size=256, overlap=64)
    assert result.tiles == 5 * 7 and 50 < len(reference) < 5000  # 841 x 1243 px in tiles every 192 px
    assert set(reference[:, 5].astype(int)) == {0, 1}  # both classes found
    assert result.boxes.shape == reference.shape
    np.testing.assert_allclose(result.boxes, reference, atol=1e-3)  # same boxes, scores and classes
    written, names = read_boxes(out, gdal.Open(ortho_path).GetGeoTransform())
    order = np.lexsort((written[:, 1], written[:, 0], -written[:, 4]))
    np.testing.assert_allclose(written[order], reference, atol=1e-3)  # in map coordinates, back to pixels
    assert set(names) == {"dark", "bright"}
    untiled = detect(ortho_path, model_path, str(tmp_path / "single.gpkg"), bands=[1, 2, 3], scale=1 / 255,
                     tile_size=256, overlap=0)
    assert len(untiled.boxes) < len(reference)  # without overlap, objects cut by tile edges are lost: overlap matters


def test_detection_errors_are_clear_and_write_nothing(tmp_path, ortho_path):
    model_path = cell_detector(str(tmp_path / "cells.onnx"))
    segmentation = os.path.join(SHARED_DATA, "models", "one_output_softmax_bsx2x512x512.onnx")
    before = files_under(str(tmp_path))
    with pytest.raises(PatchworkError, match="not a detector"):
        detect(ortho_path, segmentation, str(tmp_path / "x.gpkg"), bands=[1, 2, 3])
    with pytest.raises(PatchworkError, match="give it a .gpkg name"):
        detect(ortho_path, model_path, str(tmp_path / "x.shp"), bands=[1, 2, 3])
    with pytest.raises(PatchworkError, match="not a multiple of the model's stride"):
        detect(ortho_path, model_path, str(tmp_path / "x.gpkg"), bands=[1, 2, 3], tile_size=200)
    with pytest.raises(PatchworkError, match="takes 3 bands but it would get 4"):
        detect(ortho_path, model_path, str(tmp_path / "x.gpkg"))
    with pytest.raises(PatchworkError, match="is a detector"):
        from patchwork.core import classify

        classify(ortho_path, model_path, str(tmp_path / "x.tif"), bands=[1, 2, 3])
    assert files_under(str(tmp_path)) == before


def test_a_mask_keeps_the_boxes_whose_centre_is_inside(tmp_path, ortho_path):
    from patchwork.core import Aoi

    model_path = cell_detector(str(tmp_path / "cells.onnx"))
    everywhere = detect(ortho_path, model_path, str(tmp_path / "all.gpkg"), bands=[1, 2, 3], scale=1 / 255,
                        tile_size=256, overlap=64).boxes
    ds = gdal.Open(ortho_path)
    gt = ds.GetGeoTransform()
    corners = [(50, 250), (600, 820), (50, 820), (50, 250)]  # (col, row): the lower left, where the objects are
    wkt = "POLYGON((" + ", ".join(f"{gt[0] + c * gt[1]} {gt[3] + r * gt[5]}" for c, r in corners) + "))"
    masked = detect(ortho_path, model_path, str(tmp_path / "masked.gpkg"), bands=[1, 2, 3], scale=1 / 255,
                    tile_size=256, overlap=64, mask=Aoi([wkt], ds.GetProjection(), "MASK")).boxes
    cx, cy = (everywhere[:, 0] + everywhere[:, 2]) / 2, (everywhere[:, 1] + everywhere[:, 3]) / 2
    inside = (cx >= 50) & (cy <= 820) & (cy >= 250 + (cx - 50) * 570 / 550)
    assert 20 < inside.sum() < len(everywhere)
    np.testing.assert_allclose(masked, everywhere[inside], atol=1e-9)  # the same boxes as without a mask, inside


def test_the_models_resolution_sets_the_grid_the_detector_runs_on(tmp_path, ortho_path):
    import json

    import onnx

    model_path = cell_detector(str(tmp_path / "cells.onnx"))
    model = onnx.load(model_path)
    entry = model.metadata_props.add()
    entry.key, entry.value = "resolution", json.dumps(4.0)  # cm per pixel: twice the orthophoto's 2 cm
    at_4cm = str(tmp_path / "cells_4cm.onnx")
    onnx.save(model, at_4cm)
    result = detect(ortho_path, at_4cm, str(tmp_path / "boxes.gpkg"), bands=[1, 2, 3], scale=1 / 255,
                    tile_size=128, overlap=32)
    gt = gdal.Open(ortho_path).GetGeoTransform()
    warped = str(tmp_path / "warped.tif")
    gdal.Warp(warped, ortho_path, xRes=0.04, yRes=0.04, resampleAlg="average",
              outputBounds=(gt[0], gt[3] + gt[5] * 841, gt[0] + gt[1] * 1243, gt[3]))
    reference = detect(warped, model_path, str(tmp_path / "reference.gpkg"), bands=[1, 2, 3], scale=1 / 255,
                       tile_size=128, overlap=32)
    assert len(reference.boxes) > 10
    np.testing.assert_allclose(result.boxes, reference.boxes, atol=1e-3)  # on the 4 cm grid, as a warped copy
    written, _ = read_boxes(str(tmp_path / "boxes.gpkg"), gdal.Open(warped).GetGeoTransform())
    order = np.lexsort((written[:, 1], written[:, 0], -written[:, 4]))
    np.testing.assert_allclose(written[order], reference.boxes, atol=1e-3)  # and in map coordinates
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".vrt")]
