"""Patchwork's engine: numpy and GDAL only, no Qt and no QGIS.

Example:
    from patchwork.core import sample_chips, RegularSampler
    result = sample_chips("scene.tif", RegularSampler(step=256), 256, "chips/")
"""
from .aoi import Aoi
from .chip_dataset import ChipDataset
from .config import from_config
from .dataset import SampleResult, read_index, sample_chips
from .errors import Cancelled, PatchworkError
from .geometry import Window, pixel_to_world, window_geotransform
from .progress import Feedback, SilentFeedback
from .raster import RasterSource
from .sampling import (
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
from .writer import GeoTiffWriter, write_geotiff

__all__ = [
    "Aoi", "BOUNDARIES", "Cancelled", "ChipDataset", "Coverage", "Feedback", "GeoTiffWriter", "JitteredSampler",
    "PatchworkError", "PoissonDiskSampler", "RandomSampler", "RasterSource", "RegularSampler",
    "SAMPLER_NAMES", "SampleResult", "Sampler", "SilentFeedback", "Window", "coverage", "from_config",
    "pixel_to_world", "read_index", "sample_chips", "sampler_from_name", "window_geotransform",
    "write_geotiff",
]
