"""Training a pixel classifier on real Sentinel-2 chips labelled by the rules model, and its ONNX export."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from patchwork.core import (
    Cancelled,
    PatchworkError,
    PoissonDiskSampler,
    RegularSampler,
    SilentFeedback,
    augment_chips,
    classify,
    compare_classifications,
    load_model,
    sample_chips,
    train_classifier,
    write_geotiff,
)
from patchwork.core.tasks.train_classifier import fit_reporting, pixels_from_index, split_by_chip, stratified_subsample
from tests.conftest import REPO, read_all

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


@pytest.fixture(scope="module")
def s2_chips(tmp_path_factory, s2_path):
    root = tmp_path_factory.mktemp("train")
    labels = str(root / "rules.tif")
    classify(s2_path, RULES, labels, scale=1e-4)
    chips = sample_chips(s2_path, PoissonDiskSampler(min_distance=24, count=0, seed=3), 24, str(root / "chips"),
                         labels=labels, max_nodata=0.5)
    return root, labels, chips.index_path


def test_random_forest_from_chips_reproduces_the_rules_map_on_the_full_scene(s2_chips, s2_path):
    root, labels, index = s2_chips
    augmented = augment_chips(index, "geometric", str(root / "augmented"), copies=2, seed=1)
    model = str(root / "forest.onnx")
    result = train_classifier(augmented.index_path, model, estimator="random_forest", seed=4,
                              report=str(root / "report.html"), skops_copy=str(root / "forest.skops"))
    assert result.classes == [0, 1, 2] and result.accuracy > 0.95
    info = load_model(model).info  # runs with no other settings: classes, bands, names from the metadata
    assert info.class_values == [0, 1, 2] and info.n_bands == 4 and info.per_pixel
    classify(s2_path, model, str(root / "forest.tif"))
    agreement = compare_classifications(labels, str(root / "forest.tif")).agreement
    assert agreement >= 0.95
    report = (root / "report.html").read_text()
    assert "Validation accuracy" in report and "Band importance" in report and "precision" in report


@pytest.mark.parametrize("estimator", ["random_forest", "extra_trees", "logistic_regression", "mlp"])
def test_exported_onnx_predicts_what_scikit_learn_predicts(s2_chips, s2_path, estimator):
    import skops.io as sio

    root, _, index = s2_chips
    model, copy = str(root / f"{estimator}.onnx"), str(root / f"{estimator}.skops")
    result = train_classifier(index, model, estimator=estimator, seed=2, skops_copy=copy)
    assert result.onnx_agreement == 1.0
    data, *_ = read_all(s2_path)
    pixels = data.reshape(4, -1).T.astype(np.float32)
    fitted = sio.load(copy, trusted=sio.get_untrusted_types(file=copy))
    onnx_labels = np.argmax(load_model(model).predict_pixels(pixels), axis=1)
    np.testing.assert_array_equal(np.asarray(result.classes)[onnx_labels], fitted.predict(pixels))


def test_validation_chips_are_held_out_whole_and_subsampling_keeps_proportions(s2_chips):
    """Overlapping chips and augmented copies form patches held out whole: none is left out of training."""
    root, _, index = s2_chips
    augmented = augment_chips(index, "geometric", str(root / "augmented-split"), copies=3, seed=2)
    pixels = pixels_from_index(augmented.index_path, SilentFeedback())
    train, val = split_by_chip(pixels, 0.25, np.random.default_rng(0))
    share = sum(len(pixels.labels[i]) for i in val) / sum(len(y) for y in pixels.labels)
    assert 0.25 <= share < 0.4  # about a quarter of the labelled pixels, in whole patches
    assert not {pixels.groups[i] for i in train} & {pixels.groups[i] for i in val}  # source chips with their copies
    assert not any(pixels.windows[t].overlaps(pixels.windows[v]) for t in train for v in val)  # apart on the ground
    assert sorted(train + val) == [i for i, y in enumerate(pixels.labels) if len(y)]  # no chip left out
    y = np.repeat([0, 1, 2], [9000, 900, 100])
    keep = stratified_subsample(y, 1000, np.random.default_rng(0))
    assert np.bincount(y[keep]).tolist() == [900, 90, 10]


def test_training_errors_are_clear(tmp_path, s2_chips, s2_path):
    root, labels, index = s2_chips
    out = str(tmp_path / "m.onnx")
    no_labels = sample_chips(s2_path, RegularSampler(64), 32, str(tmp_path / "plain"))
    with pytest.raises(PatchworkError, match="have no label chips"):
        train_classifier(no_labels.index_path, out)
    data, gt, wkt, _ = read_all(s2_path)
    one_class = write_geotiff(str(tmp_path / "one.tif"), np.ones(data.shape[1:], np.uint8), gt, wkt, nodata=255)
    with pytest.raises(PatchworkError, match="one class only"):
        train_classifier(s2_path, out, labels=one_class)
    tiny = np.full(data.shape[1:], 255, np.uint8)
    tiny[0, :3] = [0, 1, 2]
    few = write_geotiff(str(tmp_path / "few.tif"), tiny, gt, wkt, nodata=255)
    with pytest.raises(PatchworkError, match="only 3 labelled pixels for 3 classes"):
        train_classifier(s2_path, out, labels=few)
    with pytest.raises(PatchworkError, match="random_forest has no setting n_trees; it has .*n_estimators"):
        train_classifier(index, out, parameters='{"n_trees": 10}')
    with pytest.raises(PatchworkError, match="unknown 'svm'"):
        train_classifier(index, out, estimator="svm")
    assert not os.path.exists(out)


def test_training_from_a_raster_and_label_raster_keeps_class_names(tmp_path, s2_path):
    from osgeo import gdal

    labels = str(tmp_path / "rules.tif")
    gdal.SetConfigOption("GDAL_PAM_ENABLED", "YES")  # class names travel in the .aux.xml side-car
    try:
        classify(s2_path, RULES, labels, scale=1e-4)
        result = train_classifier(s2_path, str(tmp_path / "m.onnx"), labels=labels, estimator="extra_trees",
                                  parameters={"n_estimators": 20}, max_pixels=5000)
    finally:
        gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")
    assert result.train_pixels <= 5000 + 3 and result.accuracy > 0.95  # (+ at most one per class)
    info = load_model(str(tmp_path / "m.onnx")).info
    assert info.class_names == ["water", "bare land / scrub", "vegetation"]
    assert info.class_colors == ["#2c7bb6", "#d8b365", "#1a9641"]  # the label raster's palette


class CancelAfterSeconds:
    """Feedback that asks to cancel `seconds` after fitting starts (the first progress past 30%)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.progress: list[float] = []
        self.fit_started: float | None = None

    def set_progress(self, percent):
        self.progress.append(percent)
        if percent > 30 and self.fit_started is None:
            self.fit_started = time.perf_counter()

    def is_cancelled(self):
        return self.fit_started is not None and time.perf_counter() - self.fit_started >= self.seconds

    def info(self, message):
        pass


