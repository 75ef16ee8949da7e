"""Patchwork's version, as metadata.txt (the plugin folder's) declares it."""
from __future__ import annotations

import os


def _read_version() -> str:
    metadata = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "metadata.txt")
    try:
        with open(metadata, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("version="):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


PATCHWORK_VERSION = _read_version()
