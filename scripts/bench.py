"""`make bench`: speed and memory of Patchwork's core against references measured in the same run.

Poisson-disk sampling: Patchwork's integer-lattice Bridson vs scipy.stats.qmc.PoissonDisk filling
the same square with the same radius. Both fill the space; the ratio of points per second is printed.
Augmentation: see scripts/bench_augment.py (throughput per op against albumentations, and training items of
ChipDataset against GDAL reads + albumentations).
Tiled inference: see scripts/bench_inference.py (one worker vs its compute and I/O floors, workers and Dask,
peak memory on a 200,000 px wide VRT and a 16,000² GeoTIFF).
What to label next: see scripts/bench_labelling.py (accuracy curves of suggested vs random labels).
Training a segmentation network: see scripts/bench_training.py (chips per second vs a bare in-memory PyTorch loop).
Ratios, not absolute times, are the result: they hold across machines.
"""
from __future__ import annotations

import argparse

import bench_augment  # sibling scripts
import bench_inference
import bench_labelling
import bench_training
import numpy as np
from bench_inference import paired, spread

from patchwork.core.data.sampling import Region, poisson_disk


def bench_poisson(size: int, radius: float, repeats: int) -> float:
    from scipy.stats import qmc

    region = Region(0, size - 1, 0, size - 1)
    found = {}

    def ours():
        found["ours"] = poisson_disk(region, radius, np.random.default_rng(1))

    def theirs():
        found["theirs"] = qmc.PoissonDisk(d=2, radius=radius / size, seed=1).fill_space() * size

    rounds = paired(repeats, ours, theirs)
    rates = [(len(found["ours"]) / mine) / (len(found["theirs"]) / scipy) for mine, scipy in rounds]
    low, ratio, high = spread(rates)
    print(f"{size:>6} px  r={radius:<5g} patchwork {len(found['ours']):>6} pts | scipy {len(found['theirs']):>6} pts | "
          f"points per second, patchwork ÷ scipy: {low:5.1f} / {ratio:5.1f} / {high:5.1f}x (min / median / max)")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller cases only")
    args = parser.parse_args()
    print("Poisson-disk sampling: patchwork vs scipy.stats.qmc.PoissonDisk (same square, same radius, "
          f"{args.repeats} paired rounds)")
    cases = [(2048, 128.0), (2048, 64.0), (4096, 64.0)]
    if not args.quick:
        cases += [(10980, 128.0)]  # one Sentinel-2 tile at 10 m
    ratios = [bench_poisson(size, radius, args.repeats) for size, radius in cases]
    target = 10.0
    verdict = "meets" if min(ratios) >= target else "MISSES"
    verdicts = [f"poisson-disk speed-up (medians): min {min(ratios):.1f}x, geometric mean "
                f"{np.exp(np.mean(np.log(ratios))):.1f}x ({verdict} the ≥{target:g}x target)"]
    print()
    verdicts += bench_augment.run(args.quick, args.repeats)
    print()
    verdicts += bench_augment.run_items(args.quick, args.repeats)
    print()
    verdicts += bench_inference.run(args.quick, args.repeats)
    print()
    verdicts += bench_labelling.run(args.quick, args.repeats)
    print()
    verdicts += bench_training.run(args.quick, args.repeats)
    print()
    verdicts += bench_training.run_forest(args.quick, args.repeats)
    print("\nSummary:\n  " + "\n  ".join(verdicts))


if __name__ == "__main__":
    main()
