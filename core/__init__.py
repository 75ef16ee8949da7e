"""Patchwork's engine: numpy and GDAL only, no Qt and no QGIS.

Every task's entry point, the model and pipeline loaders, the samplers, the augmentations and the errors are
here; import from `patchwork.core`, not from the modules below it (their layout may change). The layers:
`errors`, `geometry`, `progress`, `config`, `budget` (the ground floor) < `io/` (rasters, vectors, outputs)
< `models/` < `engine/` (tiles, blocks, executors, stitching) and `data/` (samplers, augmentations, chips)
< `tasks/` (one module per Processing algorithm).

Example:
    from patchwork.core import sample_chips, RegularSampler
    result = sample_chips("scene.tif", RegularSampler(step=256), 256, "chips/")
"""
from .config import from_config
from .data.augment import (
    Augmentation,
    Compose,
    RandomCrop,
    RandomFlip,
    RandomRotate90,
    RandomShift,
    Sample,
    load_pipeline,
    preset_names,
)
from .data.chip_dataset import ChipDataset
from .data.chips import read_index
from .data.mixing import CutMix, MixUp
from .data.radiometric import (
    AtmosphericHaze,
    BandDropout,
    BandJitter,
    BrightnessJitter,
    ContrastJitter,
    GaussianNoise,
    SimulatedClouds,
    SpeckleNoise,
    SunAngleJitter,
)
from .data.sampling import (
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
from .geometry import BOUNDARIES, Window, pixel_to_world, window_geotransform
from .io.aoi import Aoi
from .io.labels import VectorLabels
from .io.raster import RasterSource
from .io.stac import stac_asset
from .io.web import XyzSource
from .io.writer import GeoTiffWriter, write_geotiff
from .models import Model, ModelInfo, load_model
from .progress import Feedback, SilentFeedback
from .tasks.accuracy import SamplePoints, assess_accuracy
from .tasks.accuracy_sample import draw_accuracy_sample
from .tasks.augment_chips import augment_chips
from .tasks.classify import ClassifyResult, classify
from .tasks.compare import compare_classifications
from .tasks.detect import detect
from .tasks.recognize import recognize
from .tasks.sample_chips import SampleResult, sample_chips
from .tasks.stitch_chips import stitch_chips
from .tasks.suggest_labels import Places, suggest_labels
from .tasks.superresolve import superresolve
from .tasks.train_classifier import train_classifier
from .tasks.train_segmentation import train_segmentation

__all__ = [
    # tasks: one per Processing algorithm
    "assess_accuracy", "augment_chips", "classify", "compare_classifications", "detect", "draw_accuracy_sample",
    "recognize", "sample_chips", "stitch_chips", "suggest_labels", "superresolve", "train_classifier",
    "train_segmentation",
    # what they take and give
    "Aoi", "ChipDataset", "ClassifyResult", "Feedback", "Places", "GeoTiffWriter", "Model", "ModelInfo", "RasterSource",
    "SamplePoints", "SampleResult", "SilentFeedback", "VectorLabels", "Window", "XyzSource", "from_config",
    "load_model", "load_pipeline", "pixel_to_world", "preset_names", "read_index", "stac_asset", "window_geotransform",
    "write_geotiff",
    # samplers
    "BOUNDARIES", "SAMPLER_NAMES", "Coverage", "JitteredSampler", "PoissonDiskSampler", "RandomSampler",
    "RegularSampler", "Sampler", "coverage", "sampler_from_name",
    # augmentations
    "AtmosphericHaze", "Augmentation", "BandDropout", "BandJitter", "BrightnessJitter", "Compose", "ContrastJitter",
    "CutMix", "GaussianNoise", "MixUp", "RandomCrop", "RandomFlip", "RandomRotate90", "RandomShift", "Sample",
    "SimulatedClouds", "SpeckleNoise", "SunAngleJitter",
    # errors
    "Cancelled", "PatchworkError",
]