def test_a_forest_grown_in_steps_is_the_forest_of_one_fit_and_reports_progress():
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = rng.random((5000, 4))
    y = (x[:, 0] + x[:, 1] > 1).astype(int) + (x[:, 2] > 0.7)
    whole = RandomForestClassifier(n_estimators=40, max_depth=8, n_jobs=-1, random_state=3).fit(x, y)
    stepped = RandomForestClassifier(n_estimators=40, max_depth=8, n_jobs=-1, random_state=3)
    feedback = CancelAfterSeconds(1e9)
    fit_reporting(stepped, x, y, feedback, start=30.0, end=80.0)
    assert len(stepped.estimators_) == 40 and not stepped.warm_start
    for grown, fitted in zip(stepped.estimators_, whole.estimators_):  # tree by tree: the forest's own average
        np.testing.assert_array_equal(grown.predict_proba(x), fitted.predict_proba(x))  # sums in parallel, any order
    assert len(feedback.progress) >= 2 and feedback.progress == sorted(feedback.progress)
    assert feedback.progress[-1] == 80.0


def test_cancelling_a_large_forest_a_second_in_stops_within_half_a_second_and_writes_nothing(tmp_path, s2_path):
    labels = str(tmp_path / "rules.tif")
    classify(s2_path, RULES, labels, scale=1e-4)
    out = tmp_path / "out"
    out.mkdir()
    feedback = CancelAfterSeconds(1.0)
    with pytest.raises(Cancelled):
        train_classifier(s2_path, str(out / "forest.onnx"), labels=labels, estimator="random_forest",
                         parameters={"n_estimators": 5000}, report=str(out / "report.html"), feedback=feedback)
    stopped = time.perf_counter() - feedback.fit_started
    assert stopped < 1.5, f"the fit went on {stopped - 1.0:.2f} s after the cancel"
    assert max(feedback.progress) < 80  # cancelled in the middle of the fit
    assert list(out.iterdir()) == []


def test_a_model_path_in_a_folder_not_made_yet_is_written(tmp_path, s2_chips):
    """The panel's default for a project not saved yet is ~/Patchwork models/…, which may not exist."""
    _root, _labels, index = s2_chips
    model = tmp_path / "Patchwork models" / "patchwork_model.onnx"
    train_classifier(index, str(model), parameters={"n_estimators": 5}, report=str(model.parent / "report.html"))
    assert model.is_file() and (model.parent / "report.html").is_file()


