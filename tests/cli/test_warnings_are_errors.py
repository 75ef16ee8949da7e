"""The QGIS processes the tests start turn warnings from Patchwork's code into errors, as pytest does."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.cli.test_qgis_process import QGIS_PROCESS
from tests.conftest import QGIS_STARTUP

PROBE = """
import runpy, warnings
runpy.run_path({startup!r})
import qgis.utils  # already imported: its simplefilter("default") does not run again
for module, expected in (("patchwork.core.io.raster", True), ("patchwork", True), ("numpy", False)):
    try:
        warnings.warn_explicit("probe", DeprecationWarning, "probe.py", 1, module=module)
        raised = False
    except DeprecationWarning:
        raised = True
    assert raised == expected, (module, raised)
print("ok")
"""


def test_the_startup_file_keeps_patchwork_warnings_errors_after_qgis_utils():
    done = subprocess.run([sys.executable, "-c", PROBE.format(startup=QGIS_STARTUP)], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr


def test_qgis_process_runs_the_startup_file(tmp_path):
    marker = tmp_path / "ran"
    startup = tmp_path / "startup.py"
    startup.write_text(f"open({str(marker)!r}, 'w').close()\n")
    done = subprocess.run([QGIS_PROCESS, "list"], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYQGIS_STARTUP=str(startup), QT_QPA_PLATFORM="offscreen",
                                   QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile")))
    assert done.returncode == 0, done.stderr
    assert marker.exists(), "qgis_process did not run PYQGIS_STARTUP: warnings in its runs would pass unseen"
