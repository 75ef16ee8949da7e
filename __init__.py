"""Patchwork QGIS plugin entry point. Imports nothing heavy: `patchwork.core` must stay usable without QGIS."""


def classFactory(iface):  # noqa: N802 - the name QGIS looks for
    from .ui.plugin import PatchworkPlugin

    return PatchworkPlugin(iface)
