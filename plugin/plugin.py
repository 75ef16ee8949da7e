"""The plugin object QGIS creates through classFactory."""
from __future__ import annotations

from qgis.core import QgsApplication

from .provider import PatchworkProvider


class PatchworkPlugin:
    def __init__(self, iface) -> None:
        # qgis_process passes iface=None: nothing here may touch the GUI.
        self.iface = iface
        self.provider: PatchworkProvider | None = None

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API name
        """Called by QGIS (also headless, by qgis_process) to register the Processing provider."""
        if self.provider is None:
            self.provider = PatchworkProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 - QGIS API name
        self.initProcessing()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
