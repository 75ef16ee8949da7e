"""Accuracy and area with confidence intervals (#24): the published examples of Olofsson et al. (2014) and Stehman
(2014) reproduced, the sample design (Cochran's n, allocation, points), and the whole loop on a real scene, where the
true areas are known and the 95% intervals must hold them about 95% of the time."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from osgeo import gdal, ogr

from patchwork.core import PatchworkError, assess_accuracy, classify, draw_accuracy_sample
from patchwork.core.data.accuracy import allocate, cochran_sample_size, estimate
from patchwork.core.tasks.accuracy import SamplePoints
from tests.conftest import REPO

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")

# Olofsson et al. (2014), RSE 148:42-57, Table 8: map classes deforestation, forest gain, stable forest, stable
# non-forest; rows map classes, columns reference classes (sample counts); map areas in 30 m pixels.
OLOFSSON_COUNTS = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])
OLOFSSON_PIXELS = np.array([200_000, 150_000, 3_200_000, 6_450_000])


def sample_from_matrix(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One (map, reference) pair per sample point of an error matrix of counts (classes 1..K)."""
    mapped, reference = [], []
    for i, row in enumerate(counts):
        for j, n in enumerate(row):
            mapped += [i + 1] * int(n)
            reference += [j + 1] * int(n)
    return np.array(mapped), np.array(reference)


def test_cochran_gives_the_papers_641_points():
    assert cochran_sample_size([0.02, 0.015, 0.32, 0.645], [0.7, 0.6, 0.9, 0.95], 0.01) == 641


def test_olofsson_2014_published_example():
    mapped, reference = sample_from_matrix(OLOFSSON_COUNTS)
    sizes = {k + 1: float(n) * 900 for k, n in enumerate(OLOFSSON_PIXELS)}  # m²
    a = estimate(mapped, mapped, reference, sizes, [1, 2, 3, 4])
    total_ha = sum(sizes.values()) / 1e4
    # p. 54: areas in ha with their 95% intervals, overall accuracy, user's and producer's accuracies
    published_areas = [(21_158, 6_158), (11_686, 3_756), (285_770, 15_510), (581_386, 16_282)]
    for estimate_k, (area, ci) in zip(a.area_proportions, published_areas):
        assert round(estimate_k.value * total_ha) == area and round(estimate_k.ci * total_ha) == ci
    assert round(a.overall.value, 2) == 0.95 and round(a.overall.ci, 2) == 0.02
    assert [round(u.value, 2) for u in a.users] == [0.88, 0.73, 0.93, 0.96]
    assert [round(u.ci, 2) for u in a.users] == [0.07, 0.10, 0.04, 0.02]
    assert [round(p.value, 2) for p in a.producers] == [0.75, 0.85, 0.93, 0.96]
    # producer's accuracy's variance as Olofsson et al. write it (their eq. 7, after Card 1982), term by term
    w = OLOFSSON_PIXELS / OLOFSSON_PIXELS.sum()
    n_i = OLOFSSON_COUNTS.sum(1)
    p = w[:, None] * OLOFSSON_COUNTS / n_i[:, None]
    for j, producers in enumerate(a.producers):
        n_dot_j = (OLOFSSON_PIXELS[:, None] * OLOFSSON_COUNTS / n_i[:, None])[:, j].sum()
        users, pa = OLOFSSON_COUNTS[j, j] / n_i[j], p[j, j] / p[:, j].sum()
        others = sum(OLOFSSON_PIXELS[i] ** 2 * OLOFSSON_COUNTS[i, j] / n_i[i] * (1 - OLOFSSON_COUNTS[i, j] / n_i[i])
                     / (n_i[i] - 1) for i in range(4) if i != j)
        variance = (OLOFSSON_PIXELS[j] ** 2 * (1 - pa) ** 2 * users * (1 - users) / (n_i[j] - 1)
                    + pa ** 2 * others) / n_dot_j ** 2
        assert producers.value == pytest.approx(pa, rel=1e-12)
        assert producers.se == pytest.approx(math.sqrt(variance), rel=1e-9)
    np.testing.assert_allclose(a.proportions.sum(1), w)  # each map class's row sums to its share of the map


