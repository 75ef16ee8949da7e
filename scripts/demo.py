"""`make demo`: the Patchwork workflow on the built-in example scene (or SCENE=path/to/raster.tif).

Today: sample training chips (Poisson-disk, with label chips when the example scene is used),
write the chip dataset and a PNG quick-look of the chips over the scene.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from patchwork.core import PoissonDiskSampler, sample_chips
from patchwork.core.example import example_scene, write_example_scene
from patchwork.core.quicklook import render_quicklook
from patchwork.core.raster import RasterSource
from patchwork.core.writer import write_geotiff


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scene", help="a georeferenced raster (default: the built-in example scene)")
    parser.add_argument("--out", default="demo-output", help="output folder")
    parser.add_argument("--chip-size", type=int, default=64)
    parser.add_argument("--min-distance", type=float, default=64)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
