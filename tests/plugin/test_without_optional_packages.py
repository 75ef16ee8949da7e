"""A QGIS whose Python lacks scikit-learn and onnxruntime: the plugin loads, lists everything, explains the rest."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import REPO, SHARED_DATA

SCRIPT = textwrap.dedent('''
    import importlib.abc, json, sys
    HIDDEN = {"sklearn", "onnxruntime", "skops", "skl2onnx", "onnx", "joblib", "torch"}

    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in HIDDEN:
                raise ImportError(f"No module named {name!r} (hidden by the test)")
            return None

    sys.meta_path.insert(0, Hide())
    from qgis.core import QgsApplication, QgsProcessingException
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.insert(0, "/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing
    Processing.initialize()
    import processing
    import patchwork
    plugin = patchwork.classFactory(None)
    plugin.initProcessing()
    out = {"algorithms": sorted(a.id() for a in plugin.provider.algorithms())}
    out["can_execute"] = {a.id(): list(a.canExecute()) for a in plugin.provider.algorithms()}
    s2, rules, onnx_model, work, index = sys.argv[1:6]
    result = processing.run("patchwork:classify", {"INPUT": s2, "MODEL": rules, "SCALE": 0.0001,
                                                   "OUTPUT": work + "/rules.tif"})
    out["rules_output"] = result["OUTPUT"]
    for name, algorithm, params in (
        ("onnx", "patchwork:classify", {"INPUT": s2, "MODEL": onnx_model, "BANDS": "1,2,3",
                                        "OUTPUT": work + "/onnx.tif"}),
        ("train", "patchwork:trainclassifier", {"INPUT": s2, "LABELS": work + "/rules.tif",
                                                "OUTPUT_MODEL": work + "/model.onnx"}),
        ("network", "patchwork:trainsegmentation", {"INPUT": index, "OUTPUT_MODEL": work + "/network.onnx"}),
    ):
        try:
            processing.run(algorithm, params)
            out[name] = "ran"
        except QgsProcessingException as exc:
            out[name] = str(exc)
    out["leaked"] = sorted(m for m in HIDDEN if m in sys.modules)
    print("RESULT" + json.dumps(out))
''')


def test_plugin_loads_and_explains_missing_packages(tmp_path, s2_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=os.path.join(REPO, ".build", "pkgroot"),
               GDAL_PAM_ENABLED="NO")
    onnx_model = os.path.join(SHARED_DATA, "models", "one_output_softmax_bsx2x512x512.onnx")
    rules = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")
    from patchwork.core import RegularSampler, classify, sample_chips

    labels = classify(s2_path, rules, str(tmp_path / "labels" / "rules.tif"), scale=1e-4).output
    index = sample_chips(s2_path, RegularSampler(step=64), 64, str(tmp_path / "chips"), labels=labels).index_path
    done = subprocess.run([sys.executable, "-c", SCRIPT, s2_path, rules, onnx_model, str(tmp_path), index], env=env,
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(lines[0][len("RESULT"):])
    assert result["algorithms"] == ["patchwork:accuracy", "patchwork:accuracysample",  # numpy + GDAL: all they need
                                    "patchwork:augmentchips", "patchwork:classify", "patchwork:compare",
                                    "patchwork:detect", "patchwork:recognize", "patchwork:samplechips",
                                    "patchwork:stitchchips", "patchwork:suggestlabels", "patchwork:superresolve",
                                    "patchwork:trainclassifier", "patchwork:trainsegmentation",
                                    "patchwork:workflow", "patchwork:workflownetwork", "patchwork:workflowpolygons"]
    assert os.path.exists(result["rules_output"])  # numpy + GDAL are enough for rules models
    # The toolbox greys out what cannot run at all, and says why: training (classify runs rules models)
    refused = {name: message for name, (ok, message) in result["can_execute"].items() if not ok}
    assert sorted(refused) == ["patchwork:detect", "patchwork:recognize", "patchwork:superresolve",
                               "patchwork:trainclassifier", "patchwork:trainsegmentation"]  # (ONNX models, training)
    assert "torch" in refused["patchwork:trainsegmentation"]
    # run anyway (scripts do): the core says what is missing and how to get PyTorch's CPU build
    assert "the Python package 'torch'" in result["network"] and "download.pytorch.org/whl/cpu" in result["network"]
    assert not os.path.exists(tmp_path / "network.onnx")
    assert "onnxruntime are needed" in refused["patchwork:detect"] or "onnxruntime is needed" in \
        refused["patchwork:detect"]
    assert "scikit-learn, skl2onnx, onnx, onnxruntime are needed" in refused["patchwork:trainclassifier"]
    assert "Install Python dependencies" in refused["patchwork:trainclassifier"]
    assert "ONNX models: the Python package 'onnxruntime' (version 1.16 or newer) is needed" in result["onnx"]
    assert "Install Python dependencies" in result["onnx"] and "python3 -m pip install" in result["onnx"]
    assert "Training (to export and check the model): the Python package" in result["train"]
    assert "Traceback" not in result["train"]
    assert result["leaked"] == []
    assert not os.path.exists(tmp_path / "onnx.tif") and not os.path.exists(tmp_path / "model.onnx")
