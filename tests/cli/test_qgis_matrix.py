"""make test-qgis explains what it cannot do before it builds or mounts anything."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO

SCRIPT = os.path.join(REPO, "scripts", "test_qgis_version.sh")


def run(*command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=60, **kwargs)


def test_a_version_outside_the_matrix_is_refused_with_the_ones_there_are():
    done = run("make", "-C", REPO, "--no-print-directory", "test-qgis", "QGIS=3.30")
    assert done.returncode != 0
    assert "QGIS=3.30 is not in the matrix" in done.stderr
    assert "QGIS=3.40 (Debian 13 trixie)" in done.stderr and "QGIS=3.44" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop to another user")
def test_without_root_it_says_to_use_sudo(tmp_path):
    cache = tmp_path / "roots"
    done = run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", SCRIPT, "3.40",
               env=dict(os.environ, PATCHWORK_ROOTS=str(cache)))
    assert done.returncode == 2
    assert "needs root" in done.stderr and "sudo make test-qgis QGIS=3.40" in done.stderr
    assert not cache.exists()  # nothing was built
