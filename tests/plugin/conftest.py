"""Processing-level fixtures: the plugin loaded as QGIS would (classFactory with no iface)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def patchwork_provider(qgis_app, qgis_processing):
    import patchwork

    plugin = patchwork.classFactory(None)
    plugin.initProcessing()
    yield plugin.provider
    plugin.unload()
