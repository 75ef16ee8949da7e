"""Train a per-pixel classifier from label chips, export it to ONNX with Patchwork metadata, report on it.

Pixels come from a chip dataset (image chips with label chips) or from a raster and a label raster
(cut into 64 px blocks). Validation chips are held out whole, so validation pixels lie apart from the
training pixels instead of next to them. The ONNX model carries its class ids and names, band count
and names, and the input scaling it was trained with, so `classify` runs it with no other settings.
"""
from __future__ import annotations

import html
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..data.chips import category_names, dataset_classes, open_chip, read_chip, read_index, read_manifest
from ..data.sampling import check_seed
from ..dependencies import require
from ..engine.executors import available_cores
from ..errors import PatchworkError, reports_errors
from ..geometry import Window
from ..io.partials import write_file_atomically
from ..io.paths import check_outputs
from ..io.raster import RasterSource
from ..io.writer import require_writable_folder
from ..models.applicability import applicability
from ..progress import Feedback, SilentFeedback, check_cancelled
from .compare import confusion_matrix, count_pairs

ESTIMATORS = ("random_forest", "extra_trees", "gradient_boosting", "logistic_regression", "knn", "mlp")
BLOCK = 64  # chip size when training from a raster and a label raster
KNN_MAX_PIXELS = 10_000


# Settings whose size is the run's time and memory, and the most Patchwork accepts.
SETTING_LIMITS = {"n_estimators": 10_000, "max_iter": 100_000, "n_neighbors": 1_000, "max_depth": 1_000}


def make_estimator(name: str, parameters: dict | None, seed: int, scale_inside: bool = True):
    """A scikit-learn classifier by name; `parameters` must be settings it knows.

    Distance- and gradient-based estimators get a StandardScaler in front (inside the exported graph) unless
    `scale_inside` is False: training then standardises with the dataset's band statistics instead.
    """
    require("scikit-learn", "Training")
    from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    builders = {
        "random_forest": lambda: RandomForestClassifier(n_estimators=100, max_depth=16, n_jobs=-1, random_state=seed),
        "extra_trees": lambda: ExtraTreesClassifier(n_estimators=100, max_depth=16, n_jobs=-1, random_state=seed),
        "gradient_boosting": lambda: GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=seed),
        "logistic_regression": lambda: LogisticRegression(max_iter=1000),
        "knn": lambda: KNeighborsClassifier(n_neighbors=5),
        "mlp": lambda: MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=300, random_state=seed),
    }
    if name not in builders:
        raise PatchworkError(f"ESTIMATOR: unknown '{name}'; use one of {', '.join(ESTIMATORS)}")
    estimator = builders[name]()
    if parameters:
        known = estimator.get_params()
        unknown = sorted(set(parameters) - set(known))
        if unknown:
            raise PatchworkError(f"PARAMETERS: {name} has no setting {', '.join(unknown)}; it has "
                                 f"{', '.join(sorted(k for k in known if '__' not in k))}.")
        for key, most in SETTING_LIMITS.items():  # scikit-learn takes 10⁸ trees and would run for days
            value = parameters.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > most:
                raise PatchworkError(f"PARAMETERS: {key} {value:,} is more than Patchwork trains ({most:,}); a "
                                     f"{name} rarely gains past a few hundred. Lower it.")
        try:
            estimator.set_params(**parameters)
            validate = getattr(estimator, "_validate_params", None)  # scikit-learn ≥ 1.2 checks types and ranges
            if validate is not None:
                validate()
        except (ValueError, TypeError) as exc:
            raise PatchworkError(f"PARAMETERS: {exc}") from exc
    if scale_inside and name in ("logistic_regression", "knn", "mlp"):  # distance- and gradient-based
        return make_pipeline(StandardScaler(), estimator)
    return estimator