def test_stehman_2014_published_example_strata_differ_from_map_classes():
    # Stehman (2014), IJRS 35:4923-4939, section 4: 40 points in 4 strata of 40,000, 30,000, 20,000, 10,000 pixels
    strata = np.repeat([1, 2, 3, 4], 10)
    code = {"A": 1, "B": 2, "C": 3, "D": 4}
    mapped = np.array([code[c] for c in "AAAAAAABBB" "ABBBBBBBBB" "BBCCCCCCBB" "DDDDDDDDDD"])
    reference = np.array([code[c] for c in "AAAAACBABC" "ABBBBBAABB" "CCCCCDDBBA" "DDDDDDDCCB"])
    a = estimate(strata, mapped, reference, {1: 40_000, 2: 30_000, 3: 20_000, 4: 10_000}, [1, 2, 3, 4])
    assert round(a.area_proportions[0].value, 3) == 0.350 and round(a.area_proportions[2].value, 3) == 0.200
    assert round(a.overall.value, 3) == 0.630
    assert round(a.users[1].value, 3) == 0.574 and round(a.producers[1].value, 3) == 0.794
    assert round(a.proportions[1, 2], 3) == 0.080
    assert round(a.area_proportions[0].se, 3) == 0.082 and round(a.area_proportions[2].se, 3) == 0.064
    assert round(a.overall.se, 3) == 0.085
    assert round(a.users[1].se, 3) == 0.125 and round(a.producers[1].se, 3) == 0.117


def test_allocation_keeps_n_gives_rare_classes_their_minimum_and_never_more_than_a_stratum_has():
    shares = allocate(641, OLOFSSON_PIXELS, "proportional_minimum", 75)
    assert shares.counts.tolist() == [75, 75, 163, 328] and shares.counts.sum() == 641
    assert "minimum" in shares.reasons[0] and "proportional" in shares.reasons[2]
    assert allocate(641, OLOFSSON_PIXELS, "proportional").counts.sum() == 641
    assert allocate(641, OLOFSSON_PIXELS, "equal").counts.tolist() == [161, 160, 160, 160]
    tiny = allocate(100, [30, 5_000, 5_000], "proportional_minimum", 50)  # the minimums do not fit in n: they win
    assert tiny.counts.tolist() == [30, 50, 50] and "all its 30 pixels" in tiny.reasons[0]
    assert allocate(100, [30, 5_000, 5_000], "proportional").counts.tolist() == [0, 50, 50]


def test_a_stratum_with_one_labelled_point_is_refused_with_the_reason():
    with pytest.raises(PatchworkError, match="'forest' has 1 sample point.*at least 2 for its variance"):
        estimate(np.array([1, 2, 2]), np.array([1, 2, 2]), np.array([1, 2, 1]), {1: 10.0, 2: 10.0}, [1, 2],
                 {1: "forest", 2: "water"})


# --- the loop on a real scene -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene_maps(tmp_path_factory, s2_path):
    """The Sentinel-2 scene's class map (rules model), and a 'truth' that differs at class edges: the map shifted by
    two pixels, as a misregistered map would be. Every pixel's true class is known, so every true area is."""
    folder = tmp_path_factory.mktemp("accuracy")
    mapped = classify(s2_path, RULES, str(folder / "map.tif"), scale=1e-4).output
    ds = gdal.Open(mapped)
    truth = np.roll(ds.ReadAsArray(), (2, 2), axis=(0, 1))
    copy = gdal.GetDriverByName("GTiff").CreateCopy(str(folder / "truth.tif"), ds)
    copy.GetRasterBand(1).WriteArray(truth)
    copy = None
    return mapped, truth, folder


