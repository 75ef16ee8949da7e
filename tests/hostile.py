"""Hostile inputs built by the tests themselves: a code-running .skops file, a slow qgis_process run, a tmpfs."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import zipfile

import pytest

from tests.cli.test_qgis_process import QGIS_PROCESS


def exec_payload_skops(path: str, marker: str) -> str:
    """A .skops file whose dict key type is `builtins.exec`: loading it with that type trusted runs the key."""
    import skops.io as sio

    code = f"open({marker!r}, 'w').write('code from the model file ran')"
    sio.dump({code: 1}, path)
    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))
    schema["key_types"]["content"][0]["__class__"] = "exec"  # module stays "builtins"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return path


def start_qgis_process(env: dict, algorithm: str, *parameters: str) -> subprocess.Popen:
    return subprocess.Popen([QGIS_PROCESS, "run", algorithm, "--", *parameters], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for_entry(folder: str, prefix: str, process: subprocess.Popen, timeout: float = 120) -> str:
    """Wait until a run has created a file starting with `prefix` in `folder` (it is then mid-run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in os.listdir(folder) if e.startswith(prefix)]
        if found:
            return found[0]
        if process.poll() is not None:
            pytest.fail(f"the run ended before writing {prefix}…: {process.stdout.read()}")
        time.sleep(0.05)
    pytest.fail(f"no {prefix}… in {folder} after {timeout} s")


@pytest.fixture
def small_disk(tmp_path):
    """A 96 KiB tmpfs: a disk that fills up (needs root, as CI and the make targets run)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