@dataclass
class PixelSet:
    """Labelled pixels grouped by the chip they come from."""

    features: list[np.ndarray] = field(default_factory=list)  # per chip: (P, C) float32
    labels: list[np.ndarray] = field(default_factory=list)  # per chip: (P,) int64
    windows: list[Window] = field(default_factory=list)  # per chip: where it lies in the source raster
    groups: list[int] = field(default_factory=list)  # per chip: its source chip (augmented copies share one)
    band_names: list[str] = field(default_factory=list)
    class_names: dict[int, tuple[str, str | None]] = field(default_factory=dict)  # id: (name, colour)
    band_statistics: list[dict] = field(default_factory=list)  # the dataset's, from its dataset.json (stats.py)

    def add(self, features: np.ndarray, labels: np.ndarray, window: Window, group: int) -> None:
        """Add a chip's labelled pixels."""
        self.features.append(features)
        self.labels.append(labels)
        self.windows.append(window)
        self.groups.append(group)


def _valid_pixels(image: np.ndarray, image_nodata, label: np.ndarray, label_nodata,
                  where: str = "the labels") -> tuple[np.ndarray, np.ndarray]:
    valid = np.ones(label.shape, bool)
    if image_nodata is not None:
        valid &= ~(np.isnan(image) if np.isnan(image_nodata) else image == image_nodata).any(axis=0)
    if np.issubdtype(image.dtype, np.floating):
        valid &= ~np.isnan(image).any(axis=0)
    if label_nodata is not None:
        valid &= label != label_nodata
    if np.issubdtype(label.dtype, np.floating):
        valid &= ~np.isnan(label)
        values = label[valid]
        fractional = values[values != np.round(values)]
        if fractional.size:
            raise PatchworkError(f"LABELS: {where} hold values that are not class ids ({fractional.size:,} pixels, "
                                 f"e.g. {float(fractional[0]):g}); class ids are whole numbers. Reclassify or round "
                                 "the label raster first (Raster calculator: round(\"labels@1\")).")
    return image[:, valid].T.astype(np.float32), label[valid].astype(np.int64)


def pixels_from_index(index: str, feedback: Feedback) -> PixelSet:
    """The labelled pixels of a chip index's chips."""
    records = read_index(index)
    with_labels = [r for r in records if r.get("label_path")]
    if not with_labels:
        raise PatchworkError(f"INPUT: the chips of '{os.path.basename(index)}' have no label chips. Sample chips "
                             "with a LABELS raster (patchwork:samplechips), or give a raster and a label raster.")
    out = PixelSet()
    for i, record in enumerate(with_labels):
        check_cancelled(feedback)
        chip = read_chip(record)
        if chip.label.ndim != 2:
            raise PatchworkError(f"INPUT: '{record['label_path']}' holds class weights (from MixUp), not class ids; "
                                 "train on chips without MixUp.")
        x, y = _valid_pixels(chip.image, chip.nodata, chip.label, chip.label_nodata,
                             f"the label chip '{os.path.basename(record['label_path'])}'")
        window = Window(record["row_off"], record["col_off"], record["height"], record["width"])
        out.add(x, y, window, record.get("source_chip_id", record["chip_id"]))
        feedback.set_progress(30.0 * (i + 1) / len(with_labels))
    with open_chip(with_labels[0]["image_path"]) as src:
        out.band_names = src.band_descriptions
    out.class_names = dataset_classes(index)
    out.band_statistics = read_manifest(index).get("band_statistics") or []
    return out


def _check_label_raster(src: RasterSource, lbl: RasterSource) -> None:
    src.require_same_grid(lbl)
    if lbl.count != 1:
        raise PatchworkError(f"LABELS: '{os.path.basename(lbl.path)}' has {lbl.count} bands; give one band of "
                             "class ids.")


