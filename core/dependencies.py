"""Optional Python packages: imported only where used, with a clear message when one is missing or too old.

QGIS ships numpy and GDAL; everything else is optional. `require("onnxruntime", "ONNX models")` returns
the module or raises a PatchworkError that names the package, the version needed and how to install
it (the plugin's installer, or pip with QGIS's numpy pinned so pip cannot replace it).
"""
from __future__ import annotations

import importlib
import re
import sys

from .errors import PatchworkError

# Distribution name → (module to import, lowest version that works with Patchwork).
PACKAGES: dict[str, tuple[str, str]] = {
    "onnxruntime": ("onnxruntime", "1.16"),
    "scikit-learn": ("sklearn", "1.2"),
    "skops": ("skops", "0.9"),
    "skl2onnx": ("skl2onnx", "1.16"),
    "onnx": ("onnx", "1.15"),
    "distributed": ("distributed", "2023.1"),  # Dask's cluster client (brings dask): DASK_SCHEDULER only
    "stringzilla": ("stringzilla", "3.10"),  # SIMD byte tables: 8-bit augmentation several times faster
    "torch": ("torch", "2.1"),  # PyTorch: training segmentation networks only
}
# Installed only when the user asks (packages most users never need).
ON_REQUEST: dict[str, str] = {"distributed": "Dask, to run classification on a Dask cluster (DASK_SCHEDULER)",
                              "stringzilla": "StringZilla, for faster augmentation of 8-bit chips",
                              "torch": "PyTorch (the CPU build), to train segmentation networks"}


def version_tuple(version: str) -> tuple[int, ...]:
    """'1.16.3' → (1, 16, 3)."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def install_hint(packages: list[str]) -> str:
    """How to install `packages`: the plugin's installer, or pip with QGIS's numpy pinned."""
    specs = " ".join(f'"{name}>={PACKAGES[name][1]}"' for name in packages)
    numpy_pin = ""
    if "numpy" in sys.modules:
        numpy_pin = f" numpy=={sys.modules['numpy'].__version__}"
    cpu_torch = " --extra-index-url https://download.pytorch.org/whl/cpu" if "torch" in packages else ""
    return (f"Install it from QGIS with Raster ▸ Patchwork ▸ Install Python dependencies…, or in a shell with "
            f"QGIS's Python: python3 -m pip install {specs}{numpy_pin}{cpu_torch} (keep numpy at the version QGIS "
            "has).")


def require(package: str, purpose: str):
    """The imported module for `package`, or a PatchworkError saying how to get it."""
    module_name, minimum = PACKAGES[package]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PatchworkError(
            f"{purpose}: the Python package '{package}' (version {minimum} or newer) is needed, and QGIS's Python "
            f"does not have it. {install_hint([package])}"
        ) from exc
    found = getattr(module, "__version__", "0")
    if version_tuple(found) < version_tuple(minimum):
        raise PatchworkError(
            f"{purpose}: '{package}' {minimum} or newer is needed; QGIS's Python has {found}. "
            f"{install_hint([package])}"
        )
    return module


def status() -> dict[str, str | None]:
    """Installed version of each optional package (None when missing), for the installer dialog."""
    found: dict[str, str | None] = {}
    for package, (module_name, _minimum) in PACKAGES.items():
        try:
            found[package] = getattr(importlib.import_module(module_name), "__version__", "?")
        except ImportError:
            found[package] = None
    return found


def missing_packages(packages: tuple[str, ...] | list[str]) -> str:
    """'' when every package is there (looked up, not imported: cheap), else what is missing and how to get it."""
    import importlib.util

    def absent(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is None
        except (ImportError, ValueError):  # a broken install, or an import hook that refuses it
            return True

    missing = [p for p in packages if absent(PACKAGES[p][0])]
    if not missing:
        return ""
    return (f"The Python package{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} needed and QGIS's Python does not have "
            f"{'them' if len(missing) > 1 else 'it'}. {install_hint(missing)}")
