"""`make demo`: the Patchwork workflow on the built-in example scene (or SCENE=path/to/raster.tif).

1. Sample training chips (Poisson-disk, with label chips when the example scene is used), write the
   chip dataset and a PNG quick-look of the chips over the scene; augment them (default preset).
2. Classify the scene with the shipped NDVI/NDWI rules model, tiled with overlap and soft voting,
   check it against one full-scene model call pixel by pixel, and write the styled class map, a
   PNG quick-look and (for the example scene) a comparison with its true classes.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from patchwork.core import PoissonDiskSampler, sample_chips
from patchwork.core.augmented import augment_chips
from patchwork.core.compare import compare_classifications
from patchwork.core.example import example_scene, write_example_scene
from patchwork.core.geometry import Window
from patchwork.core.inference import classify, full_scene_prediction
from patchwork.core.quicklook import render_class_map, render_quicklook
from patchwork.core.raster import RasterSource
from patchwork.core.writer import write_geotiff

RESOURCES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources")
RULES = os.path.join(RESOURCES, "models", "ndvi_ndwi_rules.json")
PRESETS = os.path.join(RESOURCES, "augmentations")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scene", help="a georeferenced raster (default: the built-in example scene)")
    parser.add_argument("--out", default="demo-output", help="output folder")
    parser.add_argument("--chip-size", type=int, default=64)
    parser.add_argument("--min-distance", type=float, default=64)
    parser.add_argument("--tile-size", type=int, default=256, help="classification tile size (px)")
    parser.add_argument("--scale", type=float, default=1.0, help="input scale (0.0001 for Sentinel-2 DN)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    labels = None
    if args.scene:
        scene = args.scene
        print(f"scene: {scene}")
    else:
        scene = write_example_scene(os.path.join(args.out, "example_scene.tif"))
        with RasterSource(scene) as src:
            _, classes = example_scene(src.height, src.width)
            labels = write_geotiff(os.path.join(args.out, "example_labels.tif"), classes, src.geotransform,
                                   src.crs_wkt, nodata=255, band_descriptions=["class (0 water, 1 bare, 2 vegetation)"])
        print(f"scene: built-in example (blue, green, red, NIR reflectance) -> {scene}")

    with RasterSource(scene) as src:
        chip = min(args.chip_size, src.height, src.width)
        print(f"  {src.width} x {src.height} px, {src.count} bands, {src.dtype}")
        bands = (3, 2, 1) if src.count >= 3 else (1, 1, 1)

    sampler = PoissonDiskSampler(min_distance=args.min_distance, count=0, seed=7)
    started = time.perf_counter()
    result = sample_chips(scene, sampler, chip, os.path.join(args.out, "chips"),
                          labels=labels, boundary="shift", max_nodata=0.25)
    seconds = time.perf_counter() - started
    print(f"sample chips: {result.chip_count} chips of {chip} px, Poisson-disk ≥ {args.min_distance:g} px apart "
          f"({seconds:.2f} s)")
    print(f"  {result.coverage.describe()}")
    print(f"  skipped: {result.rejected['nodata']} candidates with more than 25% nodata")
    print(f"  chip folder: {result.out_dir}  (images/{', labels/' if labels else ''} dataset.json)")
    print(f"  chip index:  {result.index_path}")
    quicklook = render_quicklook(scene, result.windows, os.path.join(args.out, "chips_quicklook.png"), bands=bands)
    print(f"  quick-look:  {quicklook}")
    print("Same run in QGIS: Processing Toolbox > Patchwork > Chips > Sample chips, or headless:")
    print(f"  qgis_process.bin run patchwork:samplechips -- INPUT={scene} SAMPLER=2 CHIP_SIZE={chip} "
          f"MIN_DISTANCE={args.min_distance:g} COUNT=0 SEED=7 MAX_NODATA=0.25 OUTPUT_DIR=chips OUTPUT=chips.gpkg")
    augmented = augment_chips(result.index_path, os.path.join(PRESETS, "default.json"),
                              os.path.join(args.out, "augmented"), copies=2, seed=7)
    print(f"augment chips: {augmented.chip_count} augmented chips (2 per chip; flips, quarter turns, brightness, "
          f"noise; geotransforms turned with the pixels) in {augmented.seconds:.2f} s")
    print(f"  augmented index: {augmented.index_path}")
    print()
    classify_scene(scene, labels, args)
    return 0


def classify_scene(scene: str, labels: str | None, args) -> None:
    with RasterSource(scene) as src:
        if src.count != 4:
            print(f"classify: skipped, the shipped rules model needs 4 bands (blue, green, red, NIR); the scene has "
                  f"{src.count}")
            return
    tile, overlap = min(args.tile_size, 256), args.tile_size // 4
    out = os.path.join(args.out, "classes.tif")
    result = classify(scene, RULES, out, tile_size=tile, overlap=overlap, window="hann", aggregation="softvote",
                      scale=args.scale, probabilities=os.path.join(args.out, "class_probabilities.tif"))
    print(f"classify: '{result.info.name}', {result.tiles} tiles of {tile} px, overlap {overlap} px, Hann window, "
          f"soft vote ({result.seconds:.2f} s)")
    reference, valid = full_scene_prediction(scene, RULES, scale=args.scale)
    with RasterSource(out) as written:
        classes, _ = written.read(Window(0, 0, written.height, written.width))
    expected = np.where(valid, np.asarray(result.info.class_values)[reference], 255)
    agree = (classes[0] == expected).mean()
    print(f"  tiled vs one full-scene model call: {agree:.2%} of {expected.size:,} pixels agree "
          f"({int((~valid).sum()):,} nodata pixels stay nodata)")
    counts = np.bincount(classes[0][valid].ravel(), minlength=len(result.info.class_values))
    for value, name in zip(result.info.class_values, result.info.class_names):
        print(f"    {value} {name:<18} {counts[value] / valid.sum():6.1%}")
    print(f"  class map:   {out}  (colour table, class names, style {os.path.basename(result.style)})")
    print(f"  quick-look:  {render_class_map(out, os.path.join(args.out, 'classes_quicklook.png'))}")
    if labels:
        report = os.path.join(args.out, "comparison.html")
        truth = compare_classifications(labels, out, report=report)
        print(f"  against the example's true classes: {truth.agreement:.2%} agree, kappa {truth.kappa:.3f} "
              f"(report {report})")
    print("Same run in QGIS: Processing Toolbox > Patchwork > Inference > Classify raster (tiled), or headless:")
    print(f"  qgis_process.bin run patchwork:classify -- INPUT={scene} MODEL={RULES} TILE_SIZE={tile} "
          f"OVERLAP={overlap} WINDOW=1 AGGREGATION=1 OUTPUT=classes.tif")


if __name__ == "__main__":
    sys.exit(main())
