"""What Deepness (0.6/0.7) computes for a whole raster layer, written out in numpy from its published processing code
(`extent_utils`, `map_processor`, `tile_params`, and the segmentation and regression map processors), so that tests
can hold Patchwork's maps against it without Deepness installed.

Deepness's tiling: the raster is grown at its right and bottom edges to N·stride + tile (read as 0 there); tiles
start every stride = tile − overlap px from the top-left corner; each tile writes only its core into the map (half
the overlap cut on every side that has a neighbour), so a pixel takes the value of the one tile whose core holds it.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnxruntime as ort


def _extended(length: int, tile: int, stride: int) -> int:
    """The side Deepness processes: at least one tile, else N·stride + tile (calculate_extended_processing_extent)."""
    if length <= tile:
        return tile
    return length + (stride - (length - tile) % stride) % stride


def deepness_tiles(height: int, width: int, tile: int, overlap: int):
    """Each tile's top-left corner and the core it copies, (row, col, (rows slice, cols slice)), in Deepness's order."""
    stride = tile - overlap
    big_h, big_w = _extended(height, tile, stride), _extended(width, tile, stride)
    ny, nx = (big_h - tile) // stride + 1, (big_w - tile) // stride + 1
    half = overlap // 2
    for y in range(ny):
        for x in range(nx):
            r, c = y * stride, x * stride
            r0 = r if y == 0 else r + half
            c0 = c if x == 0 else c + half
            r1 = r + tile if y == ny - 1 else r + tile - half
            c1 = c + tile if x == nx - 1 else c + tile - half
            yield r, c, (slice(r0, r1), slice(c0, c1))


def deepness_map(model_path: str, rgb: np.ndarray, tile: int, overlap: int,
                 decide: Callable[[np.ndarray], np.ndarray], mean=None, std=None) -> np.ndarray:
    """The map Deepness makes of `rgb` (C, h, w) uint8: tiles × 1/255 in float32 (normalize_values_to_01), then
    (x − mean) / std with the model's standardization_mean/std when it has them, the model, `decide` on each tile's
    output (N, K, t, t) → (t, t) or (K', t, t), each tile's core copied, cut back to the raster."""
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    _, height, width = rgb.shape
    stride = tile - overlap
    big = np.zeros((len(rgb), _extended(height, tile, stride), _extended(width, tile, stride)), np.float32)
    big[:, :height, :width] = rgb
    result = None
    for r, c, core in deepness_tiles(height, width, tile, overlap):
        x = np.float32(big[None, :, r : r + tile, c : c + tile] * 1.0 / 255.0)
        if mean is not None:
            x = ((x - np.reshape(mean, (1, -1, 1, 1))) / np.reshape(std, (1, -1, 1, 1))).astype(np.float32)
        out = decide(session.run(None, {name: x})[0])
        if result is None:
            result = np.zeros((*out.shape[:-2], *big.shape[1:]), out.dtype)
        result[(..., *core)] = out[(..., slice(core[0].start - r, core[0].stop - r),
                                    slice(core[1].start - c, core[1].stop - c))]
    return result[..., :height, :width]


def segmentation_decision(threshold: float = 0.5) -> Callable[[np.ndarray], np.ndarray]:
    """MapProcessorSegmentation._process_tile: scores below the threshold become 0; one channel (3-D or 4-D): class
    1 where a score is left; several: the argmax."""
    def decide(scores: np.ndarray) -> np.ndarray:
        scores = np.where(scores < threshold, 0.0, scores)
        if scores.ndim == 3 or scores.shape[1] == 1:
            return (scores != 0).astype(np.uint8).reshape(scores.shape[-2:])
        return np.argmax(scores, axis=1)[0].astype(np.uint8)
    return decide


def regression_decision(output_scaling: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """MapProcessorRegression._process_tile: NaN → 0, times the output scaling, float32, one map per channel."""
    def decide(values: np.ndarray) -> np.ndarray:
        values = np.nan_to_num(values[0], nan=0.0) * output_scaling
        return values.astype(np.float32)
    return decide
