"""Paths into the plugin's resources/ folder (icons, help, styles)."""
from __future__ import annotations

import os

RESOURCES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources")


def resource_path(*parts: str) -> str:
    return os.path.join(RESOURCES, *parts)


def help_text(algorithm: str) -> str:
    """The algorithm's help as one flowing HTML string.

    QGIS's dialog turns every newline of shortHelpString() into a paragraph break, so the files' line wraps
    are joined here (the HTML's own tags make the paragraphs).
    """
    with open(resource_path("help", f"{algorithm}.html"), encoding="utf-8") as fh:
        return " ".join(fh.read().split())
