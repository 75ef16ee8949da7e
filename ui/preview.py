"""Map-canvas previews: chip footprints as a rubber band, augmented draws as temporary layers and thumbnails."""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
from qgis.core import (
    QgsContrastEnhancement,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
)
from qgis.gui import QgsRubberBand
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor, QImage, QPixmap

from ..core.data.augment import Augmentation, Sample
from ..core.data.sampling import Sampler
from ..core.geometry import Window, footprint, window_geotransform
from ..core.io.raster import RasterSource
from ..core.io.writer import write_geotiff
from ..plugin import qgis_enums

MAX_PREVIEW_CHIPS = 5000  # beyond this the preview draws the first ones only
MAX_PREVIEW_LABEL_PIXELS = 25_000_000  # a class sampler's preview reads every label pixel, while the user waits
PREVIEW_GROUP = "Patchwork preview"


def candidate_windows(raster: str, sampler: Sampler, chip: int, boundary: str) -> list[Window]:
    """The windows the sampler proposes, before the nodata and AOI filters (which need the pixels).

    A raster the sampler would refuse (no CRS, a rotated grid) is refused here with the same message.
    """
    with RasterSource(raster) as src:
        src.require_georeferenced()
        height, width = src.height, src.width
    windows: list[Window] = []
    limit = min(sampler.limit or MAX_PREVIEW_CHIPS, MAX_PREVIEW_CHIPS)
    for batch in sampler.candidates(height, width, chip, boundary):
        for row, col in batch[: limit - len(windows)]:
            windows.append(Window(int(row), int(col), chip, chip))
        if len(windows) >= limit:
            break
    return windows


class ChipFootprints:
    """Chip footprints drawn on the canvas. The rubber band exists only while something is drawn: `clear()`
    takes it off the canvas's scene, so a panel that is closed or on another tab leaves no item there."""

    def __init__(self, canvas, colour: QColor | None = None) -> None:
        self.canvas = canvas
        self.colour = colour or QColor(255, 200, 0)
        self.band: QgsRubberBand | None = None
        self.count = 0

    def show(self, raster: str, windows: list[Window], crs: QgsCoordinateReferenceSystem) -> None:
        with RasterSource(raster) as src:
            gt = src.geotransform
        polygons = [QgsGeometry.fromPolygonXY([[QgsPointXY(x, y) for x, y in footprint(window_geotransform(gt, w),
                                                                                         w.height, w.width)]])
                    for w in windows]
        self.clear()
        if polygons:
            self.band = QgsRubberBand(self.canvas, qgis_enums.POLYGON_GEOMETRY)
            self.band.setStrokeColor(self.colour)
            self.band.setFillColor(QColor(self.colour.red(), self.colour.green(), self.colour.blue(), 40))
            self.band.setWidth(2)
            self.band.setToGeometry(QgsGeometry.collectGeometry(polygons), crs)
        self.count = len(windows)

    def clear(self) -> None:
        if self.band is not None:
            self.canvas.scene().removeItem(self.band)
            self.band = None
        self.count = 0


def chip_at(raster: str, canvas, layer_crs: QgsCoordinateReferenceSystem, chip: int) -> Window:
    """The chip-sized window of `raster` under the centre of the map view (kept inside the raster)."""
    centre = canvas.extent().center()
    transform = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), layer_crs, QgsProject.instance())
    point = transform.transform(centre)
    with RasterSource(raster) as src:
        inverse = _invert(src.geotransform)
        col = inverse[0] + point.x() * inverse[1] + point.y() * inverse[2]
        row = inverse[3] + point.x() * inverse[4] + point.y() * inverse[5]
        size_r, size_c = min(chip, src.height), min(chip, src.width)
        r0 = int(np.clip(round(row - size_r / 2), 0, src.height - size_r))
        c0 = int(np.clip(round(col - size_c / 2), 0, src.width - size_c))
    return Window(r0, c0, size_r, size_c)


def _invert(gt):
    from osgeo import gdal

    return gdal.InvGeoTransform(gt)


def read_sample(raster: str, window: Window) -> Sample:
    """The chip at `window`, georeferenced (augmentations keep the map position exact: a CRS is needed)."""
    with RasterSource(raster) as src:
        src.require_georeferenced()
        image, _ = src.read(window)
        return Sample(image, None, window_geotransform(src.geotransform, window), src.nodata[0], None, src.crs_wkt)


