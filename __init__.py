"""Patchwork QGIS plugin entry point. Imports nothing heavy: `patchwork.core` must stay usable without QGIS."""
import sys


def _forget_orphaned_modules() -> None:
    """Drop this plugin's modules whose parent package is gone: what QGIS's unloader leaves of an earlier load.

    QGIS unloads the modules it saw imported, but not the subpackages Python imported only as parents
    (`core.data`, `core.io`, ...). Left behind, they made a reloaded plugin import `core.data.accuracy` before
    `core` itself, and `core`'s own imports circled back into that half-made module (ImportError on reload).
    """
    for name in sorted(n for n in sys.modules if n.startswith(__name__ + ".")):  # parents sort before children
        if name.rsplit(".", 1)[0] not in sys.modules:
            del sys.modules[name]


_forget_orphaned_modules()


def classFactory(iface):  # noqa: N802 - the name QGIS looks for
    from .ui.plugin import PatchworkPlugin

    return PatchworkPlugin(iface)
