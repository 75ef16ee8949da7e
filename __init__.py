"""Patchwork QGIS plugin entry point. Imports nothing heavy: `patchwork.core` must stay usable without QGIS."""


def classFactory(iface):  # noqa: N802 - the name QGIS looks for
    from .plugin.plugin import PatchworkPlugin

    return PatchworkPlugin(iface)