def stretch_limits(samples: list[Sample], bands: tuple[int, int, int]) -> list[tuple[float, float]]:
    """1–99 % limits per display band over the original chip and all its draws, shared by every picture.

    One stretch for all keeps them comparable; taken from the original alone it saturated any draw brighter or
    darker than it (a ±10 % jitter looked like white or black).
    """
    limits = []
    for b in bands:
        parts = []
        for sample in samples:
            values = sample.image[b - 1].astype(np.float64).ravel()
            parts.append(values[np.isfinite(values)] if sample.nodata is None else values[values != sample.nodata])
        data = np.concatenate(parts) if parts else np.zeros(0)
        lo, hi = np.percentile(data, [1, 99]) if data.size else (0.0, 1.0)
        limits.append((float(lo), float(hi) if hi > lo else float(lo) + 1.0))
    return limits


def thumbnail(sample: Sample, bands: tuple[int, int, int], limits: list[tuple[float, float]],
              size: int = 160) -> QPixmap:
    """An RGB picture of a chip (bands 1-based), stretched to `limits`, scaled to `size` px."""
    rgb = np.zeros((sample.height, sample.width, 3), np.uint8)
    for i, (b, (lo, hi)) in enumerate(zip(bands, limits)):
        rgb[..., i] = (np.clip((sample.image[b - 1].astype(np.float64) - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    rgb = np.ascontiguousarray(rgb)
    image = QImage(rgb.data, rgb.shape[1], rgb.shape[0], 3 * rgb.shape[1], QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(image).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.FastTransformation)


class AugmentationPreview:
    """Augmented draws of one chip as temporary layers in a 'Patchwork preview' group (removed by `clear`)."""

    def __init__(self, project: QgsProject | None = None) -> None:
        self.project = project or QgsProject.instance()
        self.folder = tempfile.mkdtemp(prefix="patchwork-preview-")
        self.layers: list[QgsRasterLayer] = []
        self.samples: list[Sample] = []

    def show(self, original: Sample, pipeline: Augmentation, draws: int, seed: int,
             bands: tuple[int, int, int]) -> list[Sample]:
        self.clear()
        self.samples = [original] + [pipeline(original, seed=seed + i) for i in range(draws)]
        limits = stretch_limits(self.samples, bands)
        group = self.project.layerTreeRoot().insertGroup(0, PREVIEW_GROUP)
        for i, sample in enumerate(self.samples):
            name = "original chip" if i == 0 else f"draw {i} (seed {seed + i - 1})"
            path = os.path.join(self.folder, f"seed{seed}_{i}.tif")
            write_geotiff(path, sample.image, sample.geotransform, sample.crs_wkt, sample.nodata)
            layer = QgsRasterLayer(path, name)
            _rgb_style(layer, bands, limits)
            self.project.addMapLayer(layer, False)
            group.addLayer(layer)
            self.layers.append(layer)
        return self.samples

    def clear(self) -> None:
        for layer in self.layers:
            if self.project.mapLayer(layer.id()) is not None:
                self.project.removeMapLayer(layer.id())
        self.layers = []
        group = self.project.layerTreeRoot().findGroup(PREVIEW_GROUP)
        if group is not None:
            self.project.layerTreeRoot().removeChildNode(group)

    def remove(self) -> None:
        self.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


def _rgb_style(layer: QgsRasterLayer, bands: tuple[int, int, int], limits: list[tuple[float, float]]) -> None:
    renderer = layer.renderer()
    if layer.bandCount() < 3 or not hasattr(renderer, "setRedBand"):
        return
    for setter, enhancer, band, (lo, hi) in zip(
            (renderer.setRedBand, renderer.setGreenBand, renderer.setBlueBand),
            (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
             renderer.setBlueContrastEnhancement), bands, limits):
        setter(band)
        enhancement = QgsContrastEnhancement(layer.dataProvider().dataType(band))
        enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
        enhancement.setMinimumValue(lo)
        enhancement.setMaximumValue(hi)
        enhancer(enhancement)
    layer.triggerRepaint()
