"""A small, realistic example scene, generated deterministically so the demo needs no download.

Four bands of surface reflectance (blue, green, red, NIR; float32, 10 m, UTM 31N) over a coast:
sea and a lake (water), fields and forest (vegetation), bare soil and scrub (bare land), with
smooth within-class variation, sensor noise, and a nodata wedge (bottom left) where the sensor swath ends.
"""
from __future__ import annotations

import numpy as np

from .writer import write_geotiff

NODATA = -9999.0
BAND_NAMES = ["blue", "green", "red", "nir"]
# Mean reflectance per class and band (blue, green, red, NIR): typical Sentinel-2 L2A values.
SIGNATURES = {
    "water": (0.060, 0.050, 0.030, 0.015),
    "vegetation": (0.030, 0.070, 0.040, 0.380),
    "bare": (0.110, 0.140, 0.180, 0.260),
}
EPSG_32631 = (
    'PROJCS["WGS 84 / UTM zone 31N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
    'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
    'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",3],PARAMETER["scale_factor",0.9996],'
    'PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],AUTHORITY["EPSG","32631"]]'
)


def _smooth_field(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Gaussian-filtered white noise (in the Fourier domain), rescaled to zero mean and unit variance."""
    noise = rng.standard_normal((height, width))
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    kernel = np.exp(-2.0 * (np.pi * scale) ** 2 * (fx**2 + fy**2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=(height, width))
    return (field - field.mean()) / field.std()


def example_scene(height: int = 600, width: int = 800, seed: int = 2019) -> tuple[np.ndarray, np.ndarray]:
    """The scene as (4, H, W) float32 reflectance with NODATA, and its (H, W) class map.

    Classes: 0 water, 1 bare land, 2 vegetation, 255 nodata.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    relief = _smooth_field(rng, height, width, 40.0) + 2.5 * (cols / width - 0.35)  # sea to the west
    moisture = _smooth_field(rng, height, width, 18.0)
    water = relief < np.quantile(relief, 0.22)
    vegetation = ~water & (moisture > -0.1)
    classes = np.where(water, 0, np.where(vegetation, 2, 1)).astype(np.uint8)

    texture = _smooth_field(rng, height, width, 4.0)
    scene = np.empty((4, height, width), dtype=np.float64)
    for name, class_id in (("water", 0), ("bare", 1), ("vegetation", 2)):
        mean = np.asarray(SIGNATURES[name])[:, None]
        where = classes == class_id
        scene[:, where] = mean * (1.0 + 0.12 * texture[where])
    scene += rng.normal(0.0, 0.004, scene.shape)  # sensor noise
    scene = np.clip(scene, 0.0, 1.0).astype(np.float32)
    outside_swath = rows > height - 1 - (width - 1 - cols) * 0.25  # a wedge at the bottom left
    scene[:, outside_swath] = NODATA
    classes[outside_swath] = 255
    return scene, classes


def write_example_scene(path: str, height: int = 600, width: int = 800, seed: int = 2019) -> str:
    """Write the example scene as a GeoTIFF (EPSG:32631, 10 m pixels) and return its path."""
    scene, _ = example_scene(height, width, seed)
    geotransform = (430000.0, 10.0, 0.0, 4840000.0, 0.0, -10.0)
    return write_geotiff(path, scene, geotransform, EPSG_32631, NODATA, BAND_NAMES)
