"""`make demo`: the whole Patchwork workflow on the built-in example scene (or SCENE=path/to/raster.tif).

1. Classify the scene with the shipped NDVI/NDWI rules model, tiled with overlap and soft voting, and
   check the tiled map against one full-scene model call, pixel by pixel (the rules map).
2. Sample training chips (Poisson-disk) labelled with the rules map; a PNG quick-look of the chips.
3. Augment them (geometric preset: flips and quarter turns, georeferencing turned with the pixels).
4. Train a random forest on the augmented chips and export it to ONNX, with a training report.
5. Classify the scene with that model and compare it with the rules map (and, for the example scene,
   with its true classes); quick-looks of both maps.
6. With PyTorch installed: train a small U-Net on the same chips, augmented as it learns, and classify with it.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from patchwork.core import (
    PoissonDiskSampler,
    RasterSource,
    Window,
    augment_chips,
    classify,
    compare_classifications,
    sample_chips,
    train_classifier,
    train_segmentation,
    write_geotiff,
)
from patchwork.core.engine.blocks import full_scene_prediction
from patchwork.core.io.example import example_scene, write_example_scene
from patchwork.core.io.quicklook import render_class_map, render_quicklook

RESOURCES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources")
RULES = os.path.join(RESOURCES, "models", "ndvi_ndwi_rules.json")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scene", help="a georeferenced raster (default: the built-in example scene)")
    parser.add_argument("--out", default="demo-output", help="output folder")
    parser.add_argument("--chip-size", type=int, default=64)
    parser.add_argument("--min-distance", type=float, default=48)
    parser.add_argument("--tile-size", type=int, default=256, help="classification tile size (px)")
    parser.add_argument("--scale", type=float, default=1.0, help="input scale (0.0001 for Sentinel-2 DN)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    def out(name: str) -> str:
        return os.path.join(args.out, name)

    truth = None
    if args.scene:
        scene = args.scene
        print(f"scene: {scene}")
    else:
        scene = write_example_scene(out("example_scene.tif"))
        with RasterSource(scene) as src:
            _, classes = example_scene(src.height, src.width)
            truth = write_geotiff(out("example_labels.tif"), classes, src.geotransform, src.crs_wkt, nodata=255,
                                  band_descriptions=["class (0 water, 1 bare, 2 vegetation)"])
        print(f"scene: built-in example (blue, green, red, NIR reflectance) -> {scene}")
    with RasterSource(scene) as src:
        print(f"  {src.width} x {src.height} px, {src.count} bands, {src.dtype}")
        chip = min(args.chip_size, src.height, src.width)
        if src.count != 4:
            print(f"The shipped rules model needs 4 bands (blue, green, red, NIR); the scene has {src.count}. "
                  "Stopping after sampling chips.")
            result = sample_chips(scene, PoissonDiskSampler(args.min_distance, seed=7), chip, out("chips"),
                                  overwrite=True)
            print(f"sample chips: {result.chip_count} chips -> {result.index_path}")
            return 0

    print("\n1. Classify with the NDVI/NDWI rules model (Processing: Inference > Classify raster (tiled))")
    rules_map = classify_tiled(scene, RULES, out("rules_classes.tif"), args)

    print("\n2. Sample chips labelled with the rules map (Chips > Sample chips)")
    sampler = PoissonDiskSampler(min_distance=args.min_distance, count=0, seed=7)
    chips = sample_chips(scene, sampler, chip, out("chips"), labels=rules_map, max_nodata=0.25, overwrite=True)
    print(f"  {chips.chip_count} chips of {chip} px, Poisson-disk ≥ {args.min_distance:g} px apart; "
          f"{chips.coverage.describe()}")
    print(f"  chip index: {chips.index_path}")
    print(f"  quick-look: {render_quicklook(scene, chips.windows, out('chips_quicklook.png'))}")

    print("\n3. Augment the chips (Chips > Augment chips, preset 'geometric')")
    augmented = augment_chips(chips.index_path, "geometric", out("augmented"), copies=2, seed=7, overwrite=True)
    print(f"  {augmented.chip_count} augmented chips (2 per chip), georeferencing flipped and turned with the "
          f"pixels -> {augmented.index_path}")

    print("\n4. Train a random forest on the augmented chips (Training > Train pixel classifier)")
    trained = train_classifier(augmented.index_path, out("forest.onnx"), estimator="random_forest", seed=7,
                               report=out("training_report.html"))
    print(f"  {trained.train_pixels:,} training pixels; validation accuracy {trained.accuracy:.2%} on "
          f"{trained.validation_pixels:,} pixels of held-out chips; ONNX = scikit-learn on "
          f"{trained.onnx_agreement:.2%} of them")
    print(f"  model: {trained.model}  report: {out('training_report.html')}")

    print("\n5. Classify the scene with the trained model and compare")
    forest_map = classify_tiled(scene, trained.model, out("forest_classes.tif"), args)
    against_rules = compare_classifications(rules_map, forest_map, report=out("forest_vs_rules.html"))
    print(f"  forest vs rules map: {against_rules.agreement:.2%} of {against_rules.pixels:,} pixels agree, "
          f"kappa {against_rules.kappa:.3f} (report {out('forest_vs_rules.html')})")
    if truth:
        for name, path in (("rules", rules_map), ("forest", forest_map)):
            score = compare_classifications(truth, path)
            print(f"  {name} map vs the example's true classes: {score.agreement:.2%} agree")
    train_network(augmented.index_path, scene, truth, out)
    print("\nThe same chain in QGIS: the modeler model resources/models/patchwork_workflow.model3, or headless:")
    print(f"  qgis_process.bin run resources/models/patchwork_workflow.model3 -- raster={scene} labels={rules_map} "
          "classify:classified=classes.tif train:model=model.onnx train:report=report.html")
    return 0


def train_network(index: str, scene: str, truth: str | None, out) -> None:
    """Step 6: a small U-Net on the same augmented chips (when PyTorch is installed), and the map it makes."""
    print("\n6. Train a segmentation network on the chips, augmented as it learns "
          "(Training > Train segmentation network)")
    try:
        import torch  # noqa: F401 - optional: only this step needs it
    except ImportError:
        print("  PyTorch is not installed here, so this step is skipped (Raster > Patchwork > Install Python "
              "dependencies... installs its CPU build).")
        return
    trained = train_segmentation(index, out("network.onnx"), pipeline="geometric", epochs=8, seed=7,
                                 report=out("network_report.html"))
    print(f"  best epoch {trained.best_epoch} of {trained.epochs_run} on {trained.device}: validation accuracy "
          f"{trained.val_accuracy:.2%}, mean IoU {trained.val_miou:.3f} ({trained.seconds:.0f} s); "
          f"report: {out('network_report.html')}")
    mapped = classify(scene, trained.output, out("network_classes.tif"), overlap=16, window="hann",
                      aggregation="softvote")
    print(f"  classified in {mapped.tiles} tiles of {mapped.tile_size} px -> {mapped.output} (the model carries "
          "Deepness's metadata: Deepness runs the same file)")
    beside = side_by_side([out("forest_classes_quicklook.png"),
                           render_class_map(mapped.output, out("network_classes_quicklook.png"))],
                          out("forest_and_network.png"))
    print(f"  the forest's map and the network's, side by side: {beside}")
    if truth:
        score = compare_classifications(truth, mapped.output)
        print(f"  network map vs the example's true classes: {score.agreement:.2%} agree")


def side_by_side(pictures: list[str], path: str) -> str:
    """PNG pictures of one height in a row, 8 px of white between them."""
    from osgeo import gdal

    from patchwork.core.io.partials import write_file_atomically
    from patchwork.core.io.quicklook import png_bytes

    images = [gdal.Open(p).ReadAsArray()[:3] for p in pictures]
    gap = np.full((3, images[0].shape[1], 8), 255, np.uint8)
    row = np.concatenate([part for image in images for part in (image, gap)][:-1], axis=2)
    write_file_atomically(path, png_bytes(row))
    return path


def classify_tiled(scene: str, model: str, output: str, args) -> str:
    """Classify tiled (overlap, Hann, soft vote), check against one full-scene call, write a quick-look."""
    tile, overlap = args.tile_size, args.tile_size // 4
    result = classify(scene, model, output, tile_size=tile, overlap=overlap, window="hann", aggregation="softvote",
                      scale=args.scale if model == RULES else 1.0)
    reference, valid = full_scene_prediction(scene, model, scale=args.scale if model == RULES else 1.0)
    with RasterSource(output) as written:
        classes, _ = written.read(Window(0, 0, written.height, written.width))
    labels = reference if reference.ndim == 2 else np.argmax(reference, axis=0)
    expected = np.where(valid, np.asarray(result.info.class_values)[labels], 255)
    print(f"  '{result.info.name}': {result.tiles} tiles of {tile} px, overlap {overlap} px, Hann window, soft vote "
          f"({result.seconds:.2f} s)")
    print(f"  tiled vs one full-scene model call: {(classes[0] == expected).mean():.2%} of {expected.size:,} pixels "
          f"agree ({int((~valid).sum()):,} nodata pixels stay nodata)")
    counts = np.bincount(classes[0][valid].ravel(), minlength=max(result.info.class_values) + 1)
    print("  " + ", ".join(f"{name} {counts[value] / valid.sum():.1%}"
                           for value, name in zip(result.info.class_values, result.info.class_names)))
    png = render_class_map(output, os.path.splitext(output)[0] + "_quicklook.png")
    print(f"  class map: {output} (colour table, class names, {os.path.basename(result.style)}); quick-look: {png}")
    return output


if __name__ == "__main__":
    sys.exit(main())