def pixels_from_rasters(raster: str, labels: str, feedback: Feedback) -> PixelSet:
    """The labelled pixels of a raster and its label raster."""
    out = PixelSet()
    with RasterSource(raster, "INPUT") as src, RasterSource(labels, "LABELS") as lbl:
        _check_label_raster(src, lbl)
        out.band_names = src.band_descriptions
        out.class_names = category_names(labels)
        for row in range(0, src.height, BLOCK):
            check_cancelled(feedback)
            for col in range(0, src.width, BLOCK):
                win = Window(row, col, min(BLOCK, src.height - row), min(BLOCK, src.width - col))
                image, _ = src.read(win)
                label, _ = lbl.read(win)
                x, y = _valid_pixels(image, src.nodata[0], label[0], lbl.nodata[0],
                                     f"'{os.path.basename(labels)}'")
                out.add(x, y, win, len(out.groups))
            feedback.set_progress(30.0 * min(row + BLOCK, src.height) / src.height)
    return out


@dataclass
class Standardization:
    """Per-band (x − mean) / std applied before the estimator, and written into the model's metadata."""
    mean: np.ndarray
    std: np.ndarray
    origin: str  # where the figures come from, for the log and the report

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Standardised float32 pixels (P, C)."""
        return ((x - self.mean) / self.std).astype(np.float32)


def standardization_for(pixels: PixelSet, x_train: np.ndarray, feedback: Feedback) -> Standardization:
    """The dataset's band statistics (dataset.json), else those of the training pixels; a constant band keeps std 1."""
    stats = pixels.band_statistics
    if len(stats) == x_train.shape[1] and all(b.get("count") for b in stats):
        mean = np.array([b["mean"] for b in stats], np.float64)
        std = np.array([b["std"] for b in stats], np.float64)
        origin = f"the dataset's band statistics ({min(b['count'] for b in stats):,}+ valid pixels per band)"
    else:
        mean, std = x_train.mean(axis=0, dtype=np.float64), x_train.std(axis=0, dtype=np.float64)
        origin = f"the {len(x_train):,} training pixels (the dataset has no band statistics)"
    constant = std == 0
    if constant.any():
        feedback.info(f"Band(s) {', '.join(str(b + 1) for b in np.flatnonzero(constant))} hold one value: "
                      "standardised with std 1.")
        std[constant] = 1.0
    feedback.info(f"Inputs standardised per band with {origin}: mean {np.round(mean, 4).tolist()}, "
                  f"std {np.round(std, 4).tolist()}")
    return Standardization(mean, std, origin)


def split_by_chip(pixels: PixelSet, validation_fraction: float, rng: np.random.Generator) -> tuple[list, list]:
    """Chip numbers for training and validation, apart on the ground, and no chip left out.

    Chips that overlap (directly or through others, augmented copies of one source chip included) form one patch;
    whole patches go to one side, so no validation pixel is also a training pixel and no chip is dropped for
    touching the other side (chips piled onto small hand-drawn polygons lost them all). Patches are held out in a
    random order until about `validation_fraction` of the labelled pixels is, never a class's last patch for
    training.

    Raises:
        PatchworkError: All chips form one patch, so none can be held out apart from the rest.
    """
    chips = [i for i, y in enumerate(pixels.labels) if len(y)]
    if validation_fraction <= 0 or not chips:
        return chips, []
    patch = _overlapping_patches([pixels.windows[i] for i in chips], [pixels.groups[i] for i in chips])
    patches = sorted(set(patch))
    if len(patches) < 2:
        raise PatchworkError(
            f"INPUT: all {len(chips)} labelled chips overlap one another (they cover one patch of labels), so no chip "
            "can be held out for validation apart from the rest. Draw labels in more places (or sample chips that "
            "lie apart: fewer chips per class, a Poisson-disk sampler), or set VALIDATION_FRACTION to 0 to train "
            "without accuracy figures.")
    members: dict[int, list[int]] = {p: [] for p in patches}
    for chip, p in zip(chips, patch):
        members[p].append(chip)
    size = {p: sum(len(pixels.labels[c]) for c in members[p]) for p in patches}
    classes = {p: set(np.unique(np.concatenate([pixels.labels[c] for c in members[p]])).tolist()) for p in patches}
    training_patches = {cls: sum(cls in classes[p] for p in patches) for cls in set().union(*classes.values())}
    target, held, held_out = validation_fraction * sum(size.values()), 0, set()
    for p in rng.permutation(patches).tolist():
        if held >= target or len(held_out) == len(patches) - 1:
            break
        if any(training_patches[cls] <= 1 for cls in classes[p]):
            continue  # the last patch that trains this class stays in training
        held_out.add(p)
        held += size[p]
        for cls in classes[p]:
            training_patches[cls] -= 1
    if not held_out:
        raise PatchworkError(
            "INPUT: every patch of overlapping chips holds the only training pixels of some class, so none can be "
            "held out for validation. Draw each class in more than one place, or set VALIDATION_FRACTION to 0 to "
            "train without accuracy figures.")
    validation = [c for c, p in zip(chips, patch) if p in held_out]
    training = [c for c, p in zip(chips, patch) if p not in held_out]
    return training, validation


