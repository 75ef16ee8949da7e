"""Augmentation throughput, run by `make bench` (see scripts/bench.py): Patchwork vs albumentations.

Both get the same 4-band float32 256 x 256 chips, each in its own layout (Patchwork bands-first,
albumentations bands-last), with a label (albumentations' mask), and the same op with probability 1.
Chips per second; ratio > 1 means Patchwork is faster. Patchwork also moves the geotransform, and
seeds a generator per chip (reproducible per chip, no global RNG); albumentations draws from Python's
global `random`.
"""
from __future__ import annotations

import time

import numpy as np

from patchwork.core import augment as pw


def _rate(function, chips: list, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i, chip in enumerate(chips):
            function(chip, i)
        best = min(best, time.perf_counter() - start)
    return len(chips) / best


def run(quick: bool, repeats: int) -> list[str]:
    try:
        import albumentations as A  # noqa: N812 - its documented alias
    except ImportError:
        return ["augmentation: albumentations is not installed (requirements-dev.txt); comparison skipped"]
    rng = np.random.default_rng(0)
    n = 100 if quick else 400
    chips_chw = [rng.random((4, 256, 256), dtype=np.float32) for _ in range(n)]
    chips_hwc = [np.ascontiguousarray(c.transpose(1, 2, 0)) for c in chips_chw]
    label = rng.integers(0, 3, (256, 256)).astype(np.uint8)
    gt = (500000.0, 10.0, 0.0, 4800000.0, 0.0, -10.0)
    pairs = [
        ("horizontal flip", pw.RandomFlip(1.0, 0.0), A.HorizontalFlip(p=1.0)),
        ("vertical flip", pw.RandomFlip(0.0, 1.0), A.VerticalFlip(p=1.0)),
        ("rotate 90", pw.RandomRotate90(p=1.0), A.RandomRotate90(p=1.0)),
        ("crop 128", pw.RandomCrop(128), A.RandomCrop(128, 128, p=1.0)),
        ("brightness ×0.85–1.15 per band", pw.BrightnessJitter([0.85, 1.15]),
         A.MultiplicativeNoise(multiplier=(0.85, 1.15), per_channel=True, elementwise=False, p=1.0)),
        ("gaussian noise σ=0.01", pw.GaussianNoise(0.01), A.GaussNoise(var_limit=(1e-4, 1e-4), mean=0, p=1.0)),
        ("band dropout", pw.BandDropout(p=0.5), A.ChannelDropout(channel_drop_range=(1, 2), fill_value=0, p=1.0)),
        ("default chain", pw.Compose([pw.RandomFlip(), pw.RandomRotate90(0.75), pw.BrightnessJitter([0.85, 1.15]),
                                      pw.GaussianNoise(0.01)]),
         A.Compose([A.HorizontalFlip(), A.VerticalFlip(), A.RandomRotate90(p=0.75),
                    A.MultiplicativeNoise(multiplier=(0.85, 1.15), per_channel=True, elementwise=False, p=1.0),
                    A.GaussNoise(var_limit=(1e-4, 1e-4), mean=0, p=1.0)])),
    ]
    print(f"Augmentation throughput: {n} chips of 4 x 256 x 256 float32, best of {repeats} "
          f"(albumentations {A.__version__}; both carry a label, Patchwork also the geotransform)")
    ratios = []
    for name, ours, theirs in pairs:
        ours_rate = _rate(lambda chip, i, op=ours: op(chip, label, gt, seed=i), chips_chw, repeats)
        theirs_rate = _rate(lambda chip, i, op=theirs: op(image=chip, mask=label), chips_hwc, repeats)
        ratios.append(ours_rate / theirs_rate)
        print(f"  {name:<32} patchwork {ours_rate:8.0f} chips/s | albumentations {theirs_rate:8.0f} chips/s | "
              f"{ratios[-1]:5.2f}x")
    worst = min(ratios)
    verdict = "meets" if worst >= 1.0 else "MISSES"
    return [f"augmentation vs albumentations: worst {worst:.2f}x, best {max(ratios):.2f}x ({verdict} the "
            "'at least as fast on every shared op' target)"]


if __name__ == "__main__":
    import sys

    print("\n".join(run("--quick" in sys.argv, 3)))
