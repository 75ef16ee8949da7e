"""Installs Patchwork's optional Python packages for QGIS's Python, when the user asks for it.

pip installs binary wheels only into a folder of the QGIS profile keyed to the Python version (never into
the plugin folder, never over QGIS's own packages), with a constraints file pinning the numpy QGIS
has, so pip cannot replace it. The folder is put on sys.path when the plugin loads.
"""
from __future__ import annotations

import os
import sys

from qgis.PyQt.QtCore import QCoreApplication, QProcess
from qgis.PyQt.QtWidgets import QCheckBox, QDialog, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout

from ..core.dependencies import ON_REQUEST, PACKAGES, status


def tr(text: str) -> str:
    return QCoreApplication.translate("PatchworkInstaller", text)


def dependencies_folder(settings_dir: str | None = None) -> str:
    """<QGIS profile>/python/dependencies/patchwork-py3.11: one folder per Python version."""
    if settings_dir is None:
        from qgis.core import QgsApplication

        settings_dir = QgsApplication.qgisSettingsDirPath()
    version = f"py{sys.version_info.major}.{sys.version_info.minor}"
    return os.path.join(settings_dir, "python", "dependencies", f"patchwork-{version}")


def activate(folder: str | None = None) -> None:
    """Put the dependencies folder on sys.path (after QGIS's own packages, so those always win)."""
    folder = folder or dependencies_folder()
    if os.path.isdir(folder) and folder not in sys.path:
        sys.path.append(folder)


def python_executable() -> str:
    """QGIS's Python interpreter (inside QGIS, sys.executable is QGIS itself)."""
    name = "python.exe" if os.name == "nt" else f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (os.path.join(sys.exec_prefix, name), os.path.join(sys.exec_prefix, "bin", name),
                      os.path.join(sys.exec_prefix, "bin", "python3")):
        if os.path.isfile(candidate):
            return candidate
    return sys.executable


def qgis_pins() -> list[str]:
    """Versions pip must keep: the numpy GDAL and QGIS are built on, and a scipy QGIS's Python already has.

    The install folder comes after QGIS's own packages on sys.path, so these are the versions that load.
    """
    import numpy

    pins = [f"numpy=={numpy.__version__}"]
    try:
        import scipy

        pins.append(f"scipy=={scipy.__version__}")
    except ImportError:
        pass
    return pins


# PyTorch's own index of CPU builds: PyPI's Linux torch is a CUDA build of several GB. Its CPU build of a release
# ("2.9.1+cpu") ranks above PyPI's ("2.9.1"), so pip takes it.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def pip_arguments(packages: list[str], folder: str, constraints: str) -> list[str]:
    specs = [f"{name}>={PACKAGES[name][1]}" for name in packages]
    cpu_torch = ["--extra-index-url", TORCH_CPU_INDEX] if "torch" in packages else []
    return ["-m", "pip", "install", "--disable-pip-version-check", "--only-binary=:all:", "--upgrade",
            "--target", folder, "-c", constraints, *cpu_torch, *specs]


class InstallerDialog(QDialog):
    """Shows which optional packages are there, and installs the missing ones on the user's click."""

    def __init__(self, parent=None, folder: str | None = None, python: str | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("PatchworkInstaller")
        self.setWindowTitle(tr("Patchwork: Python dependencies"))
        self.folder = folder or dependencies_folder()
        self.python = python or python_executable()
        layout = QVBoxLayout(self)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.extras = {}
        for name, purpose in ON_REQUEST.items():
            box = QCheckBox(tr("Also install {} ({})").format(name, purpose))
            box.toggled.connect(self.refresh)
            layout.addWidget(box)
            self.extras[name] = box
        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setToolTip(tr("pip's output, as it runs"))
        layout.addWidget(self.output)
        self.install_button = QPushButton(tr("Install missing packages"))
        self.install_button.setToolTip(tr("Runs pip (binary wheels only, numpy pinned) into {}").format(self.folder))
        self.install_button.clicked.connect(self.install)
        layout.addWidget(self.install_button)
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read_output)
        self.process.finished.connect(self._finished)
        self.refresh()

    def missing(self) -> list[str]:
        """Missing packages to install: every one, except those installed on request and not asked for."""
        return [name for name, version in self.found.items()
                if version is None and (name not in self.extras or self.extras[name].isChecked())]

    def refresh(self) -> None:
        self.found = status()
        lines = [f"{name}: {version or tr('missing')} ({tr('needs')} ≥ {PACKAGES[name][1]})"
                 + (f" — {tr('optional')}" if name in ON_REQUEST else "") for name, version in self.found.items()]
        self.summary.setText("\n".join(lines) + "\n" + tr("Install folder: {}").format(self.folder))
        idle = self.process.state() == QProcess.ProcessState.NotRunning
        self.install_button.setEnabled(bool(self.missing()) and idle)

    def command(self) -> tuple[str, list[str]]:
        os.makedirs(self.folder, exist_ok=True)
        constraints = os.path.join(self.folder, "constraints.txt")
        with open(constraints, "w", encoding="utf-8") as fh:
            fh.write("\n".join(qgis_pins()) + "\n")
        return self.python, pip_arguments(self.missing(), self.folder, constraints)

    def install(self) -> None:
        program, arguments = self.command()
        self.output.appendPlainText("$ " + " ".join([program, *arguments]))
        self.install_button.setEnabled(False)
        self.process.start(program, arguments)

    def _read_output(self) -> None:
        text = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
        self.output.appendPlainText(text.rstrip())

    def _finished(self, code: int, _status) -> None:
        activate(self.folder)
        self.output.appendPlainText(tr("pip finished with code {}.").format(code))
        self.refresh()