def _overlapping_patches(windows: list[Window], groups: list[int]) -> list[int]:
    """For each chip, the patch it belongs to: chips joined by overlapping windows or a shared source chip."""
    parent = list(range(len(windows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(a: int, b: int) -> None:
        parent[root(a)] = root(b)

    rows = np.array([[w.row_off, w.col_off, w.row_off + w.height, w.col_off + w.width] for w in windows])
    for i in range(len(windows)):  # a vector comparison per chip: 10,000 chips in well under a second
        later = np.arange(i + 1, len(windows))
        r0, c0, r1, c1 = rows[i]
        touching = later[(rows[later, 0] < r1) & (rows[later, 2] > r0) & (rows[later, 1] < c1) & (rows[later, 3] > c0)]
        for j in touching.tolist():
            join(i, j)
    first_of_group: dict[int, int] = {}
    for i, g in enumerate(groups):
        join(i, first_of_group.setdefault(g, i))
    return [root(i) for i in range(len(windows))]


def stratified_subsample(y: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most `limit` pixels keeping the class proportions (every class keeps at least one)."""
    if len(y) <= limit:
        return np.arange(len(y))
    classes, counts = np.unique(y, return_counts=True)
    quota = np.maximum(1, np.floor(counts * limit / len(y)).astype(int))
    picked = [rng.choice(np.flatnonzero(y == c), q, replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked))


@dataclass
class TrainResult:
    """What train_classifier made: classes, accuracy, confusion matrix, paths."""
    model: str
    classes: list[int]
    accuracy: float | None  # on the validation chips
    matrix: np.ndarray | None
    report: dict
    train_pixels: int
    validation_pixels: int
    onnx_agreement: float  # share of validation (or training) pixels where ONNX and scikit-learn agree
    seconds: float
    standardized_with: str | None = None  # where the standardisation figures came from; None: raw values


def require_trainable_classes(pixels: PixelSet) -> None:
    """The labelled pixels hold at least two classes, with ids 0 or more and two pixels a class on average."""
    all_labels = np.concatenate(pixels.labels) if pixels.labels else np.zeros(0, np.int64)
    classes = np.unique(all_labels)
    if len(classes) < 2:
        raise PatchworkError(f"INPUT: the labels hold {'no class' if not len(classes) else 'one class only'} "
                             f"({classes.tolist()}); a classifier needs at least two.")
    if len(all_labels) < 2 * len(classes):
        raise PatchworkError(f"INPUT: only {len(all_labels)} labelled pixels for {len(classes)} classes; sample "
                             "more or larger chips.")
    if classes.min() < 0:
        raise PatchworkError(f"INPUT: class ids must be 0 or more to make a class map, got {classes.tolist()}")


def _estimator_settings(parameters: dict | str | None) -> dict | None:
    """PARAMETERS as a dict (given as one, or as JSON text; empty: None)."""
    if isinstance(parameters, str):
        try:
            parameters = json.loads(parameters) if parameters.strip() else None
        except json.JSONDecodeError as exc:
            raise PatchworkError(f"PARAMETERS: not valid JSON ({exc}); e.g. {{\"n_estimators\": 200}}") from exc
    if parameters is not None and not isinstance(parameters, dict):
        raise PatchworkError('PARAMETERS: give a JSON object of estimator settings, e.g. {"n_estimators": 200}')
    return parameters


def _check_run_settings(validation_fraction: float, max_pixels: int, output_model: str) -> None:
    if not 0.0 <= validation_fraction < 1.0:
        raise PatchworkError(f"VALIDATION_FRACTION is between 0 and 1 (exclusive), got {validation_fraction}")
    if max_pixels < 1:
        raise PatchworkError(f"MAX_PIXELS must be at least 1, got {max_pixels}")
    if not output_model.lower().endswith(".onnx"):
        raise PatchworkError(f"OUTPUT_MODEL: give the model an .onnx name, not '{output_model}'")


@reports_errors
def train_classifier(
    source: str,
    output_model: str,
    *,
    labels: str | None = None,
    estimator: str = "random_forest",
    parameters: dict | str | None = None,
    validation_fraction: float = 0.2,
    max_pixels: int = 200_000,
    seed: int = 0,
    skops_copy: str | None = None,
    report: str | None = None,
    class_names: dict[int, str] | None = None,
    standardize: bool = False,
    feedback: Feedback | None = None,
    check_only: bool = False,
) -> TrainResult | None:
    """Train `estimator` on labelled pixels and write it as ONNX to `output_model`.

    Validation chips are held out by chip, and chips that overlap them are left out of training, so the accuracy
    is not inflated by neighbouring pixels.

    Args:
        source: A chip index with label chips, or a raster when `labels` is given.
        output_model: The ONNX model to write (.onnx), with its classes, names and colours.
        labels: A label raster of class ids on `source`'s grid, when `source` is a raster.
        estimator: One of ESTIMATORS ("random_forest", "extra_trees", "gradient_boosting", …).
        parameters: The estimator's settings, as a dict or JSON text; unknown ones are refused.
        validation_fraction: The share of chips held out for validation (0 to 1, exclusive).
        max_pixels: At most this many training pixels, drawn evenly across classes.
        seed: The seed of the split, the subsample and the estimator.
        skops_copy: A scikit-learn copy of the model to write too (.skops).
        report: An HTML report to write (accuracy, confusion matrix, per-class scores, band importance).
        class_names: Names of the classes by id (default: the label raster's category names).
        standardize: Train on (x − mean) / std per band, with the dataset's band statistics (dataset.json), else
            the training pixels'; the model's metadata carries them (standardization_mean / standardization_std)
            so classify applies them, and the .skops copy starts with them.
        feedback: Progress, cancel and messages (default: silent).
        check_only: Make the checks a run makes before it reads pixels (settings, outputs, packages, the label
            raster's grid), then return None.

    Returns:
        The model written, its classes and validation scores; None with `check_only`.

    Raises:
        PatchworkError: Bad settings, missing packages, too few labels or classes; nothing is written.
        Cancelled: `feedback` asked to stop; nothing is left behind.
    """
    feedback = feedback or SilentFeedback()
    started = time.perf_counter()
    parameters = _estimator_settings(parameters)
    _check_run_settings(validation_fraction, max_pixels, output_model)
    check_seed(seed)
    inputs = {"INPUT": source, "LABELS": labels}
    if not labels:
        inputs["INPUT chip"] = [r[k] for r in read_index(source) for k in ("image_path", "label_path") if r.get(k)]
    check_outputs({"OUTPUT_MODEL": output_model, "OUTPUT_SKOPS": skops_copy, "OUTPUT_REPORT": report}, inputs)
    for role, path in (("OUTPUT_MODEL", output_model), ("OUTPUT_SKOPS", skops_copy), ("OUTPUT_REPORT", report)):
        if path:
            require_writable_folder(os.path.dirname(os.path.abspath(path)), role)
    for package in ("skl2onnx", "onnx", "onnxruntime"):  # missing packages fail before any work
        require(package, "Training (to export and check the model)")
    model = make_estimator(estimator, parameters, seed, scale_inside=not standardize)  # fails before any reading
    if check_only:
        if labels:
            with RasterSource(source, "INPUT") as src, RasterSource(labels, "LABELS") as lbl:
                _check_label_raster(src, lbl)
        return None

    pixels = pixels_from_rasters(source, labels, feedback) if labels else pixels_from_index(source, feedback)
    require_trainable_classes(pixels)
    rng = np.random.default_rng(seed)
    train_chips, val_chips = split_by_chip(pixels, validation_fraction, rng)
    x_train = np.concatenate([pixels.features[i] for i in train_chips])
    y_train = np.concatenate([pixels.labels[i] for i in train_chips])
    chip_of = np.concatenate([np.full(len(pixels.labels[i]), i) for i in train_chips])
    standardization = standardization_for(pixels, x_train, feedback) if standardize else None
    if standardization:
        x_train = standardization.apply(x_train)
    if estimator == "knn" and max_pixels > KNN_MAX_PIXELS:
        feedback.info(f"knn keeps at most {KNN_MAX_PIXELS:,} training pixels: it compares every pixel it classifies "
                      "with each of them.")
        max_pixels = KNN_MAX_PIXELS
    keep = stratified_subsample(y_train, max_pixels, rng)
    x_train, y_train, chip_of = x_train[keep], y_train[keep], chip_of[keep]
    if len(np.unique(y_train)) < 2:
        raise PatchworkError("INPUT: the training chips hold one class only; lower VALIDATION_FRACTION or sample "
                             "more chips.")
    feedback.info(f"{estimator}: {len(y_train):,} training pixels from {len(train_chips)} chips, "
                  f"{sum(len(pixels.labels[i]) for i in val_chips):,} validation pixels from {len(val_chips)} chips")
    check_cancelled(feedback)
    fit_reporting(model, x_train, y_train, feedback, start=30.0, end=80.0)

    x_val = np.concatenate([pixels.features[i] for i in val_chips]) if val_chips else np.zeros((0, x_train.shape[1]))
    y_val = np.concatenate([pixels.labels[i] for i in val_chips]) if val_chips else np.zeros(0, np.int64)
    x_val = standardization.apply(x_val) if standardization else x_val.astype(np.float32)
    fitted_classes = [int(c) for c in model.classes_]
    known_names = {c: name for c, (name, _) in pixels.class_names.items()} | (class_names or {})
    names = [known_names.get(c, f"class {c}") for c in fitted_classes]
    colours = [pixels.class_names.get(c, ("", None))[1] for c in fitted_classes]
    # A nearest-neighbour model holds a (pixels x training pixels) distance matrix: small batches.
    batch = 8192 if estimator == "knn" else 262144
    aoa = applicability(x_train, _importances(model), chip_of, seed)  # where the model knows its data
    feedback.info(f"Area of applicability: a pixel is inside when its dissimilarity to the training pixels is at "
                  f"most {aoa['threshold']:.3f} (Meyer & Pebesma 2021; {len(aoa['points'])} training pixels kept).")
    onnx_bytes = export_onnx(model, x_train.shape[1], fitted_classes, names, pixels.band_names, batch,
                             colours if all(colours) else None, standardization, aoa)
    check_x = x_val if len(x_val) else x_train[:5000]
    agreement = onnx_agreement(onnx_bytes, model, check_x)
    accuracy = matrix = None
    scores: dict = {}
    if len(y_val):
        predicted = model.predict(x_val)
        accuracy = float((predicted == y_val).mean())
        matrix, scores = _scores(y_val, predicted, fitted_classes)
    write_file_atomically(output_model, onnx_bytes)
    if skops_copy:
        require("skops", "The .skops copy")
        import skops.io as sio

        write_file_atomically(skops_copy, sio.dumps(_with_standardization(model, standardization)))
    result = TrainResult(output_model, fitted_classes, accuracy, matrix, scores, len(y_train), len(y_val), agreement,
                         time.perf_counter() - started, standardization.origin if standardization else None)
    if report:
        write_file_atomically(report, html_report(result, estimator, model, names, pixels.band_names).encode("utf-8"))
    feedback.set_progress(100)
    return result


# How long one step of a growing ensemble may take: the cancel check and the progress bar wait for it.
FIT_STEP_SECONDS = 0.25


def fit_reporting(model, x: np.ndarray, y: np.ndarray, feedback: Feedback, start: float, end: float) -> None:
    """model.fit(x, y), reporting progress from `start` to `end` % and stopping within a step when cancelled.

    Forests grow a few trees at a time (warm start: the same trees as one fit, as each tree's seed is drawn
    in order), sized to take about FIT_STEP_SECONDS; gradient boosting reports and stops through its monitor.
    Other estimators fit in one call.
    """
    from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestClassifier

    if isinstance(model, (RandomForestClassifier, ExtraTreesClassifier)):
        # Steps are whole rounds of the cores (a step of fewer trees than cores leaves cores idle: steps of one
        # tree made the fit 1.76x a bare fit on 2 cores), and the pixels are converted to the trees' float32 once,
        # not at every step's fit (the same trees: the forest converts them so anyway).
        cores = available_cores()
        x = np.ascontiguousarray(x, dtype=np.float32)
        total, grown, step = model.n_estimators, 0, 2 * cores
        model.set_params(warm_start=True)
        try:
            while grown < total:
                added = min(step, total - grown)
                began = time.perf_counter()
                model.set_params(n_estimators=grown + added)
                model.fit(x, y)
                grown += added
                feedback.set_progress(start + (end - start) * grown / total)
                check_cancelled(feedback)
                per_tree = (time.perf_counter() - began) / added
                step = cores * max(2, int(FIT_STEP_SECONDS / max(per_tree, 1e-6)) // cores)
        finally:
            model.set_params(warm_start=False)  # the saved model and the report show the user's settings
    elif isinstance(model, GradientBoostingClassifier):
        def monitor(stage: int, booster, _locals) -> bool:
            feedback.set_progress(start + (end - start) * (stage + 1) / booster.n_estimators)
            return feedback.is_cancelled()

        model.fit(x, y, monitor=monitor)
        check_cancelled(feedback)
    else:
        model.fit(x, y)
        feedback.set_progress(end)
        check_cancelled(feedback)


def _with_standardization(model, standardization: Standardization | None):
    """The model to save for scikit-learn users: taking raw pixels, its standardisation in front."""
    if standardization is None:
        return model
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()  # fitted by hand: these are the figures the model was trained with
    scaler.mean_, scaler.scale_, scaler.var_ = standardization.mean, standardization.std, standardization.std ** 2
    scaler.n_features_in_, scaler.n_samples_seen_ = len(standardization.mean), 1
    return make_pipeline(scaler, model)


def export_onnx(model, n_bands: int, classes: list[int], names: list[str], band_names: list[str],
                max_batch_pixels: int = 262144, colours: list[str] | None = None,
                standardization: Standardization | None = None, aoa: dict | None = None) -> bytes:
    """The fitted model as ONNX (float input [pixels, bands], label and probability tensors) with metadata.

    With a standardisation, the graph takes standardised pixels and the metadata carries the figures
    (standardization_mean / standardization_std, as Deepness models do), which classify applies.
    """
    require("onnx", "Exporting a trained model to ONNX")
    to_onnx = require("skl2onnx", "Exporting a trained model to ONNX").to_onnx
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    onx = to_onnx(model, np.zeros((1, n_bands), np.float32), options={id(final): {"zipmap": False}},
                  target_opset=17)
    metadata = {
        "model_type": "Segmentor",
        "class_names": {str(i): name for i, name in enumerate(names)},
        "patchwork:class_values": classes,
        "patchwork:n_bands": n_bands,
        "patchwork:band_names": band_names,
        "patchwork:input_scale": 1.0,  # trained on the chips' own values: classify with SCALE 1, OFFSET 0
        "patchwork:input_offset": 0.0,
        "patchwork:trained_with": type(final).__name__,
        "patchwork:max_batch_pixels": max_batch_pixels,
    }
    if colours:
        metadata["patchwork:class_colors"] = colours
    if standardization is not None:
        metadata["standardization_mean"] = [float(v) for v in standardization.mean]
        metadata["standardization_std"] = [float(v) for v in standardization.std]
    if aoa is not None:
        metadata["patchwork:aoa"] = aoa
    for key, value in metadata.items():
        entry = onx.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    return onx.SerializeToString()


def onnx_agreement(onnx_bytes: bytes, model, pixels: np.ndarray) -> float:
    """Share of `pixels` where the exported ONNX model predicts the same class as scikit-learn."""
    ort = require("onnxruntime", "Checking the exported ONNX model")
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    labels = session.run([session.get_outputs()[0].name], {session.get_inputs()[0].name: pixels})[0]
    return float((labels.ravel() == model.predict(pixels)).mean()) if len(pixels) else 1.0


def _scores(y_true: np.ndarray, y_pred: np.ndarray, classes: list[int]) -> tuple[np.ndarray, dict]:
    matrix = confusion_matrix(count_pairs(y_true, y_pred), classes)
    scores = {}
    for i, c in enumerate(classes):
        tp = matrix[i, i]
        precision = tp / matrix[:, i].sum() if matrix[:, i].sum() else 0.0
        recall = tp / matrix[i].sum() if matrix[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[c] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                     "support": int(matrix[i].sum())}
    return matrix, scores


def _importances(model) -> np.ndarray | None:
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    if hasattr(final, "feature_importances_"):
        return np.asarray(final.feature_importances_)
    if hasattr(final, "coef_"):
        weights = np.abs(np.atleast_2d(final.coef_)).mean(axis=0)
        return weights / weights.sum()
    return None


def html_report(result: TrainResult, estimator: str, model, names: list[str], band_names: list[str]) -> str:
    """The training report as a standalone HTML page."""
    e = html.escape
    parts = [f"<h1>Patchwork: {e(estimator)} pixel classifier</h1>",
             f"<p>Model: {e(result.model)}<br>{result.train_pixels:,} training pixels; {result.validation_pixels:,} "
             f"validation pixels from chips held out whole. The ONNX export predicts the same class as "
             f"scikit-learn on {result.onnx_agreement:.4%} of the checked pixels.</p>"]
    if result.standardized_with:
        parts.append(f"<p>Inputs standardised per band, (x − mean) / std, with {e(result.standardized_with)}; the "
                     "model's metadata carries the figures and Classify applies them.</p>")
    if result.accuracy is not None:
        parts.append(f"<p><b>Validation accuracy: {result.accuracy:.2%}</b></p>")
        head = "".join(f"<th>{e(n)}</th>" for n in names)
        rows = "".join(
            f"<tr><th>{e(n)}</th>" + "".join(f"<td>{v:,}</td>" for v in result.matrix[i]) + "</tr>"
            for i, n in enumerate(names))
        parts.append(f"<h2>Confusion matrix (rows: true, columns: predicted)</h2><table><tr><th></th>{head}</tr>"
                     f"{rows}</table>")
        per_class = "".join(
            f"<tr><th>{e(n)}</th><td>{s['precision']:.3f}</td><td>{s['recall']:.3f}</td><td>{s['f1']:.3f}</td>"
            f"<td>{s['support']:,}</td></tr>" for n, s in zip(names, result.report.values()))
        parts.append("<h2>Per class</h2><table><tr><th></th><th>precision</th><th>recall</th><th>F1</th>"
                     f"<th>pixels</th></tr>{per_class}</table>")
    else:
        parts.append("<p>No validation chips (VALIDATION_FRACTION 0): no accuracy figures.</p>")
    importances = _importances(model)
    if importances is not None:
        labels = [b or f"band {i + 1}" for i, b in enumerate(band_names or [""] * len(importances))]
        rows = "".join(f"<tr><th>{e(b)}</th><td>{v:.3f}</td></tr>" for b, v in zip(labels, importances))
        parts.append(f"<h2>Band importance</h2><table>{rows}</table>")
    style = ("body{font-family:sans-serif;margin:1.5em} table{border-collapse:collapse} "
             "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Patchwork training report</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
