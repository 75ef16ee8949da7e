"""The packaged zip, installed as QGIS installs a zip into a fresh profile, runs headless."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile

import numpy as np
from osgeo import gdal

from tests.cli.test_qgis_process import QGIS_PROCESS
from tests.conftest import REPO


def test_zip_installs_into_a_fresh_profile_and_classifies(tmp_path, s2_path):
    built = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "package.py"), str(tmp_path / "dist")],
                           capture_output=True, text=True, check=True)
    archive = built.stdout.strip()
    names = zipfile.ZipFile(archive).namelist()
    assert all(name.startswith("patchwork/") for name in names)
    assert {"patchwork/metadata.txt", "patchwork/__init__.py", "patchwork/LICENSE",
            "patchwork/resources/icons/patchwork.svg"} <= set(names)
    assert not [n for n in names if "/tests/" in n or "__pycache__" in n or n.endswith(".pyc")]
    metadata = zipfile.ZipFile(archive).read("patchwork/metadata.txt").decode()
    assert "qgisMaximumVersion=4.99" in metadata and "supportsQt6=True" in metadata

    profile = tmp_path / "qgis"  # what Plugins ▸ Install from ZIP does: unpack into the profile's plugins
    plugins = profile / "profiles" / "default" / "python" / "plugins"
    zipfile.ZipFile(archive).extractall(plugins)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(profile),
               PYTHONPATH=sysconfig.get_paths()["purelib"], GDAL_PAM_ENABLED="NO")
    for inherited in ("QGIS_PLUGINPATH", "QGIS_OPTS", "QGIS_OPTIONS_PATH"):
        env.pop(inherited, None)

    def qgis_process(*args):
        return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=300)

    enabled = qgis_process("plugins", "enable", "patchwork")
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    model = plugins / "patchwork" / "resources" / "models" / "ndvi_ndwi_rules.json"
    out = tmp_path / "classes.tif"
    done = qgis_process("run", "patchwork:classify", "--json", "--", f"INPUT={s2_path}", f"MODEL={model}",
                        "SCALE=0.0001", f"OUTPUT={out}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["results"]["OUTPUT"] == str(out)
    classes = gdal.Open(str(out)).ReadAsArray()
    assert set(np.unique(classes)) == {0, 1, 2}