def label_points(path: str, truth: np.ndarray, geotransform, field: str = "reference", as_names=None) -> None:
    """Fill each point's reference from the truth raster under it, as an interpreter would."""
    ds = ogr.Open(path, 1)
    layer = ds.GetLayer(0)
    for feature in layer:
        point = feature.GetGeometryRef()
        col = int((point.GetX() - geotransform[0]) // geotransform[1])
        row = int((point.GetY() - geotransform[3]) // geotransform[5])
        value = int(truth[row, col])
        feature.SetField(field, as_names[value] if as_names else value)
        layer.SetFeature(feature)
    ds = None


def true_area_shares(truth: np.ndarray, geotransform) -> np.ndarray:
    """Each class's true share of the scene's area, from per-row pixel areas on the sphere (a geographic grid)."""
    lat_edges = np.radians(geotransform[3] + geotransform[5] * np.arange(truth.shape[0] + 1))
    row_area = np.abs(np.diff(np.sin(lat_edges)))  # ∝ a pixel's area on the sphere
    areas = np.array([(row_area[:, None] * (truth == k)).sum() for k in range(3)])
    return areas / areas.sum()


def test_points_fall_at_pixel_centres_in_their_stratum_as_allocated_and_the_same_seed_gives_the_same(scene_maps):
    mapped, _truth, folder = scene_maps
    result = draw_accuracy_sample(mapped, str(folder / "a.gpkg"), expected_users_accuracy="0.8, 0.85, 0.9", seed=4)
    draw_accuracy_sample(mapped, str(folder / "b.gpkg"), expected_users_accuracy="0.8, 0.85, 0.9", seed=4)
    draw_accuracy_sample(mapped, str(folder / "c.gpkg"), expected_users_accuracy="0.8, 0.85, 0.9", seed=5)
    ds = gdal.Open(mapped)
    gt, classes = ds.GetGeoTransform(), ds.ReadAsArray()
    shares = classes[classes != 255]
    weights = [np.mean(shares == k) for k in range(3)]  # (pixel shares; area shares differ by < 0.1%)
    assert abs(result.cochran_n - cochran_sample_size(weights, [0.8, 0.85, 0.9], 0.01)) <= 1

    def points(path):
        ds = ogr.Open(path)  # (held while its layer is read: OGR frees the layer with it)
        layer = ds.GetLayer(0)
        return [(f.GetGeometryRef().GetX(), f.GetGeometryRef().GetY(), f["map_class"], f["stratum"],
                 f["inclusion_probability"], f["reference"]) for f in layer]

    drawn = points(str(folder / "a.gpkg"))
    assert len(drawn) == result.points == result.cochran_n
    assert sorted(drawn) == sorted(points(str(folder / "b.gpkg"))) != sorted(points(str(folder / "c.gpkg")))
    cells = set()
    for x, y, value, stratum, probability, reference in drawn:
        col, row = (x - gt[0]) / gt[1] - 0.5, (y - gt[3]) / gt[5] - 0.5
        assert col == pytest.approx(round(col), abs=1e-6) and row == pytest.approx(round(row), abs=1e-6)
        cells.add((round(row), round(col)))
        assert classes[round(row), round(col)] == value == stratum and reference is None
        plan = next(p for p in result.strata if p.value == stratum)
        assert probability == pytest.approx(plan.points / plan.pixels)
    assert len(cells) == len(drawn)  # one point per pixel at most
    per_stratum = {p.value: p.points for p in result.strata}
    assert {k: sum(1 for d in drawn if d[3] == k) for k in per_stratum} == per_stratum


def test_the_95_percent_intervals_hold_the_true_areas_about_95_percent_of_the_time(scene_maps):
    mapped, truth, folder = scene_maps
    gt = gdal.Open(mapped).GetGeoTransform()
    true_shares = true_area_shares(truth, gt)
    held, intervals, errors = 0, 0, []
    for seed in range(40):
        path = str(folder / f"s{seed}.gpkg")
        draw_accuracy_sample(mapped, path, sample_size=150, min_per_class=30, seed=seed)
        label_points(path, truth, gt)
        report = assess_accuracy(mapped, path, "reference")
        for k, estimate_k in enumerate(report.assessment.area_proportions):
            intervals += 1
            held += abs(estimate_k.value - true_shares[k]) <= estimate_k.ci
            errors.append(estimate_k.value - true_shares[k])
    # 120 intervals at 95%: 114 expected; fewer than 105 would be off by more than 3 standard deviations
    assert 105 <= held <= intervals
    assert abs(np.mean(errors)) < 0.01  # unbiased: the errors average out


def test_json_and_report_hold_the_figures_and_nothing_is_half_written(scene_maps):
    mapped, truth, folder = scene_maps
    gt = gdal.Open(mapped).GetGeoTransform()
    path = str(folder / "named.gpkg")
    draw_accuracy_sample(mapped, path, target_se=0.02, seed=9)
    names = {0: "Water", 1: "bare land / scrub", 2: "VEGETATION"}  # names, in any case, do as well as values
    layer_ds = ogr.Open(path, 1)
    layer_ds.GetLayer(0).CreateField(ogr.FieldDefn("label", ogr.OFTString))
    layer_ds = None
    label_points(path, truth, gt, "label", names)
    json_path, html_path = str(folder / "a.json"), str(folder / "a.html")
    report = assess_accuracy(mapped, path, "label", output_json=json_path, output_report=html_path)
    data = json.load(open(json_path))
    assert data["overall_accuracy"] == pytest.approx(report.overall_accuracy)
    assert [c["name"] for c in data["classes"]] == ["water", "bare land / scrub", "vegetation"]
    keys = {"value", "name", "map_pixels", "sample_count", "users_accuracy", "users_accuracy_ci",
            "producers_accuracy", "producers_accuracy_ci", "area_proportion", "area_proportion_se", "area_m2",
            "area_m2_ci"}
    assert all(keys <= set(c) for c in data["classes"])
    assert sum(c["area_m2"] for c in data["classes"]) == pytest.approx(sum(s["area_m2"] for s in data["strata"]))
    assert np.array(data["error_matrix_counts"]).sum() == data["points_used"]
    page = open(html_path, encoding="utf-8").read()
    assert "<svg" in page and "Olofsson" in page and f"{data['overall_accuracy']:.3f}" in page
    # a reference class the map does not have: refused before anything is written
    ds = ogr.Open(path, 1)
    feature = ds.GetLayer(0).GetFeature(1)
    feature.SetField("label", "clouds")
    ds.GetLayer(0).SetFeature(feature)
    ds = None
    os.remove(json_path)
    with pytest.raises(PatchworkError, match=r"REFERENCE_FIELD: 1 point\(s\) have reference classes the map does "
                                             r"not have \(clouds\); the map's classes are 0 water"):
        assess_accuracy(mapped, path, "label", output_json=json_path)
    assert not os.path.exists(json_path)


def test_points_off_the_map_on_nodata_or_unlabelled_are_counted_not_dropped(scene_maps, tmp_path):
    mapped, truth, _folder = scene_maps
    ds = gdal.Open(mapped)
    gt = ds.GetGeoTransform()
    classes = ds.ReadAsArray()
    centre = lambda r, c: (gt[0] + (c + 0.5) * gt[1], gt[3] + (r + 0.5) * gt[5])  # noqa: E731
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, classes.shape[0], 300), rng.integers(0, classes.shape[1], 300)
    wkts = [f"POINT ({x} {y})" for x, y in (centre(r, c) for r, c in zip(rows, cols))]
    references = [int(truth[r, c]) for r, c in zip(rows, cols)]
    wkts += ["POINT (0 0)", "POINT (0 0)"]  # far off the map
    references += [1, 2]
    references[:5] = [None] * 5
    report = assess_accuracy(mapped, SamplePoints.from_wkt(wkts, references), design="simple_random")
    assert report.excluded["outside_map"] == 2 and report.excluded["no_reference"] == 5
    assert report.used == 295


def test_a_second_assessment_says_how_each_figure_changed(scene_maps, tmp_path):
    """#24: after more labels and a new model, the log and the report say how accuracy changed (PREVIOUS)."""
    mapped, truth, folder = scene_maps
    gt = gdal.Open(mapped).GetGeoTransform()
    path = str(folder / "twice.gpkg")
    draw_accuracy_sample(mapped, path, target_se=0.02, seed=21)
    label_points(path, truth, gt)
    first = str(tmp_path / "first.json")
    assess_accuracy(mapped, path, "reference", output_json=first)
    messages = []
    log = type("Log", (), {"set_progress": lambda self, p: None, "is_cancelled": lambda self: False,
                           "info": lambda self, m: messages.append(m)})()
    truer = np.array(truth)
    truer[:, :50] = gdal.Open(mapped).ReadAsArray()[:, :50]  # a better map on the left: fewer errors there
    label_points(path, truer, gt)
    second = assess_accuracy(mapped, path, "reference", previous=first, output_report=str(tmp_path / "r.html"),
                             feedback=log)
    before = json.load(open(first))["overall_accuracy"]
    line = next(m for m in messages if m.startswith("Since the previous assessment, overall accuracy"))
    assert f"{before:.3f} → {second.overall_accuracy:.3f} ({second.overall_accuracy - before:+.3f})" in line
    assert "Since the previous assessment" in open(str(tmp_path / "r.html"), encoding="utf-8").read()
    with open(tmp_path / "not.json", "w") as fh:
        fh.write('{"agreement": 0.9}')
    with pytest.raises(PatchworkError, match="PREVIOUS: .* is not the JSON of an earlier patchwork:accuracy run"):
        assess_accuracy(mapped, path, "reference", previous=str(tmp_path / "not.json"))


def test_a_stratum_of_one_labelled_point_is_refused_before_the_map_is_read(scene_maps):
    mapped, truth, folder = scene_maps
    gt = gdal.Open(mapped).GetGeoTransform()
    classes = gdal.Open(mapped).ReadAsArray()
    rows, cols = np.nonzero(classes == 0)
    wkts = [f"POINT ({gt[0] + (c + 0.5) * gt[1]} {gt[3] + (r + 0.5) * gt[5]})" for r, c in zip(rows[:5], cols[:5])]
    rows, cols = np.nonzero(classes == 1)
    wkts.append(f"POINT ({gt[0] + (cols[0] + 0.5) * gt[1]} {gt[3] + (rows[0] + 0.5) * gt[5]})")
    with pytest.raises(PatchworkError, match="stratum 'bare land / scrub' has 1 sample point"):
        assess_accuracy(mapped, SamplePoints.from_wkt(wkts, [0] * 5 + [1]), check_only=True)
