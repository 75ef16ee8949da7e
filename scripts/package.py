"""Builds dist/patchwork-<version>.zip, the zip QGIS's "Install from ZIP" and the plugin repository take.

Inside: one folder `patchwork/` with metadata.txt, __init__.py, LICENSE, README.md, requirements.txt and
the core/, plugin/, ui/ and resources/ folders; no tests, scripts, docs, caches or dev files.
"""
from __future__ import annotations

import os
import sys
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ["metadata.txt", "__init__.py", "LICENSE", "README.md", "requirements.txt"]
FOLDERS = ["core", "plugin", "ui", "resources"]


def version() -> str:
    with open(os.path.join(REPO, "metadata.txt"), encoding="utf-8") as fh:
        return next(line.split("=", 1)[1].strip() for line in fh if line.startswith("version="))


def build(target_dir: str) -> str:
    os.makedirs(target_dir, exist_ok=True)
    path = os.path.join(target_dir, f"patchwork-{version()}.zip")
    tmp = path + ".partial"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in FILES:
            archive.write(os.path.join(REPO, name), f"patchwork/{name}")
        for folder in FOLDERS:
            for root, dirs, files in os.walk(os.path.join(REPO, folder)):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                for name in sorted(files):
                    if name.endswith((".pyc", ".pyo")):
                        continue
                    full = os.path.join(root, name)
                    archive.write(full, "patchwork/" + os.path.relpath(full, REPO))
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "dist")))
