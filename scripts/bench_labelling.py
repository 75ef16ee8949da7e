"""What to label next, simulated (part of `make bench`): labels chosen by suggestlabels vs as many chosen at random.

On the real Sentinel-2 scene, the rules map (NDVI/NDWI) is the known labelling: an "interpreter" who labels a pixel
gives its class there. A random forest learns the classes from the four bands and the labels so far; each round
adds labels chosen by `suggest_labels` on the forest's entropy map (spread apart, away from what is labelled,
balanced across classes; SELECTION weighted, the default, and least_sure) or as many chosen at random, and the
accuracy of each forest on every pixel of the scene is recorded. All arms start from the same random labels; several
seeds; means per round are printed.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
from osgeo import gdal, ogr

from patchwork.core import Places, classify, suggest_labels, write_geotiff
from patchwork.core.engine.uncertainty import from_probabilities

HERE = os.path.dirname(os.path.abspath(__file__))
SCENE = os.path.join(HERE, "..", "..", "shared", "data", "s2_bgrn_10m.tif")
RULES = os.path.join(HERE, "..", "resources", "models", "ndvi_ndwi_rules.json")


def _forest(features: np.ndarray, labelled: list[tuple[int, int]], truth: np.ndarray, seed: int):
    from sklearn.ensemble import RandomForestClassifier

    rows, cols = np.array(labelled).T
    forest = RandomForestClassifier(n_estimators=60, random_state=seed, n_jobs=1)
    forest.fit(features[:, rows, cols].T, truth[rows, cols])
    return forest


def _probabilities(forest, features: np.ndarray, classes: int) -> np.ndarray:
    """(K, h, w) class probabilities of every pixel (0 for a class the forest has not seen yet)."""
    flat = forest.predict_proba(features.reshape(len(features), -1).T)
    full = np.zeros((flat.shape[0], classes))
    full[:, forest.classes_] = flat
    return full.T.reshape(classes, *features.shape[1:]).astype(np.float32)


ARMS = ("weighted", "least_sure", "random")


def simulate(rounds: int, per_round: int, start: int, seed: int, folder: str) -> dict[str, list[float]]:
    """Accuracy per round of each arm (ARMS), from the same `start` random labels."""
    scene = gdal.Open(SCENE)
    features = scene.ReadAsArray().astype(np.float32) * 1e-4
    truth_path = classify(SCENE, RULES, os.path.join(folder, "truth.tif"), scale=1e-4).output
    truth = gdal.Open(truth_path).ReadAsArray().astype(int)
    gt, crs = scene.GetGeoTransform(), scene.GetProjection()
    classes = int(truth.max()) + 1
    rng = np.random.default_rng(seed)
    h, w = truth.shape
    first = [tuple(p) for p in np.column_stack(np.unravel_index(rng.choice(h * w, start, replace=False), (h, w)))]
    curves = {}
    for arm in ARMS:
        labelled, accuracies = list(first), []
        arm_rng = np.random.default_rng([seed, 1])
        for step in range(rounds + 1):
            forest = _forest(features, labelled, truth, seed)
            probabilities = _probabilities(forest, features, classes)
            predicted = probabilities.argmax(axis=0)
            accuracies.append(float((predicted == truth).mean()))
            if step == rounds:
                break
            if arm == "random":
                taken = set(labelled)
                while len(labelled) < len(first) + (step + 1) * per_round:
                    cell = (int(arm_rng.integers(h)), int(arm_rng.integers(w)))
                    if cell not in taken:
                        taken.add(cell)
                        labelled.append(cell)
                continue
            entropy = os.path.join(folder, f"entropy_{arm}_{seed}_{step}.tif")
            predicted_map = os.path.join(folder, f"classes_{arm}_{seed}_{step}.tif")
            write_geotiff(entropy, from_probabilities(probabilities, "entropy")[None], gt, crs)
            write_geotiff(predicted_map, predicted[None].astype(np.uint8), gt, crs)
            done = Places([f"POINT ({gt[0] + (c + 0.5) * gt[1]} {gt[3] + (r + 0.5) * gt[5]})" for r, c in labelled],
                          crs)
            out = os.path.join(folder, f"next_{arm}_{seed}_{step}.gpkg")
            suggest_labels(entropy, out, count=per_round, min_distance=4, classes=predicted_map, labelled=done,
                           balance=True, selection=arm, seed=seed)
            source = ogr.Open(out)
            for feature in source.GetLayer(0):
                point = feature.GetGeometryRef()
                labelled.append((int((point.GetY() - gt[3]) // gt[5]), int((point.GetX() - gt[0]) // gt[1])))
            source = None
        curves[arm] = accuracies
    return curves


def run(quick: bool, repeats: int) -> list[str]:
    """Print the two accuracy curves; return the summary line."""
    seeds = range(3 if quick else 8)
    rounds, per_round, start = 5, 20, 40
    print(f"What to label next: suggestlabels vs random, {start} random labels then {rounds} rounds of {per_round}, "
          f"random forest on the Sentinel-2 scene's bands, rules map as the known labelling, {len(seeds)} seeds")
    runs = []
    with tempfile.TemporaryDirectory(prefix="patchwork-bench-labels-") as folder:
        for seed in seeds:
            runs.append(simulate(rounds, per_round, start, seed, folder))
    means = {arm: np.mean([run[arm] for run in runs], axis=0) for arm in ARMS}
    print("  labels      " + "".join(f"{start + i * per_round:>8}" for i in range(rounds + 1)))
    for arm in ARMS:
        print(f"  {arm:<11} " + "".join(f"{a:8.2%}" for a in means[arm]))
    weighted, randomly = means["weighted"][-1], means["random"][-1]
    errors = (1 - randomly) / max(1 - weighted, 1e-9)
    return [f"what to label next: {weighted:.2%} accuracy with {start + rounds * per_round} suggested labels "
            f"(weighted) vs {randomly:.2%} with random ones ({errors:.2f}x fewer errors) and "
            f"{means['least_sure'][-1]:.2%} least-sure; mean of {len(seeds)} seeds"]


if __name__ == "__main__":
    for line in run(quick=False, repeats=1):
        print(line)
