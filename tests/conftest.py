"""Fixtures shared by every test layer: the real rasters in ../shared/data and helpers."""
from __future__ import annotations

import gc
import os
import sys

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))

# Loading a raster in QGIS computes statistics that GDAL would save as .aux.xml beside it:
# the shared data must stay exactly as it is, so no side-car files (here and in qgis_process runs).
os.environ["GDAL_PAM_ENABLED"] = "NO"
gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")


# A warning from Patchwork's own code is an error on every QGIS version: in this process through pyproject.toml's
# filterwarnings, in the QGIS processes the tests start (qgis_process, the QGIS window) through this startup file.
QGIS_STARTUP = os.path.join(REPO, "tests", "qgis_startup.py")
os.environ["PYQGIS_STARTUP"] = QGIS_STARTUP


def shared(name: str) -> str:
    path = os.path.join(SHARED_DATA, name)
    if not os.path.exists(path):
        pytest.fail(f"real test data missing: {path} (the shared/ folder must sit beside the repository)")
    return path


@pytest.fixture(scope="session")
def s2_path() -> str:
    return shared("s2_bgrn_10m.tif")


@pytest.fixture(scope="session")
def naip_path() -> str:
    return shared("naip_rgbn_5m_2019.tif")


@pytest.fixture(scope="session")
def example_path(tmp_path_factory) -> str:
    """The built-in example scene (600 x 800, 4 bands, nodata wedge at the bottom left)."""
    from patchwork.core.io.example import write_example_scene

    return write_example_scene(str(tmp_path_factory.mktemp("example") / "example_scene.tif"))


@pytest.fixture(scope="session")
def ortho_path() -> str:
    return shared("ortho_rgba_2cm.tif")


def read_all(path: str) -> tuple[np.ndarray, tuple, str, float | None]:
    """Independent read of a whole raster: (C, H, W) array, geotransform, WKT, band-1 nodata."""
    ds = gdal.Open(path)
    arr = ds.ReadAsArray()
    arr = arr[None] if arr.ndim == 2 else arr
    return arr, ds.GetGeoTransform(), ds.GetProjection(), ds.GetRasterBand(1).GetNoDataValue()


def files_under(folder: str) -> list[str]:
    """Every file below `folder` (hidden ones included), relative, sorted; [] when it does not exist."""
    found = []
    for root, _dirs, files in os.walk(folder):
        found += [os.path.relpath(os.path.join(root, f), folder) for f in files]
    return sorted(found)


class Recorder:
    """A core Feedback that keeps the log's lines and, with `action`, does it once when progress passes `at`."""

    def __init__(self, at: float = 101, action=None) -> None:
        self.at, self.action, self.lines = at, action, []

    def set_progress(self, percent: float) -> None:
        if percent > self.at and self.action:
            action, self.action = self.action, None
            action()

    def is_cancelled(self) -> bool:
        return False

    def info(self, message: str) -> None:
        self.lines.append(message)


class CancelAfter:
    """A core Feedback that records progress and cancels once it has been called `calls` times."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.progress: list[float] = []

    def set_progress(self, percent):
        self.progress.append(percent)

    def is_cancelled(self):
        return len(self.progress) >= self.calls

    def info(self, message):
        pass


class CancelInGdal:
    """A core Feedback on which Cancel is pressed during one of GDAL's long calls (a COG rewrite, a warp).

    `is_cancelled` answers True only when GDAL's progress callback (core.progress.GdalCancel) asks, from the moment
    `when(frame)` is true for that callback's frame (its locals: `complete`, 0..1), and stays True after.
    """

    def __init__(self, when) -> None:
        self.when = when
        self.pressed = False

    def set_progress(self, percent):
        pass

    def info(self, message):
        pass

    def is_cancelled(self):
        frame = sys._getframe(1)
        if frame.f_code.co_name != "__call__":  # not GDAL's callback: the run itself asks, and goes on
            return False
        self.pressed = self.pressed or bool(self.when(frame))
        return self.pressed


@pytest.fixture(scope="session", autouse=True)
def shared_data_stays_untouched():
    """Fails the run if any test wrote into ../shared/data."""
    before = files_under(SHARED_DATA)
    yield
    assert files_under(SHARED_DATA) == before, "a test wrote into ../shared/data"


@pytest.fixture(autouse=True)
def gdal_exception_setting_untouched():
    """Fails a test after which GDAL, OGR or OSR exceptions are switched: that setting belongs to QGIS."""
    before = [module.GetUseExceptions() for module in (gdal, ogr, osr)]
    yield
    assert [module.GetUseExceptions() for module in (gdal, ogr, osr)] == before, "GDAL's exception setting changed"


@pytest.fixture(scope="session")
def patchwork_provider(qgis_app, qgis_processing):
    """The plugin loaded as QGIS would (classFactory with no iface), its Processing provider registered."""
    import patchwork

    plugin = patchwork.classFactory(None)
    plugin.initProcessing()
    yield plugin.provider
    plugin.unload()


def pytest_runtest_teardown(item, nextitem):
    """Collect the session's cyclic garbage after the last test, before pytest-qgis calls exitQgis().

    Left to the collector's own time (pytest's summary, after exitQgis), QGIS objects held in cycles (panels, their
    connected lambdas) were freed after QGIS had gone, and Python crashed (SIGSEGV) after some combinations of test
    files (tests/security with tests/reliability/test_all_outputs_or_none.py: 2 of 2 runs).
    """
    if nextitem is None:
        gc.collect()
