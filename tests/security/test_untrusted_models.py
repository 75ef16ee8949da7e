"""No code runs from a model file unless the user trusts it: skops types are checked against an allowlist."""
from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

from patchwork.core import PatchworkError, classify, load_model
from patchwork.core.models.sklearn import SKLEARN_SUPPORT_TYPES, allowed_skops_types
from tests.cli.test_qgis_process import qgis_env, qgis_process  # noqa: F401 - fixture
from tests.conftest import files_under
from tests.hostile import exec_payload_skops


def test_the_payload_is_live_skops_runs_it_when_told_to_trust_exec(tmp_path):
    """The test's payload really runs code (so the refusals below mean something)."""
    import skops.io as sio

    marker = tmp_path / "ran"
    path = exec_payload_skops(str(tmp_path / "evil.skops"), str(marker))
    assert sio.get_untrusted_types(file=path) == ["builtins.exec"]
    sio.load(path, trusted=["builtins.exec"])
    assert marker.read_text() == "code from the model file ran"


def test_exec_payload_with_trust_off_runs_nothing(tmp_path, s2_path):
    marker = tmp_path / "ran"
    path = exec_payload_skops(str(tmp_path / "evil.skops"), str(marker))
    with pytest.raises(PatchworkError, match=r"builtins\.exec.*could run code.*TRUST_MODEL"):
        load_model(path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(PatchworkError, match=r"builtins\.exec"):
        classify(s2_path, path, str(out / "classes.tif"))
    assert not marker.exists() and files_under(str(out)) == []


def test_exec_payload_through_qgis_process_runs_nothing(tmp_path, s2_path, qgis_env):  # noqa: F811
    marker = tmp_path / "ran"
    path = exec_payload_skops(str(tmp_path / "evil.skops"), str(marker))
    done = qgis_process(qgis_env, "run", "patchwork:classify", "--", f"INPUT={s2_path}", f"MODEL={path}",
                        f"OUTPUT={tmp_path / 'classes.tif'}")
    assert done.returncode != 0 and "builtins.exec" in done.stdout + done.stderr
    assert not marker.exists() and not (tmp_path / "classes.tif").exists()


def test_allowlist_names_classes_only_never_builtins_or_callables():
    allowed = allowed_skops_types()
    assert not [t for t in allowed if not t.startswith("sklearn.")]
    for name in ("builtins.exec", "builtins.eval", "builtins.getattr", "builtins.__import__", "os.system",
                 "subprocess.Popen", "numpy.load", "sklearn.utils._joblib.load"):
        assert name not in allowed
    for name in SKLEARN_SUPPORT_TYPES:
        module, _, attr = name.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue  # another scikit-learn version's private name: harmless when absent
        assert isinstance(obj, type), f"{name} is not a class"


@pytest.mark.parametrize("estimator", ["random_forest", "extra_trees", "gradient_boosting", "logistic_regression",
                                       "knn", "mlp"])
def test_every_estimator_patchwork_trains_loads_from_skops_without_trust(tmp_path, estimator):
    import skops.io as sio

    from patchwork.core.tasks.train_classifier import make_estimator

    rng = np.random.default_rng(0)
    x = rng.random((300, 4)).astype(np.float32)
    y = (x[:, 0] * 3).astype(int)
    model = make_estimator(estimator, {"max_iter": 50} if estimator == "mlp" else None, 0).fit(x, y)
    path = str(tmp_path / f"{estimator}.skops")
    sio.dump(model, path)
    loaded = load_model(path)  # no trust
    assert loaded.info.n_classes == 3
    np.testing.assert_array_equal(np.argmax(loaded.predict_pixels(x), axis=1), model.predict(x))


def test_panel_model_check_runs_nothing(tmp_path, qgis_app, qgis_iface, patchwork_provider):
    from patchwork.ui.dock import PatchworkDock

    marker = tmp_path / "ran"
    path = exec_payload_skops(str(tmp_path / "evil.skops"), str(marker))
    panel = PatchworkDock(qgis_iface)
    try:
        panel.classify.model_file.setFilePath(path)  # picking the file is what triggers the check
        qgis_app.processEvents()
        assert not panel.classify.check_model()
        assert "builtins.exec" in panel.classify.model_info.text()
        assert not marker.exists()
    finally:
        panel.cleanup()


def test_pickles_still_need_trust(tmp_path):
    import pickle

    marker = tmp_path / "ran"
    path = tmp_path / "model.pkl"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(PatchworkError, match="pickle.*TRUST_MODEL=true"):
        load_model(str(path))
    assert not marker.exists()
