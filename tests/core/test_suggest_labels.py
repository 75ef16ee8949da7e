"""What to label next (#24, item 4): the least sure places, spread apart, away from what is labelled, balanced
across classes when asked, the same for the same seed; on the real Sentinel-2 scene."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal, ogr

from patchwork.core import PatchworkError, Places, classify, suggest_labels
from tests.onnx_models import tile_dependent_model

WEIGHTS = np.random.default_rng(7).normal(0, 25, (3, 4, 3, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def scene(tmp_path_factory, s2_path):
    folder = tmp_path_factory.mktemp("suggest")
    model = tile_dependent_model(str(folder / "m.onnx"), WEIGHTS, True, {})
    result = classify(s2_path, model, str(folder / "classes.tif"), scale=1e-4, tile_size=64, overlap=16,
                      aggregation="softvote", uncertainty=str(folder / "entropy.tif"))
    return result.output, result.uncertainty, folder


def places(path: str) -> list[dict]:
    ds = ogr.Open(path)  # (held while its layer is read)
    layer = ds.GetLayer(0)
    return [dict(f.items(), x=f.GetGeometryRef().Centroid().GetX(), y=f.GetGeometryRef().Centroid().GetY())
            for f in layer]


def pixel(gt, x: float, y: float) -> tuple[int, int]:
    return int((y - gt[3]) // gt[5]), int((x - gt[0]) // gt[1])


def test_the_least_sure_places_spread_apart_most_uncertain_first(scene):
    classes, uncertainty, folder = scene
    result = suggest_labels(uncertainty, str(folder / "s.gpkg"), count=40, min_distance=15, classes=classes, seed=3,
                            selection="least_sure")
    found = places(result.output)
    ds = gdal.Open(uncertainty)
    gt, u = ds.GetGeoTransform(), ds.ReadAsArray()
    cells = [pixel(gt, p["x"], p["y"]) for p in found]
    assert len(found) == result.count == 40 and [p["rank"] for p in found] == list(range(1, 41))
    for p, (r, c) in zip(found, cells):
        assert p["uncertainty"] == pytest.approx(u[r, c]) and p["label"] is None
    assert [p["uncertainty"] for p in found] == sorted((p["uncertainty"] for p in found), reverse=True)
    rc = np.array(cells)
    gaps = np.sqrt(((rc[:, None] - rc[None]) ** 2).sum(-1)) + np.eye(len(rc)) * 1e9
    assert gaps.min() >= 15
    # the first is the least sure pixel of the scene; and they are surer than a random pixel by far
    assert found[0]["uncertainty"] == pytest.approx(np.nanmax(u))
    assert min(p["uncertainty"] for p in found) > np.nanpercentile(u, 90)
    again = suggest_labels(uncertainty, str(folder / "again.gpkg"), count=40, min_distance=15, classes=classes,
                           seed=3, selection="least_sure")
    assert [(p["x"], p["y"]) for p in places(again.output)] == [(p["x"], p["y"]) for p in found]


def test_weighted_places_are_drawn_with_chances_proportional_to_uncertainty(scene):
    """Efraimidis–Spirakis keys: over many draws a pixel's share follows its uncertainty; the same seed, the same
    draw; pixels of no uncertainty are never drawn while others remain."""
    _classes, uncertainty, folder = scene
    u = gdal.Open(uncertainty).ReadAsArray().astype(np.float64)
    gt = gdal.Open(uncertainty).GetGeoTransform()
    drawn = []
    for seed in range(30):
        result = suggest_labels(uncertainty, str(folder / f"w{seed}.gpkg"), count=20, min_distance=0, seed=seed)
        drawn += [u[pixel(gt, p["x"], p["y"])] for p in places(result.output)]
    assert np.mean(drawn) > np.mean(u)  # drawn where the map is unsure …
    assert np.mean(drawn) < np.max(u)  # … not only at its least sure pixels
    # chances proportional to u: a draw's mean uncertainty is E[u²]/E[u] (for small draws from a large scene)
    assert np.mean(drawn) == pytest.approx(np.mean(u ** 2) / np.mean(u), rel=0.05)
    again = suggest_labels(uncertainty, str(folder / "w0-again.gpkg"), count=20, min_distance=0, seed=0)
    assert [(p["x"], p["y"]) for p in places(again.output)] == [(p["x"], p["y"]) for p in places(str(folder /
                                                                                                       "w0.gpkg"))]


def test_balanced_places_come_from_every_class_and_none_near_what_is_labelled(scene):
    classes, uncertainty, folder = scene
    ds = gdal.Open(uncertainty)
    gt = ds.GetGeoTransform()
    first = suggest_labels(uncertainty, str(folder / "first.gpkg"), count=12, min_distance=10, classes=classes)
    labelled = Places([f"POINT ({p['x']} {p['y']})" for p in places(first.output)], ds.GetProjection())
    second = suggest_labels(uncertainty, str(folder / "second.gpkg"), count=30, min_distance=10, classes=classes,
                            labelled=labelled, balance=True)
    found = places(second.output)
    counts = {}
    for p in found:
        counts[p["predicted_class"]] = counts.get(p["predicted_class"], 0) + 1
    assert set(counts) == {0, 1, 2} and max(counts.values()) - min(counts.values()) <= 1  # 10 of each class
    old = np.array([pixel(gt, p["x"], p["y"]) for p in places(first.output)])
    new = np.array([pixel(gt, p["x"], p["y"]) for p in found])
    assert np.sqrt(((new[:, None] - old[None]) ** 2).sum(-1)).min() >= 10 - 1e-9


def test_chips_are_squares_around_the_place_styled_to_label(scene):
    classes, uncertainty, folder = scene
    result = suggest_labels(uncertainty, str(folder / "chips.gpkg"), count=5, min_distance=40, classes=classes,
                            shape="chip", chip_size=32)
    ds = ogr.Open(result.output)
    layer = ds.GetLayer(0)
    gt = gdal.Open(uncertainty).GetGeoTransform()
    for feature in layer:
        xmin, xmax, ymin, ymax = feature.GetGeometryRef().GetEnvelope()
        assert (xmax - xmin) == pytest.approx(32 * gt[1]) and (ymax - ymin) == pytest.approx(32 * abs(gt[5]))
    style = ds.ExecuteSQL("SELECT styleQML FROM layer_styles")
    qml = style.GetNextFeature().GetField(0)
    ds.ReleaseResultSet(style)
    assert 'editWidget type="ValueMap"' in qml and 'name="class 2" type="QString" value="2"' in qml
    assert 'type="fill"' in qml and 'type="marker"' not in qml  # squares drawn as outlines


def test_bad_settings_are_refused_before_anything_is_read(scene, tmp_path):
    classes, uncertainty, _folder = scene
    with pytest.raises(PatchworkError, match="BALANCE: .* needs the CLASSES map"):
        suggest_labels(uncertainty, str(tmp_path / "x.gpkg"), balance=True)
    with pytest.raises(PatchworkError, match="SHAPE"):
        suggest_labels(uncertainty, str(tmp_path / "x.gpkg"), shape="circle")
    with pytest.raises(PatchworkError, match="GeoPackage"):
        suggest_labels(uncertainty, str(tmp_path / "x.shp"))
    assert not list(tmp_path.iterdir())


def test_labels_close_together_make_one_area_to_keep_away_from(scene):
    """Buffers of labels closer than twice the distance overlap and touch: found by the benchmark, they were once
    refused as an invalid polygon of the user's layer."""
    classes, uncertainty, folder = scene
    ds = gdal.Open(uncertainty)
    gt = ds.GetGeoTransform()
    row = 100
    dense = Places([f"POINT ({gt[0] + (c + 0.5) * gt[1]} {gt[3] + (row + 0.5) * gt[5]})" for c in range(0, 348, 4)],
                   ds.GetProjection())
    result = suggest_labels(uncertainty, str(folder / "dense.gpkg"), count=20, min_distance=4, labelled=dense)
    rows = [pixel(gt, p["x"], p["y"])[0] for p in places(result.output)]
    assert result.count == 20 and all(abs(r - row) >= 4 for r in rows)


def test_with_a_model_the_raster_is_classified_first(scene, s2_path, tmp_path):
    """#24: a raster and a model, instead of an uncertainty map: the same places as from classify's own maps."""
    classes, uncertainty, folder = scene
    model = str(folder / "m.onnx")
    direct = suggest_labels(s2_path, str(tmp_path / "direct.gpkg"), count=15, min_distance=10, balance=True,
                            model=model, seed=2)
    # what classify writes with the settings the model path uses (soft votes, the model's input scaling)
    ran = classify(s2_path, model, str(tmp_path / "c.tif"), aggregation="softvote", uncertainty=str(tmp_path / "u.tif"))
    from_maps = suggest_labels(ran.uncertainty, str(tmp_path / "maps.gpkg"), count=15, min_distance=10,
                               classes=ran.output, balance=True, seed=2)
    assert direct.count == 15
    assert [(p["x"], p["y"]) for p in places(direct.output)] == [(p["x"], p["y"]) for p in places(from_maps.output)]
    with pytest.raises(PatchworkError, match="CLASSES: with a MODEL"):
        suggest_labels(s2_path, str(tmp_path / "x.gpkg"), model=model, classes=classes)
