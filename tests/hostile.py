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


def _rewrite_skops(path: str, edit_schema=None, edit_arrays=None) -> str:
    """Rewrite a .skops file in place: `edit_schema(schema)` on its JSON, `edit_arrays(name, array)` on its .npy."""
    import io

    import numpy as np

    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(members.pop("schema.json"))
    if edit_schema:
        edit_schema(schema)
    if edit_arrays:
        for name, data in list(members.items()):
            array = edit_arrays(name, np.load(io.BytesIO(data), allow_pickle=False), schema)
            if array is not None:
                buffer = io.BytesIO()
                np.save(buffer, array, allow_pickle=False)
                members[name] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def import_payload_skops(path: str, module: str) -> str:
    """A real random forest's .skops with a `LossNode` naming `module` deep inside (as one of its trees' settings):
    skops imports `module` as soon as it builds that node, even only to list the file's types."""
    import numpy as np
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    x = np.random.default_rng(0).random((60, 3))
    sio.dump(RandomForestClassifier(n_estimators=2, max_depth=2, random_state=0).fit(x, (x[:, 0] > 0.5)), path)

    def plant(schema):
        tree = schema["content"]["content"]["estimators_"]["content"][1]
        tree["content"]["content"]["criterion"] = {
            "__class__": "Payload", "__module__": module, "__loader__": "LossNode",
            "__reduce__": {"args": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                                    "content": []}},
            "content": {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": {}}}
    return _rewrite_skops(path, edit_schema=plant)


def crafted_tree_skops(path: str, field: str, value) -> str:
    """A fitted DecisionTreeClassifier of allow-listed types whose node array has `field` of the root set to `value`
    (e.g. left_child 10**9, feature 10**6): scikit-learn's compiled traversal follows it out of bounds."""
    import numpy as np
    import skops.io as sio
    from sklearn.tree import DecisionTreeClassifier

    x = np.random.default_rng(0).random((100, 4))
    sio.dump(DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, (x[:, 0] * 3).astype(int)), path)

    def edit(name, array, schema):
        nodes_file = schema["content"]["content"]["tree_"]["content"]["content"]["nodes"]["file"]
        if name == nodes_file:
            array = array.copy()
            array[0][field] = value
            return array
        return None
    return _rewrite_skops(path, edit_arrays=edit)
