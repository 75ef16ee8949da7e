"""A .skops file from an unknown source: its schema is checked as JSON before skops builds anything, and the
fitted arrays scikit-learn's compiled code walks are checked before anything predicts (#29, items 1 and 2)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from patchwork.core import PatchworkError, load_model
from tests.hostile import crafted_tree_skops, import_payload_skops

PAYLOAD = "patchwork_test_payload_module"


def run_python(code: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    """`code` in a child Python that imports this patchwork (so a crash or an exit does not take pytest down)."""
    import os

    import patchwork

    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(patchwork.__file__)))}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120)


@pytest.fixture
def payload_module(tmp_path, monkeypatch):
    """An importable module that leaves a marker file when imported."""
    marker = tmp_path / "imported"
    (tmp_path / "mods").mkdir()
    source = f"with open({str(marker)!r}, 'w') as f:\n    f.write('imported')\n"
    (tmp_path / "mods" / f"{PAYLOAD}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    monkeypatch.delitem(sys.modules, PAYLOAD, raising=False)
    return marker


def test_the_payload_is_live_skops_imports_it_to_list_types(tmp_path, payload_module):
    """What the old check did (ask skops for the untrusted types) imports the module the file names."""
    import skops.io as sio

    path = import_payload_skops(str(tmp_path / "forest.skops"), PAYLOAD)
    try:
        sio.get_untrusted_types(file=path)
    except Exception:  # noqa: BLE001, S110 - skops may fail after the import; the import is what matters
        pass
    if not payload_module.exists():
        import skops

        pytest.skip(f"skops {skops.__version__} no longer imports the module while listing types")
    assert payload_module.read_text() == "imported"


def test_a_module_named_deep_in_a_real_forest_is_never_imported(tmp_path, payload_module):
    path = import_payload_skops(str(tmp_path / "forest.skops"), PAYLOAD)
    with pytest.raises(PatchworkError, match=rf"{PAYLOAD}\.Payload \(through skops's LossNode\).*TRUST_MODEL"):
        load_model(path)
    assert not payload_module.exists() and PAYLOAD not in sys.modules


@pytest.mark.parametrize("module", ["unittest.__main__", "this"])
def test_standard_library_modules_with_side_effects_are_not_imported(tmp_path, module):
    """`unittest.__main__` runs test discovery and exits, `this` prints: in a child process, to see both."""
    path = import_payload_skops(str(tmp_path / "forest.skops"), module)
    code = ("import sys; from patchwork.core.models import load_model\n"
            "try:\n    load_model(sys.argv[1])\nexcept Exception as exc:\n    print('REFUSED', exc)\n"
            f"print('IMPORTED' if {module!r} in sys.modules else 'CLEAN')")
    done = run_python(code, path, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "REFUSED" in done.stdout and done.stdout.rstrip().endswith("CLEAN")
    assert "Beautiful is better" not in done.stdout


def test_callables_and_unknown_loaders_are_refused(tmp_path):
    import json
    import zipfile

    import skops.io as sio

    path = str(tmp_path / "fn.skops")
    sio.dump({"f": np.add}, path)  # a numpy ufunc: skops trusts it by default, Patchwork does not load callables
    with zipfile.ZipFile(path) as archive:
        loaders = {n["__loader__"] for n in _nodes(json.loads(archive.read("schema.json")))}
    assert "FunctionNode" in loaders
    with pytest.raises(PatchworkError, match="through skops's FunctionNode"):
        load_model(path)


def _nodes(item):
    if isinstance(item, dict):
        if "__loader__" in item:
            yield item
        for value in item.values():
            yield from _nodes(value)
    elif isinstance(item, list):
        for value in item:
            yield from _nodes(value)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("left_child", 10**9, "child index points outside"),
    ("right_child", 0, "child index points outside the tree or backwards"),  # a cycle: traversal never ends
    ("feature", 10**6, "splits on a band outside"),
    ("threshold", float("nan"), "threshold that is not a finite"),
])
def test_a_crafted_tree_is_refused_before_it_can_crash(tmp_path, field, value, message):
    """Loaded and used in a child process: on the old code the process died (SIGSEGV) or hung."""
    path = crafted_tree_skops(str(tmp_path / "tree.skops"), field, value)
    code = ("import sys, numpy as np; from patchwork.core.models import load_model\n"
            "model = load_model(sys.argv[1])\n"
            "print(model.predict_pixels(np.random.default_rng(0).random((5000, 4)).astype(np.float32)).shape)")
    done = run_python(code, path)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr[-2000:])
    assert "is damaged or crafted" in done.stderr and message in done.stderr


def test_crafted_values_still_load_when_trusted(tmp_path):
    """Trust is the user's word: the values are not second-guessed (the file is theirs)."""
    path = crafted_tree_skops(str(tmp_path / "tree.skops"), "threshold", float("inf"))
    assert load_model(path, trust=True).info.n_bands == 4


def test_a_neighbours_index_from_the_file_is_never_followed(tmp_path):
    """A k-NN model's KD-tree is rebuilt from its training points: a crafted index array changes nothing."""
    import skops.io as sio
    from sklearn.neighbors import KNeighborsClassifier

    x = np.random.default_rng(1).random((200, 3))
    model = KNeighborsClassifier(n_neighbors=3, algorithm="kd_tree").fit(x, (x[:, 1] * 4).astype(int))
    model._tree.get_arrays()[1][:] = 10**9  # idx_array, as a crafted file would hold it
    path = str(tmp_path / "knn.skops")
    sio.dump(model, path)
    loaded = load_model(path)
    assert np.array_equal(np.asarray(loaded.estimator._tree.get_arrays()[1]) < 200, np.ones(200, bool))
    clean = KNeighborsClassifier(n_neighbors=3, algorithm="kd_tree").fit(x, (x[:, 1] * 4).astype(int))
    np.testing.assert_array_equal(np.argmax(loaded.predict_pixels(x), axis=1), clean.predict(x))


def test_estimators_patchwork_cannot_check_need_trust(tmp_path):
    import skops.io as sio
    from sklearn.svm import SVC

    x = np.random.default_rng(2).random((80, 3))
    path = str(tmp_path / "svc.skops")
    sio.dump(SVC().fit(x, (x[:, 0] > 0.5).astype(int)), path)
    with pytest.raises(PatchworkError, match="holds a SVC.*TRUST_MODEL=true"):
        load_model(path)
    assert load_model(path, trust=True).info.n_classes == 2


def test_loss_nodes_pass_only_for_allow_listed_losses(tmp_path):
    """Newer skops writes a fitted gradient boosting's loss through LossNode, which imports the module it names:
    the audit lets it through for scikit-learn's own losses only."""
    import json
    import zipfile

    from patchwork.core.models.sklearn import allowed_skops_types
    from patchwork.core.models.skops_checks import audit_schema

    def schema_with(module: str, name: str) -> str:
        path = str(tmp_path / f"{name}.skops")
        node = {"__class__": name, "__module__": module, "__loader__": "LossNode", "content": {}}
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("schema.json", json.dumps({"__class__": "dict", "__module__": "builtins",
                                                        "__loader__": "DictNode", "content": {"loss": node},
                                                        "protocol": 2}))
        return path
    allowed = allowed_skops_types()
    assert audit_schema(schema_with("sklearn._loss._loss", "CyHalfMultinomialLoss"), allowed) == []
    assert audit_schema(schema_with("os", "system"), allowed) == ["os.system (through skops's LossNode)"]
