"""Values that were silently wrong are refused or said (#29, item 6)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import PatchworkError, VectorLabels, classify, load_model
from tests.conftest import REPO, SHARED_DATA, files_under
from tests.onnx_models import conv_model

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")
SQUARE = "POLYGON((0 0,1 0,1 1,0 1,0 0))"


def test_more_text_categories_than_a_label_raster_holds_are_refused():
    names = [f"parcel {i}" for i in range(65_536)]
    with pytest.raises(PatchworkError, match="65,536 different texts.*at most 65,535 classes"):
        VectorLabels([SQUARE] * len(names), names, "")
    with pytest.raises(PatchworkError, match="at most 65,534 classes"):
        VectorLabels([SQUARE] * 65_535, names[:65_535], "", background=0)


def test_text_classes_never_share_the_background_id():
    labels = VectorLabels([SQUARE] * 3, ["water", "crop", "water"], "", background=0)
    assert [(c.id, c.name) for c in labels.classes] == [(0, "background"), (1, "crop"), (2, "water")]
    labels = VectorLabels([SQUARE] * 3, ["water", "crop", "forest"], "", background=1)
    assert [(c.id, c.name) for c in labels.classes] == [(0, "crop"), (1, "background"), (2, "forest"),
                                                        (3, "water")]


def test_unlabelled_pixels_are_background_not_the_first_category(tmp_path, naip_path):
    from patchwork.core import RandomSampler, RasterSource, read_index, sample_chips

    with RasterSource(naip_path) as src:
        gt, crs = src.geotransform, src.crs_wkt
    x0, y0, size = gt[0] + 40 * gt[1], gt[3] - 40 * gt[1], 20 * gt[1]
    square = f"POLYGON(({x0} {y0},{x0 + size} {y0},{x0 + size} {y0 - size},{x0} {y0 - size},{x0} {y0}))"
    labels = VectorLabels([square], ["water"], crs, background=0)
    chips = sample_chips(naip_path, RandomSampler(3, seed=1), 128, str(tmp_path / "chips"), labels=labels)
    burnt = np.concatenate([gdal.Open(r["label_path"]).ReadAsArray().ravel() for r in read_index(chips.index_path)])
    assert set(np.unique(burnt)) <= {0, 1} and np.count_nonzero(burnt == 0) > np.count_nonzero(burnt == 1)


def test_stitching_votes_beyond_n_classes_is_refused(tmp_path, naip_path):
    from patchwork.core import stitch_chips

    folder = tmp_path / "chips"
    folder.mkdir()
    gt, crs = gdal.Open(naip_path).GetGeoTransform(), gdal.Open(naip_path).GetProjection()
    for i, values in enumerate((np.arange(64 * 64) % 4, np.zeros(64 * 64))):
        chip = gdal.GetDriverByName("GTiff").Create(str(folder / f"c{i}.tif"), 64, 64, 1, gdal.GDT_Byte)
        chip.SetGeoTransform((gt[0] + 64 * i * gt[1], gt[1], 0, gt[3], 0, gt[5]))
        chip.SetProjection(crs)
        chip.GetRasterBand(1).WriteArray(values.reshape(64, 64).astype(np.uint8))
        chip = None
    with pytest.raises(PatchworkError, match="holds class 3, but N_CLASSES=2.*at least 4"):
        stitch_chips(str(folder), str(tmp_path / "mosaic.tif"), n_classes=2)
    assert not os.path.exists(tmp_path / "mosaic.tif")
    assert stitch_chips(str(folder), str(tmp_path / "mosaic.tif"), n_classes=4).covered_fraction == 1.0


@pytest.mark.parametrize(("values", "message"), [([1, 1, 2], "several classes the value 1"),
                                                 ([0, 1.5, 2], "class value 1.5")])
def test_class_values_that_would_merge_or_round_are_refused(tmp_path, values, message):
    rules = json.loads(open(RULES).read())
    for cls, value in zip(rules["classes"], values):
        cls["value"] = value
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    with pytest.raises(PatchworkError, match=message):
        load_model(str(path))
    onnx_path = conv_model(str(tmp_path / "m.onnx"), np.ones((3, 3, 1, 1), np.float32),
                           metadata={"patchwork:class_values": values})
    with pytest.raises(PatchworkError, match=message):
        load_model(onnx_path)


def test_boxes_that_are_not_boxes_are_dropped():
    from patchwork.core.tasks.detect import usable_boxes

    rows = np.array([[0, 0, 5, 5, 0.9, 0], [np.nan, 0, 5, 5, 0.9, 0], [0, 0, np.inf, 5, 0.9, 0],
                     [5, 0, 0, 5, 0.9, 0], [0, 3, 5, 3, 0.9, 0], [0, 0, 5, 5, np.nan, 0], [0, 0, 5, 5, 0.9, 7],
                     [0, 0, 5, 5, 0.9, 0.5]], dtype=np.float64)
    assert usable_boxes(rows, 2).tolist() == [True] + [False] * 7


def test_nms_keeps_exactly_what_the_all_pairs_greedy_kept_and_hears_cancel():
    from patchwork.core import Cancelled
    from patchwork.core.tasks.detect import non_maximum_suppression

    rng = np.random.default_rng(3)
    corner = rng.random((3000, 2)) * 2000
    size = rng.random((3000, 2)) * 60 + 2
    boxes = np.column_stack([corner, corner + size, rng.random(3000).round(2), rng.integers(0, 2, 3000)])
    kept = non_maximum_suppression(boxes, 0.3)

    def all_pairs(boxes, iou):  # the plain greedy NMS, every pair compared
        out = []
        for cls in np.unique(boxes[:, 5]):
            group = boxes[boxes[:, 5] == cls]
            group = group[np.lexsort((group[:, 1], group[:, 0], -group[:, 4]))]
            alive = np.ones(len(group), bool)
            for i in range(len(group)):
                if alive[i]:
                    out.append(group[i])
                    w = np.clip(np.minimum(group[i, 2], group[:, 2]) - np.maximum(group[i, 0], group[:, 0]), 0, None)
                    h = np.clip(np.minimum(group[i, 3], group[:, 3]) - np.maximum(group[i, 1], group[:, 1]), 0, None)
                    area = (group[:, 2] - group[:, 0]) * (group[:, 3] - group[:, 1])
                    overlap = w * h / (area[i] + area - w * h)
                    alive[(np.arange(len(group)) > i) & (overlap > iou)] = False
        out = np.array(out)
        return out[np.lexsort((out[:, 1], out[:, 0], -out[:, 4]))]
    np.testing.assert_array_equal(kept, all_pairs(boxes, 0.3))
    assert 100 < len(kept) < 3000
    with pytest.raises(Cancelled):
        non_maximum_suppression(boxes, 0.3, cancelled=lambda: True)


def test_a_nan_embedding_is_refused_not_read_as_unlike(tmp_path, ortho_path):
    from patchwork.core import recognize

    model = load_model(os.path.join(SHARED_DATA, "models-more", "dummy_recognition_model.onnx"))
    query = str(tmp_path / "query.tif")
    gdal.Translate(query, ortho_path, srcWin=[224, 224, 224, 224], bandList=[1, 2, 3])
    model.embed = lambda batch: np.full((len(batch), 8), np.nan, np.float32)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(PatchworkError, match="embedding that is not a finite number"):
        recognize(ortho_path, model, query, str(out / "s.tif"), bands=[1, 2, 3], scale=1 / 255)
    assert files_under(str(out)) == []


def test_a_nan_super_resolution_is_refused(tmp_path, ortho_path):
    from patchwork.core import superresolve

    small = str(tmp_path / "small.tif")
    gdal.Translate(small, ortho_path, srcWin=[0, 0, 96, 80], bandList=[1, 2, 3])
    model = load_model(os.path.join(SHARED_DATA, "models-more", "dummy_superresolution_model.onnx"))
    real = model.predict
    model.predict = lambda x, valid: real(x, valid) * np.float32(np.nan)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(PatchworkError, match="not finite numbers"):
        superresolve(small, model, str(out / "x2.tif"), scale=1 / 255)
    assert files_under(str(out)) == []


def test_complex_rasters_are_refused_not_cut_to_their_real_part(tmp_path):
    path = str(tmp_path / "complex.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 32, 32, 4, gdal.GDT_CFloat32)
    ds.SetGeoTransform((0, 10, 0, 0, 0, -10))
    ds = None
    with pytest.raises(PatchworkError, match="complex-valued bands \\(CFloat32\\)"):
        classify(path, RULES, str(tmp_path / "classes.tif"))
    assert not os.path.exists(tmp_path / "classes.tif")
