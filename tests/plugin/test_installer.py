"""The dependency installer dialog: what it shows and the pip command it would run (never run here)."""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from patchwork.core.dependencies import PACKAGES


def test_installer_pins_numpy_installs_wheels_into_a_versioned_profile_folder(qgis_app, tmp_path, monkeypatch):
    from patchwork.ui import installer

    assert installer.dependencies_folder(str(tmp_path)).endswith(
        os.path.join("python", "dependencies", f"patchwork-py{sys.version_info.major}.{sys.version_info.minor}"))
    monkeypatch.setattr(installer, "status", lambda: {name: None if name == "onnxruntime" else "1.0"
                                                      for name in PACKAGES})
    folder = str(tmp_path / "deps")
    dialog = installer.InstallerDialog(folder=folder, python="/bin/echo")  # echo stands in for python: no pip run
    assert "onnxruntime: missing" in dialog.summary.text() and dialog.install_button.isEnabled()
    program, arguments = dialog.command()
    assert program == "/bin/echo"
    assert arguments[:3] == ["-m", "pip", "install"] and "--only-binary=:all:" in arguments
    assert arguments[arguments.index("--target") + 1] == folder
    constraints = arguments[arguments.index("-c") + 1]
    pins = open(constraints).read().split()
    assert f"numpy=={np.__version__}" in pins and all(pin.startswith(("numpy==", "scipy==")) for pin in pins)
    assert arguments[-1] == "onnxruntime>=1.16"  # only what is missing
    monkeypatch.setattr(installer, "status", lambda: {name: None if name in ("onnxruntime", "distributed") else "1.0"
                                                      for name in PACKAGES})
    dialog.refresh()
    assert "distributed: missing" in dialog.summary.text()
    assert not any(a.startswith("distributed") for a in dialog.command()[1])  # Dask only when asked for
    dialog.extras["distributed"].setChecked(True)
    assert dialog.command()[1][-2:] == ["onnxruntime>=1.16", "distributed>=2023.1"]
    dialog.extras["distributed"].setChecked(False)
    dialog.install()
    deadline = time.monotonic() + 10
    while "finished with code" not in dialog.output.toPlainText() and time.monotonic() < deadline:
        qgis_app.processEvents()
    text = dialog.output.toPlainText()
    assert "pip install" in text and "finished with code 0" in text  # the live output reached the dialog
    assert folder in sys.path  # what the installer put there is importable at once
    sys.path.remove(folder)
