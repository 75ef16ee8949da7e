"""Augmentation throughput, run by `make bench` (see scripts/bench.py): Patchwork vs albumentations 2.

Both get the same chips, each in its own layout (Patchwork bands-first, albumentations bands-last), the
same op with probability 1, with and without a label (albumentations' mask), on 4 x 256² float32 and on
3 x 256² uint8 chips. Runs are paired: each round times Patchwork and then albumentations over the same
chips, and the ratio (albumentations' time / Patchwork's, > 1 means Patchwork is faster) is reported as
min / median / max over the rounds. Patchwork also moves the geotransform, seeds a generator per chip
(reproducible per chip, no global state), honours nodata and never wraps integers.

The closest albumentations op stands for each Patchwork op: brightness (a factor per band) is
MultiplicativeNoise per channel. albumentations has two contrasts: ColorJitter's stretches about the
mean as Patchwork's ContrastJitter does (RGB only, so on the uint8 chips), RandomBrightnessContrast's only
multiplies, which is Patchwork's BrightnessJitter with one factor for all bands: each is compared with its
twin. albumentations brings OpenCV and StringZilla, whose kernels Patchwork uses when present
(core/kernels.py); the last column is Patchwork without them, as inside QGIS.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time

import numpy as np

import patchwork.core as pw
from patchwork.core.data import kernels

GEOTRANSFORM = (500000.0, 10.0, 0.0, 4800000.0, 0.0, -10.0)


def _seconds(function, chips: list, label) -> float:
    start = time.perf_counter()
    for i, chip in enumerate(chips):
        function(chip, label, i)
    return time.perf_counter() - start


@contextlib.contextmanager
def _numpy_kernels():
    """Patchwork as inside QGIS: no OpenCV, no StringZilla."""
    saved = kernels.opencv, kernels._stringzilla
    kernels.opencv = kernels._stringzilla = lambda: None
    try:
        yield
    finally:
        kernels.opencv, kernels._stringzilla = saved


def _pairs(A, dtype: str) -> list[tuple[str, pw.Augmentation, object]]:  # noqa: N803 - albumentations' alias
    """(name, Patchwork op, albumentations op) with the same effect; noise σ in data units."""
    sigma = 0.01 if dtype == "float32" else 5.0
    relative_sigma = sigma if dtype == "float32" else sigma / 255.0
    noise = A.GaussNoise(std_range=(relative_sigma, relative_sigma), mean_range=(0, 0), per_channel=True, p=1.0)
    brightness = A.MultiplicativeNoise(multiplier=(0.85, 1.15), per_channel=True, elementwise=False, p=1.0)
    return [
        ("horizontal flip", pw.RandomFlip(1.0, 0.0), A.HorizontalFlip(p=1.0)),
        ("vertical flip", pw.RandomFlip(0.0, 1.0), A.VerticalFlip(p=1.0)),
        ("rotate 90", pw.RandomRotate90(p=1.0), A.RandomRotate90(p=1.0)),
        ("crop 128", pw.RandomCrop(128), A.RandomCrop(128, 128, p=1.0)),
        ("brightness ×0.85–1.15 per band", pw.BrightnessJitter([0.85, 1.15]), brightness),
        ("contrast ×0.85–1.15, x·α", pw.BrightnessJitter([0.85, 1.15], per_band=False),
         A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=0.15, p=1.0)),
        *([("contrast about the mean", pw.ContrastJitter([0.85, 1.15], per_band=False),
            A.ColorJitter(brightness=0, contrast=(0.85, 1.15), saturation=0, hue=0, p=1.0))] if dtype == "uint8"
          else []),
        (f"gaussian noise σ={sigma:g}", pw.GaussianNoise(sigma), noise),
        ("band dropout", pw.BandDropout(p=0.5), A.ChannelDropout(channel_drop_range=(1, 2), fill=0, p=1.0)),
        ("chain flip+rot90+bright+noise",
         pw.Compose([pw.RandomFlip(), pw.RandomRotate90(0.75), pw.BrightnessJitter([0.85, 1.15]),
                     pw.GaussianNoise(sigma)]),
         A.Compose([A.HorizontalFlip(), A.VerticalFlip(), A.RandomRotate90(p=0.75), brightness, noise])),
    ]


def _chips(rng: np.random.Generator, dtype: str, n: int) -> list[np.ndarray]:
    if dtype == "float32":
        return [rng.random((4, 256, 256), dtype=np.float32) for _ in range(n)]
    return [rng.integers(0, 256, (3, 256, 256), dtype=np.uint8) for _ in range(n)]


def run(quick: bool, repeats: int, only: str = "") -> list[str]:
    """Print the table; return the summary lines. `only`: the ops whose name contains it."""
    try:
        import albumentations as A  # noqa: N812 - its documented alias
    except ImportError:
        return ["augmentation: albumentations is not installed (requirements-bench.txt); comparison skipped"]
    # glibc serves big arrays by mmap until one that big is freed; each fresh mapping then page-faults (very slow in
    # a sandbox). Whichever library first frees a big array speeds up both: start both in that steady state.
    steady = np.empty(16 << 20, np.uint8)
    del steady
    rng = np.random.default_rng(0)
    n = 50 if quick else 200
    rounds = max(3, repeats + (2 if quick else 4))
    label = rng.integers(0, 3, (256, 256)).astype(np.uint8)
    accelerators = [name for name, found in (("OpenCV", kernels.opencv()), ("StringZilla", kernels._stringzilla()))
                    if found is not None]
    print(f"Augmentation throughput: {n} chips per round, {rounds} paired rounds; ratio = albumentations' time / "
          f"Patchwork's (> 1: Patchwork faster), min / median / max (albumentations {A.__version__}; Patchwork "
          f"with {' and '.join(accelerators) or 'numpy only'}, and with numpy only as inside QGIS)")
    medians, worst, plain_medians = [], [], []
    for dtype in ("float32", "uint8"):
        chips_chw = _chips(rng, dtype, n)
        chips_hwc = [np.ascontiguousarray(c.transpose(1, 2, 0)) for c in chips_chw]
        shape = "x".join(map(str, chips_chw[0].shape))
        for with_label in (True, False):
            mask = label if with_label else None
            print(f"  {shape} {dtype}, {'with' if with_label else 'without'} a label")
            for name, ours, theirs in _pairs(A, dtype):
                if only not in name:
                    continue
                def patchwork(chip, lab, i, op=ours):
                    return op(chip, lab, GEOTRANSFORM, seed=i)

                def albumentations(chip, lab, i, op=theirs):
                    return op(image=chip) if lab is None else op(image=chip, mask=lab)

                _seconds(patchwork, chips_chw[:5], mask)  # warm caches and lazy imports on both sides
                _seconds(albumentations, chips_hwc[:5], mask)
                ratios, plain = [], []
                for _ in range(rounds):
                    ours_s = _seconds(patchwork, chips_chw, mask)
                    theirs_s = _seconds(albumentations, chips_hwc, mask)
                    with _numpy_kernels():
                        plain_s = _seconds(patchwork, chips_chw, mask)
                    ratios.append(theirs_s / ours_s)
                    plain.append(theirs_s / plain_s)
                median = statistics.median(ratios)
                medians.append(median)
                plain_medians.append(statistics.median(plain))
                worst.append((median, f"{name} ({dtype}, {'label' if with_label else 'no label'})"))
                print(f"    {name:<32} patchwork {n / ours_s:7.0f} chips/s | albumentations {n / theirs_s:7.0f} "
                      f"chips/s | ratio {min(ratios):5.2f} / {median:5.2f} / {max(ratios):5.2f} | numpy only "
                      f"{plain_medians[-1]:5.2f}")
    low, low_name = min(worst)
    verdict = "meets" if low >= 1.0 else "MISSES"
    return [f"augmentation vs albumentations {A.__version__}: median ratios {low:.2f}x ({low_name}) to "
            f"{max(medians):.2f}x; {verdict} the 'at least 1.0x on every shared op' target; with numpy only "
            f"(inside QGIS) {min(plain_medians):.2f}x to {max(plain_medians):.2f}x"]


if __name__ == "__main__":
    import sys

    names = [a for a in sys.argv[1:] if not a.startswith("--")]
    print("\n".join(run("--quick" in sys.argv, 3, names[0] if names else "")))


def _chip_index(work: str, name: str, raster: str, labels: str) -> str:
    from patchwork.core import RegularSampler, sample_chips

    return sample_chips(raster, RegularSampler(step=32), 64, os.path.join(work, name), labels=labels).index_path


def run_items(quick: bool, repeats: int) -> list[str]:
    """Training items: `ChipDataset` (chip files read, checked against the index, the geometric pipeline drawn)
    against GDAL reads of the same image and label files + albumentations' flips and quarter turns, per item.

    Two references: the same item (the arrays, and the chip's geotransform and CRS, which a geo-aware loop keeps:
    ChipDataset's items carry both) and the bare arrays (a floor: no georeferencing read at all).
    """
    try:
        import albumentations as A  # noqa: N812 - its documented alias
    except ImportError:
        return ["training items: albumentations is not installed (requirements-bench.txt); comparison skipped"]
    from osgeo import gdal

    from patchwork.core import ChipDataset, classify, read_index

    work = tempfile.mkdtemp(prefix="patchwork-bench-items-")
    shared = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
    rules = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources", "models",
                         "ndvi_ndwi_rules.json")
    naip = os.path.join(shared, "naip_rgbn_5m_2019.tif")
    s2 = gdal.Translate(os.path.join(work, "s2_float32.tif"), os.path.join(shared, "s2_bgrn_10m.tif"),
                        outputType=gdal.GDT_Float32)
    s2 = None  # noqa: F841 - (closed: written)
    cases = {
        "uint8": _chip_index(work, "naip", naip, classify(naip, rules, os.path.join(work, "naip_classes.tif"),
                                                         bands=[3, 2, 1, 4], scale=1 / 255).output),
        "float32": _chip_index(work, "s2", os.path.join(work, "s2_float32.tif"), classify(
            os.path.join(work, "s2_float32.tif"), rules, os.path.join(work, "s2_classes.tif"), scale=1e-4).output),
    }
    theirs = A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.75)])
    rounds = max(3, repeats + (2 if quick else 4))
    print(f"Training items (64 px chips with labels, the geometric pipeline): ChipDataset vs GDAL reads + "
          f"albumentations {A.__version__}, {rounds} paired rounds, alternating; ratio = the reference's time / "
          "ChipDataset's (> 1: Patchwork faster), min / median / max")
    medians, floors = [], []
    for dtype, index in cases.items():
        records = read_index(index)
        dataset = ChipDataset(index, "geometric", seed=0)

        def patchwork(dataset=dataset) -> float:
            began = time.perf_counter()
            for i in range(len(dataset)):
                dataset[i]
            return time.perf_counter() - began

        def reference(georeferenced: bool, records=records) -> float:
            began = time.perf_counter()
            for record in records:
                image, label = gdal.Open(record["image_path"]), gdal.Open(record["label_path"])
                if georeferenced:
                    image.GetGeoTransform(), image.GetProjection()
                theirs(image=np.ascontiguousarray(image.ReadAsArray().transpose(1, 2, 0)), mask=label.ReadAsArray())
                image = label = None
            return time.perf_counter() - began

        patchwork(), reference(True), reference(False)  # warm the file cache and lazy imports on all sides
        same, bare, ours = [], [], []
        for epoch in range(rounds):
            dataset.set_epoch(epoch)
            ours.append(patchwork())
            same.append(reference(True) / ours[-1])
            bare.append(reference(False) / patchwork())
        medians.append(statistics.median(same))
        floors.append(statistics.median(bare))
        print(f"  {dtype:<8} {len(records)} chips: ChipDataset {len(records) / statistics.median(ours):6.0f} items/s "
              f"| vs the same item (arrays, geotransform, CRS) {min(same):5.2f} / {medians[-1]:5.2f} / "
              f"{max(same):5.2f} | vs bare arrays {min(bare):5.2f} / {floors[-1]:5.2f} / {max(bare):5.2f}")
    verdict = "meets" if min(medians) >= 1.2 else "MISSES"
    return [f"training items vs GDAL reads + albumentations, the same item: median {medians[0]:.2f}x (uint8), "
            f"{medians[1]:.2f}x (float32), {verdict} the ≥1.2x target; vs bare arrays {floors[0]:.2f}x and "
            f"{floors[1]:.2f}x"]
