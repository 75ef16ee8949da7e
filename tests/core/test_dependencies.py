"""Optional packages: clear messages when one is missing or too old, and for ONNX files newer than onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest

from patchwork.core import PatchworkError, dependencies, load_model
from tests.onnx_models import conv_model


def test_missing_package_message_names_package_version_and_install(monkeypatch):
    monkeypatch.setitem(dependencies.PACKAGES, "onnxruntime", ("onnxruntime_not_installed", "1.16"))
    with pytest.raises(PatchworkError) as error:
        dependencies.require("onnxruntime", "ONNX models")
    message = str(error.value)
    assert "ONNX models: the Python package 'onnxruntime' (version 1.16 or newer) is needed" in message
    assert "Install Python dependencies" in message and f"numpy=={np.__version__}" in message


def test_too_old_package_is_refused(monkeypatch):
    monkeypatch.setitem(dependencies.PACKAGES, "onnxruntime", ("onnxruntime", "99.0"))
    with pytest.raises(PatchworkError, match=r"'onnxruntime' 99.0 or newer is needed; QGIS's Python has 1\."):
        dependencies.require("onnxruntime", "ONNX models")


def test_status_reports_installed_versions():
    found = dependencies.status()
    assert set(found) == set(dependencies.PACKAGES) and found["onnxruntime"]


def test_onnx_file_newer_than_onnxruntime_gets_a_clear_message(tmp_path):
    import onnx

    path = conv_model(str(tmp_path / "new.onnx"), np.ones((2, 3, 1, 1)))
    model = onnx.load(path)
    model.ir_version = 99  # a file from a far newer exporter
    onnx.save(model, path)
    with pytest.raises(PatchworkError, match="saved for a newer onnxruntime than the installed") as error:
        load_model(path)
    assert "older opset" in str(error.value)
