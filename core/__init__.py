"""Patchwork's engine: numpy and GDAL only, no Qt and no QGIS.

Example:
    from patchwork.core import sample_chips, RegularSampler
    result = sample_chips("scene.tif", RegularSampler(step=256), 256, "chips/")
"""
from .config import from_config
from .data.chip_dataset import ChipDataset
from .data.dataset import SampleResult, read_index, sample_chips
from .data.sampling import (
    BOUNDARIES,
    SAMPLER_NAMES,
    Coverage,
    JitteredSampler,
    PoissonDiskSampler,
    RandomSampler,
    RegularSampler,
    Sampler,
    coverage,
    sampler_from_name,
)
from .errors import Cancelled, PatchworkError
from .geometry import Window, pixel_to_world, window_geotransform
from .io.aoi import Aoi
from .io.raster import RasterSource
from .io.writer import GeoTiffWriter, write_geotiff
from .progress import Feedback, SilentFeedback

__all__ = [
    "Aoi", "BOUNDARIES", "Cancelled", "ChipDataset", "Coverage", "Feedback", "GeoTiffWriter", "JitteredSampler",
    "PatchworkError", "PoissonDiskSampler", "RandomSampler", "RasterSource", "RegularSampler",
    "SAMPLER_NAMES", "SampleResult", "Sampler", "SilentFeedback", "Window", "coverage", "from_config",
    "pixel_to_world", "read_index", "sample_chips", "sampler_from_name", "window_geotransform",
    "write_geotiff",
]
