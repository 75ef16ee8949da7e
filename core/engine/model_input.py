"""What a model is given and where it runs.

The bands and their value mapping (InputTransform), the model as a file a worker loads once (ModelFile), and the
grid it runs on (its resolution, a resampled VRT, a web layer: `model_grid`).
"""
from __future__ import annotations

import hashlib
import math
import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace

import numpy as np

from ..errors import PatchworkError
from ..io.partials import remove_file
from ..io.raster import RasterSource
from ..io.web import XyzSource, remove_xyz_raster, web_raster
from ..models import Model, ModelInfo, load_model
from ..models.similarity import SimilarityModel
from ..progress import Feedback
from .journal import file_digest

# One onnxruntime thread per worker: parallel work is blocks, so workers × threads ≤ cores, and a model sums in the
# same order on any machine (a tree ensemble's sum depends on its thread count).
MODEL_THREADS = 1
DASK_NEEDS_A_FILE = ("DASK_SCHEDULER: a model given as a Python object cannot be sent to Dask workers; pass the "
                     "model's file path instead.")


@dataclass(frozen=True)
class InputTransform:
    """Which bands the model sees and how their values are mapped: x·scale + offset, then (x − mean) / std."""

    bands: list[int]
    dtype: str = "float32"
    scale: float = 1.0
    offset: float = 0.0
    mean: list[float] | None = None
    std: list[float] | None = None
    zero_invalid: bool = True  # False for per-pixel models, which never see invalid pixels (nothing to hide)

    def apply(self, data: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """(C, h, w) raster values → model input; invalid pixels become 0, never data (unless `zero_invalid`).

        Works in `data`'s own memory when it already has the model's type: callers hand over arrays they no
        longer need.
        """
        x = data.astype(self.dtype, copy=False)
        if self.scale != 1.0:
            x *= x.dtype.type(self.scale)
        if self.offset != 0.0:
            x += x.dtype.type(self.offset)
        if self.mean is not None:
            x -= np.asarray(self.mean, x.dtype)[:, None, None]
            x /= np.asarray(self.std, x.dtype)[:, None, None]
        if self.zero_invalid and not valid.all():
            np.copyto(x, 0.0, where=~valid)  # 9x faster than x[:, ~valid] = 0 (no index gathering)
        return x


def input_transform(src: RasterSource, info: ModelInfo, bands: list[int] | None, scale: float,
                    offset: float) -> InputTransform:
    """The bands and value mapping a model gets from `src`, checked against what the model takes."""
    bands = list(bands) if bands else list(range(1, src.count + 1))
    bad = [b for b in bands if not 1 <= b <= src.count]
    if bad:
        raise PatchworkError(f"BANDS: {bad} not in the input, which has bands 1..{src.count}.")
    if info.n_bands is not None and len(bands) != info.n_bands:
        expected = f" ({', '.join(info.band_names)})" if info.band_names else ""
        raise PatchworkError(
            f"BANDS: the model '{info.name}' takes {info.n_bands} bands{expected} but it would get {len(bands)} "
            f"(bands {','.join(map(str, bands))} of the input). Set BANDS to the {info.n_bands} input bands to use, "
            f"in the model's order, e.g. {','.join(str(i) for i in range(1, info.n_bands + 1))}."
        )
    for name, values in (("standardization_mean", info.mean), ("standardization_std", info.std)):
        if values is not None and len(values) not in (1, len(bands)):
            raise PatchworkError(f"MODEL: '{info.name}' has {len(values)} {name} values for {len(bands)} bands.")
    if info.std is not None and any(s == 0 for s in info.std):
        raise PatchworkError(f"MODEL: '{info.name}' has a standardization_std of 0.")
    if scale == 0:
        raise PatchworkError("SCALE: 0 would turn every pixel into OFFSET. Use 1 to leave values as they are.")
    def per_band(v):
        return None if v is None else (list(v) * len(bands) if len(v) == 1 else list(v))

    dtype = info.input_dtype
    if info.widens_floats and scale == 1 and offset == 0 and info.mean is None and src.dtype.kind == "f" \
            and src.dtype.itemsize < np.dtype(dtype).itemsize:
        dtype = src.dtype.name  # the values as they are: the model widens them exactly itself, without a copy
    return InputTransform(bands, dtype, float(scale), float(offset), per_band(info.mean), per_band(info.std),
                          zero_invalid=not info.per_pixel)


@dataclass(frozen=True)
class ModelFile:
    """A model as a file: what a worker process needs to load the very model the run checked."""

    path: str
    trust: bool
    device: str
    digest: str  # SHA-256: a worker whose copy differs refuses to run
    head: int = 0  # the output head of a multi-head model
    model_type: str = "auto"  # what the user said the model is (see load_model)
    threshold: float | None = None  # a one-sigmoid model's threshold, when the user set one
    query: tuple[float, ...] | None = None  # a recognition model's query embedding: the model is its similarity map

    def read(self, threads: int | None = MODEL_THREADS) -> Model:
        """The model from its file (a recognition model with a query: its similarity map, `SimilarityModel`)."""
        model = load_model(self.path, self.trust, self.device, threads, self.head, self.model_type, self.threshold)
        return model if self.query is None else SimilarityModel(model, np.asarray(self.query))

    @property
    def identity(self) -> str:
        """What makes two runs' models the same model: the file's SHA-256, and the query's when there is one."""
        if self.query is None:
            return self.digest
        return f"{self.digest}+query:{hashlib.sha256(np.asarray(self.query).tobytes()).hexdigest()}"

    def load(self) -> Model:
        """The model, loaded once per worker process (the run's own process has it already, in the job)."""
        with _LOADED_LOCK:
            if self not in _LOADED:
                _LOADED[self] = replace(self, path=self.local_copy()).read()
            return _LOADED[self]

    def local_copy(self) -> str:
        """Where this process finds the very model file: at its path, or the copy a Dask client sent (`receive`)."""
        if self.is_here():
            return self.path
        if self.digest in _RECEIVED:
            return _RECEIVED[self.digest]
        if os.path.isfile(self.path):
            raise PatchworkError(f"MODEL: the file '{self.path}' on this worker is not the model the run was "
                                 "started with (another SHA-256). Give every worker the same model file.")
        raise PatchworkError(f"MODEL: '{self.path}' is not on this worker, and the run did not send it.")

    def is_here(self) -> bool:
        """True when this process has the model file at its path (the same bytes)."""
        return os.path.isfile(self.path) and file_digest(self.path) == self.digest


def receive(model_file: ModelFile, data: bytes) -> None:
    """On a worker without the model file: keep the bytes a Dask client sent, as a file of this machine's own.

    Written once per worker process into its temporary folder, named by the SHA-256 (checked: what is loaded is the
    model the run started with, whatever happened on the way).
    """
    with _LOADED_LOCK:
        if model_file.digest in _RECEIVED:
            return
        if hashlib.sha256(data).hexdigest() != model_file.digest:
            raise PatchworkError(f"MODEL: the copy of '{model_file.path}' this worker received is not the model the "
                                 "run was started with (another SHA-256).")
        import tempfile

        from ..io.partials import write_file_atomically

        path = os.path.join(tempfile.gettempdir(), "patchwork-models",
                            model_file.digest + os.path.splitext(model_file.path)[1].lower())
        if not (os.path.isfile(path) and file_digest(path) == model_file.digest):
            write_file_atomically(path, data)
        _RECEIVED[model_file.digest] = path


_LOADED: dict[ModelFile, Model] = {}  # models a worker process has loaded, by file and settings
_LOADED_LOCK = threading.Lock()
_RECEIVED: dict[str, str] = {}  # SHA-256 → the worker's copy of a model file a Dask client sent


MAX_RESAMPLED_PIXELS = 4e9  # a raster resampled for a model: 4 × 10⁹ px (a 63,000 px square) at most
RESAMPLED_TOLERANCE = 1e-3  # relative: a pixel size within 0.1% of the raster's (not quite square ones too) is its own


def target_resolution(raster: str, info: ModelInfo, resolution: float | None) -> float | None:
    """The pixel size to resample the raster to, or None to run on its own grid."""
    if resolution is None and info.resolution_cm is None:
        return None  # (without opening the raster: the usual case)
    with RasterSource(raster) as src:
        gt, srs_wkt = src.geotransform, src.crs_wkt
    if resolution is None:  # Deepness's metadata: cm per pixel, meaningful on a grid in metres
        from osgeo import osr

        srs = osr.SpatialReference()
        if not srs_wkt or srs.ImportFromWkt(srs_wkt) != 0 or not srs.IsProjected() or srs.GetLinearUnits() <= 0:
            raise PatchworkError(f"RESOLUTION: the model '{info.name}' was made for {info.resolution_cm:g} cm per "
                                 "pixel, which needs a raster in a projected CRS; set RESOLUTION in the raster's "
                                 "units, or warp the raster first.")
        resolution = info.resolution_cm / 100.0 / srs.GetLinearUnits()
    if not resolution > 0:
        raise PatchworkError(f"RESOLUTION: {resolution} is not a pixel size; give a positive size in the raster's "
                             "units.")
    if gt[2] or gt[4]:
        raise PatchworkError("RESOLUTION: the raster's grid is rotated; warp it to a north-up grid first.")
    if all(abs(abs(side) - resolution) <= RESAMPLED_TOLERANCE * resolution for side in (gt[1], gt[5])):
        return None
    return float(resolution)


def resampled_vrt(raster: str, target: float, beside: str) -> str:
    """A GDAL warped VRT of `raster` at `target` px size on its extent, named beside `beside` as this run's own.

    Averaged when coarser, bilinear when finer; the caller removes it.
    """
    from osgeo import gdal

    from ..io.partials import owned_name

    with RasterSource(raster) as src:
        gt, width, height = src.geotransform, src.width, src.height
    cols, rows = math.ceil(abs(gt[1]) * width / target), math.ceil(abs(gt[5]) * height / target)
    if cols * rows > MAX_RESAMPLED_PIXELS:
        raise PatchworkError(f"RESOLUTION: {target:g} per pixel makes the {width:,} x {height:,} px raster "
                             f"{cols:,} x {rows:,} px ({cols * rows:.1e} px) on the model's grid, more than the "
                             f"{MAX_RESAMPLED_PIXELS:.0e} px Patchwork resamples to. Choose a coarser RESOLUTION, or "
                             "clip the raster (or set a MASK) first.")
    bounds = (gt[0], gt[3] + gt[5] * height, gt[0] + gt[1] * width, gt[3])
    vrt = owned_name(os.path.splitext(beside)[0] + ".input.vrt")
    warped = gdal.Warp(vrt, raster, format="VRT", xRes=target, yRes=target, outputBounds=bounds,
                       resampleAlg="average" if target > abs(gt[1]) else "bilinear")
    if warped is None:
        raise PatchworkError(f"RESOLUTION: GDAL could not resample '{raster}' to {target:g} per pixel.")
    warped = None  # noqa: F841 - closing writes the VRT
    return vrt


@contextmanager
def model_grid(raster: str | XyzSource, info: ModelInfo, resolution: float | None, mask, tile_size: int | None,
               beside: str, feedback: Feedback | None = None,
               resample: bool = True) -> Iterator[tuple[str, float | None]]:
    """The raster as the model reads it, and the pixel size it runs at; the VRTs made for it go afterwards.

    An XYZ service is read through a VRT of its tiles, another pixel size through a warped VRT (`resampled_vrt`),
    else the raster is read itself. `feedback` None: a check, that says nothing. Classify reads web layers through
    this but resamples itself (`resample` False), as it can bring its maps back to the input's grid.
    """
    with ExitStack() as made:
        if isinstance(raster, XyzSource):
            raster = web_raster(raster, info, resolution, mask, tile_size, beside, feedback)
            made.callback(remove_xyz_raster, raster)
        target = target_resolution(raster, info, resolution) if resample else None
        if target is not None:
            raster = resampled_vrt(raster, target, beside)
            made.callback(remove_file, raster)
            resolution = target
            if feedback is not None:
                feedback.info(f"Input resampled to {target:g} per pixel, the model's resolution.")
        yield raster, resolution
