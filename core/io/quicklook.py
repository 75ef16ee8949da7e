"""PNG quick-looks of a raster with chip footprints drawn on it (numpy + GDAL, no plotting library)."""
from __future__ import annotations

import uuid

import numpy as np
from osgeo import gdal

from ..geometry import Window
from .gdal_errors import checked, opened
from .partials import write_file_atomically
from .raster import RasterSource


def stretch(band: np.ndarray, valid: np.ndarray, low: float = 2, high: float = 98) -> np.ndarray:
    """Percentile stretch of valid pixels to 0..255."""
    if not valid.any():
        return np.zeros(band.shape, np.uint8)
    lo, hi = np.percentile(band[valid], [low, high])
    scaled = (band.astype(np.float64) - lo) / max(hi - lo, 1e-12)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def render_quicklook(raster: str, windows: list[Window], path: str, bands: tuple[int, int, int] = (3, 2, 1),
                     max_size: int = 1200, colour: tuple[int, int, int] = (255, 220, 0)) -> str:
    """Write an RGB PNG of `raster` (bands as R, G, B; 1-based) with each window outlined."""
    with RasterSource(raster) as src:
        scale = min(1.0, max_size / max(src.height, src.width))
        h, w = max(1, round(src.height * scale)), max(1, round(src.width * scale))
        ds = src.dataset
        data = np.stack([checked(ds.GetRasterBand(b).ReadAsArray, buf_xsize=w, buf_ysize=h) for b in bands])
        valid = np.ones((h, w), bool)
        for i, b in enumerate(bands):
            nd = src.nodata[b - 1]
            if nd is not None:
                valid &= data[i] != nd
        if np.issubdtype(data.dtype, np.floating):
            valid &= ~np.isnan(data).any(axis=0)
        rgb = np.stack([stretch(data[i], valid) for i in range(3)])
        np.copyto(rgb, 0, where=~valid)
    for win in windows:
        r0, c0 = int(win.row_off * scale), int(win.col_off * scale)
        r1, c1 = int(np.ceil(win.row_end * scale)) - 1, int(np.ceil(win.col_end * scale)) - 1
        r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1, h - 1), min(c1, w - 1)
        if r1 < r0 or c1 < c0:
            continue
        for ch, value in enumerate(colour):
            rgb[ch, r0, c0 : c1 + 1] = value
            rgb[ch, r1, c0 : c1 + 1] = value
            rgb[ch, r0 : r1 + 1, c0] = value
            rgb[ch, r0 : r1 + 1, c1] = value
    return _write_png(rgb, path)


def render_class_map(raster: str, path: str, max_size: int = 1200) -> str:
    """Write an RGB PNG of a class map through its colour table (nodata and unlisted values black)."""
    with RasterSource(raster) as src:
        scale = min(1.0, max_size / max(src.height, src.width))
        h, w = max(1, round(src.height * scale)), max(1, round(src.width * scale))
        band = src.dataset.GetRasterBand(1)
        classes = checked(band.ReadAsArray, buf_xsize=w, buf_ysize=h)  # nearest neighbour: classes stay classes
        table = band.GetColorTable()
        entries = table.GetCount() if table else 0
        nodata = None if src.nodata[0] is None else int(src.nodata[0])
        lut = np.zeros((max(int(classes.max()) + 1, entries, (nodata or 0) + 1), 3), np.uint8)
        for value in range(entries):
            lut[value] = table.GetColorEntry(value)[:3]
        if nodata is not None:
            lut[nodata] = 0
        rgb = np.moveaxis(lut[classes], -1, 0)
    return _write_png(rgb, path)


def png_bytes(rgb: np.ndarray) -> bytes:
    """An (3, h, w) uint8 picture as the bytes of a PNG file (made in GDAL's memory)."""
    mem = opened(gdal.GetDriverByName("MEM").Create, "", rgb.shape[2], rgb.shape[1], 3, gdal.GDT_Byte)
    for i in range(3):
        checked(mem.GetRasterBand(i + 1).WriteArray, rgb[i])
    name = f"/vsimem/patchwork_{uuid.uuid4().hex}.png"
    try:
        opened(gdal.GetDriverByName("PNG").CreateCopy, name, mem)  # dropped at once: closed, written
        handle = gdal.VSIFOpenL(name, "rb")
        gdal.VSIFSeekL(handle, 0, 2)
        size = gdal.VSIFTellL(handle)
        gdal.VSIFSeekL(handle, 0, 0)
        data = gdal.VSIFReadL(1, size, handle)
        gdal.VSIFCloseL(handle)
        return data
    finally:
        gdal.Unlink(name)


def _write_png(rgb: np.ndarray, path: str) -> str:
    write_file_atomically(path, png_bytes(rgb))
    return path
