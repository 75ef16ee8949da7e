"""Training a segmentation network: chips per second of `train_segmentation` (chips read from disk and augmented
per batch through ChipDataset) against a bare PyTorch loop over the same chips held in memory as tensors, the same
network, batch, loss and optimiser. The target: the data pipeline is not the bottleneck (≥ 0.8× the bare loop)."""
from __future__ import annotations

import os
import statistics
import tempfile
import time

import numpy as np

from patchwork.core import RegularSampler, classify, sample_chips

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")


def bare_loop(torch, images: np.ndarray, targets: np.ndarray, weights: np.ndarray, batch: int, epochs: int,
              seed: int) -> float:
    """Chips per second of a plain training loop over in-memory tensors (the same U-Net, Adam, weighted loss)."""
    from patchwork.core.tasks.train_segmentation import IGNORE, build_unet

    torch.manual_seed(seed)
    net = build_unet(torch, images.shape[1], len(weights))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.003)
    loss_of = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32), ignore_index=IGNORE)
    x_all, y_all = torch.from_numpy(images), torch.from_numpy(targets)
    net.train()
    rates = []
    for epoch in range(epochs):
        order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(len(images)))
        began = time.perf_counter()
        for start in range(0, len(images), batch):
            picked = order[start : start + batch]
            optimiser.zero_grad()
            loss = loss_of(net(x_all[picked]), y_all[picked])
            loss.backward()
            optimiser.step()
        rates.append(len(images) / (time.perf_counter() - began))
    return statistics.median(rates)


def run(quick: bool, repeats: int) -> list[str]:
    try:
        import torch
    except ImportError:
        print("Training a segmentation network: PyTorch is not installed; skipped.")
        return ["network training: skipped (no PyTorch)"]
    from patchwork.core import ChipDataset, read_index
    from patchwork.core.tasks.train_segmentation import _Data, spatial_split, train_segmentation

    work = tempfile.mkdtemp(prefix="patchwork-bench-training-")
    ortho = os.path.join(SHARED, "ortho_rgba_2cm.tif")
    labels = classify(ortho, os.path.join(SHARED, "models", "one_output_sigmoid_red_detector.onnx"),
                      os.path.join(work, "red.tif"), bands=[1, 2, 3], scale=1 / 255).output
    index = sample_chips(ortho, RegularSampler(step=32), 64, os.path.join(work, "chips"), labels=labels).index_path
    records = read_index(index)
    training, _validation = spatial_split(records, 0.2, 0)
    epochs, batch = (2 if quick else 3), 8
    print(f"Training a segmentation network: {len(training)} training chips of 64 px (4 bands), batch {batch}, "
          f"{epochs} epochs a run, {repeats} paired runs (Patchwork, then the bare loop)")
    ratios = []
    for pair in range(repeats):
        for pipeline in ([None, "geometric"] if not quick else [None]):
            result = train_segmentation(index, os.path.join(work, f"net{pair}.onnx"), pipeline=pipeline,
                                        epochs=epochs, batch_size=batch, patience=epochs, seed=pair)
            ours = statistics.median(len(training) / e["train_seconds"] for e in result.history)
            # the bare loop's chips: the same ones, read and prepared once, then held in memory
            data = _Data(ChipDataset(index), {v: i for i, v in enumerate(result.class_values)}, result.input_scale,
                         *_standardisation(result.output), 64)
            images, targets = data.batch(training)
            weights = np.ones(len(result.class_values))
            bare = bare_loop(torch, images, targets, weights, batch, epochs, pair)
            ratios.append(ours / bare)
            print(f"  pair {pair + 1} ({pipeline or 'no augmentation'}): patchwork {ours:6.1f} chips/s, bare loop "
                  f"{bare:6.1f} chips/s → {ours / bare:.2f}x")
    median = statistics.median(ratios)
    verdict = "meets" if median >= 0.8 else "MISSES"
    return [f"network training: median {median:.2f}x the bare in-memory loop's chips/s ({verdict} the ≥0.8x target)"]


def run_forest(quick: bool, repeats: int) -> list[str]:
    """The random forest's fit as Train pixel classifier runs it (grown in steps, for progress and cancel) against
    one bare `fit` of the same forest on the same pixels, paired and alternating: NAIP's pixels, the rules classes."""
    from osgeo import gdal
    from sklearn.ensemble import RandomForestClassifier

    from patchwork.core import SilentFeedback
    from patchwork.core.tasks.train_classifier import fit_reporting

    work = tempfile.mkdtemp(prefix="patchwork-bench-forest-")
    naip = os.path.join(SHARED, "naip_rgbn_5m_2019.tif")
    rules = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources", "models",
                         "ndvi_ndwi_rules.json")
    classes = classify(naip, rules, os.path.join(work, "classes.tif"), bands=[3, 2, 1, 4], scale=1 / 255).output
    x = gdal.Open(naip).ReadAsArray().reshape(4, -1).T.astype(np.float64)
    y = gdal.Open(classes).ReadAsArray().ravel()
    pick = np.random.default_rng(0).choice(len(x), min(len(x), 50_000 if quick else 200_000), replace=False)
    x, y = x[pick], y[pick]
    ratios = []
    for pair in range(max(3, repeats)):
        forest = dict(n_estimators=100, max_depth=16, n_jobs=-1, random_state=pair)  # Patchwork's default forest
        start = time.perf_counter()
        RandomForestClassifier(**forest).fit(x, y)
        bare = time.perf_counter() - start
        start = time.perf_counter()
        fit_reporting(RandomForestClassifier(**forest), x, y, SilentFeedback(), 0.0, 100.0)
        ratios.append((time.perf_counter() - start) / bare)
    print(f"Random forest fit (100 trees, depth 16, {len(x):,} NAIP pixels): grown in steps with progress and "
          f"cancel vs one bare fit, {len(ratios)} paired rounds: {min(ratios):.2f} / {statistics.median(ratios):.2f} / "
          f"{max(ratios):.2f}x the time")
    median = statistics.median(ratios)
    return [f"forest fit with progress and cancel: median {median:.2f}x a bare fit "
            f"({'meets' if median <= 1.2 else 'MISSES'} the ≤1.2x target)"]


def _standardisation(model: str) -> tuple[np.ndarray, np.ndarray]:
    import json

    import onnx

    meta = {p.key: json.loads(p.value) for p in onnx.load(model).metadata_props}
    return (np.array(meta["standardization_mean"], np.float32).reshape(-1, 1, 1),
            np.array(meta["standardization_std"], np.float32).reshape(-1, 1, 1))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    print("\n".join(run(arguments.quick, arguments.repeats)))