def test_standardised_training_carries_the_datasets_band_statistics_to_classify(s2_chips, s2_path, tmp_path):
    import json

    import skops.io as sio

    root, labels, index = s2_chips
    with open(os.path.join(os.path.dirname(index), "dataset.json"), encoding="utf-8") as fh:
        stats = json.load(fh)["band_statistics"]
    model, copy, report = (str(tmp_path / name) for name in ("lr.onnx", "lr.skops", "lr.html"))
    result = train_classifier(index, model, estimator="logistic_regression", seed=2, standardize=True,
                              skops_copy=copy, report=report)
    assert result.accuracy > 0.9 and result.onnx_agreement == 1.0 and "band statistics" in result.standardized_with
    info = load_model(model).info
    assert info.mean == [b["mean"] for b in stats] and info.std == [b["std"] for b in stats]
    fitted = sio.load(copy, trusted=sio.get_untrusted_types(file=copy))
    scaler, estimator = (step for _, step in fitted.steps)  # the dataset's figures in front, no scaler inside
    np.testing.assert_array_equal(scaler.mean_, info.mean)
    assert type(estimator).__name__ == "LogisticRegression"
    classify(s2_path, model, str(tmp_path / "lr.tif"))  # classify standardises with the model's figures
    data, *_ = read_all(s2_path)
    class_map, *_ = read_all(str(tmp_path / "lr.tif"))
    expected = fitted.predict(data.reshape(4, -1).T).reshape(data.shape[1:])  # raw pixels into the .skops copy
    assert (class_map[0] == expected).mean() > 0.999  # float32 inside classify, float64 in scikit-learn
    assert "standardised per band" in (tmp_path / "lr.html").read_text()
    plain = str(tmp_path / "plain.onnx")
    train_classifier(index, plain, estimator="logistic_regression", seed=2)
    assert load_model(plain).info.mean is None  # without STANDARDIZE the scaler stays inside the graph


def test_chips_piled_on_small_hand_drawn_polygons_still_train(tmp_path, naip_path):
    """#27 item 4: balanced sampling's chips pile onto small polygons; the old split held out random chips, dropped
    every training chip that touched one, and its advice (lower VALIDATION_FRACTION) failed at 0.1 as well."""
    from patchwork.core import RasterSource, VectorLabels
    from patchwork.core.data.sampling import BalancedSampler

    with RasterSource(naip_path) as src:
        gt, crs = src.geotransform, src.crs_wkt
    squares, classes = [], []
    for i, (row, col) in enumerate([(60, 60), (60, 400), (300, 200), (300, 600), (500, 100), (500, 700)]):
        x, y, d = gt[0] + col * gt[1], gt[3] + row * gt[5], 25 * gt[1]  # 25 px polygons, as drawn by hand
        squares.append(f"POLYGON(({x} {y},{x + d} {y},{x + d} {y - d},{x} {y - d},{x} {y}))")
        classes.append(["water", "field", "forest"][i % 3])
    chips = sample_chips(naip_path, BalancedSampler(100, seed=1), 32, str(tmp_path / "chips"),
                         labels=VectorLabels(squares, classes, crs))
    manifest = json.loads((tmp_path / "chips" / "dataset.json").read_text())  # the overlap, reported at sampling
    assert manifest["chips_per_covered_pixel"] > 4 and manifest["most_chips_on_a_pixel"] > 20
    for fraction in (0.1, 0.25):
        result = train_classifier(chips.index_path, str(tmp_path / f"m{fraction}.onnx"), validation_fraction=fraction)
        assert result.validation_pixels > 0 and result.train_pixels > 0 and result.accuracy is not None
    x, y, d = gt[0] + 300 * gt[1], gt[3] + 300 * gt[5], 12 * gt[1]  # two small polygons side by side: one patch
    pair = [f"POLYGON(({x} {y},{x + d} {y},{x + d} {y - d},{x} {y - d},{x} {y}))",
            f"POLYGON(({x + d} {y},{x + 2 * d} {y},{x + 2 * d} {y - d},{x + d} {y - d},{x + d} {y}))"]
    one_patch = sample_chips(naip_path, BalancedSampler(20, seed=1), 32, str(tmp_path / "one"),
                             labels=VectorLabels(pair, ["water", "field"], crs))
    with pytest.raises(PatchworkError, match="overlap one another.*more places.*VALIDATION_FRACTION to 0"):
        train_classifier(one_patch.index_path, str(tmp_path / "one.onnx"))
    assert train_classifier(one_patch.index_path, str(tmp_path / "one.onnx"), validation_fraction=0).accuracy is None
