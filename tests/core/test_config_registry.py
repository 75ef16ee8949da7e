"""Configs name every concrete class after `import patchwork.core` alone, never a base, and carry their format."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from patchwork.core import PatchworkError, from_config
from patchwork.core.config import CONFIG_FORMAT, registered
from patchwork.core.version import PATCHWORK_VERSION
from tests.conftest import REPO

# The parameters without a default; every other class builds from its name alone.
REQUIRED = {"RegularSampler": {"step": 16}, "JitteredSampler": {"step": 16}, "PoissonDiskSampler": {"min_distance": 8},
            "RandomSampler": {"count": 5}}
FRESH = """
import json, sys
import patchwork.core
from patchwork.core import from_config
names, required = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({name: type(from_config({"class": name, "config": required.get(name, {})})).__name__
                  for name in names}))
"""


def test_every_registered_class_builds_from_its_name_in_a_fresh_process_after_import_patchwork_core():
    buildable = sorted(registered())
    assert len(buildable) >= 18
    done = subprocess.run([sys.executable, "-c", FRESH, json.dumps(buildable), json.dumps(REQUIRED)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    built = json.loads(done.stdout)
    assert built == {name: name for name in buildable}


@pytest.mark.parametrize("base", ["Sampler", "Augmentation", "Radiometric", "FactorJitter", "Mixing"])
def test_base_classes_are_refused_with_their_kinds(base):
    with pytest.raises(PatchworkError, match=f"'{base}' is a base class.*use one of"):
        from_config({"class": base, "config": {}})


def test_configs_carry_format_and_version_and_older_ones_still_read():
    config = from_config({"class": "RandomFlip", "config": {"p_horizontal": 0.3}}).to_config()  # no stamp: format 1
    assert config["format"] == CONFIG_FORMAT and config["patchwork"] == PATCHWORK_VERSION
    assert PATCHWORK_VERSION in open(f"{REPO}/metadata.txt", encoding="utf-8").read()
    assert from_config(config).to_config() == config


def test_a_config_from_a_newer_format_is_refused_with_both_versions():
    newer = {"class": "RandomFlip", "config": {}, "format": CONFIG_FORMAT + 1, "patchwork": "9.9.9"}
    with pytest.raises(PatchworkError, match=r"written by Patchwork 9\.9\.9 in config format 2.*Update Patchwork"):
        from_config(newer)


def test_settings_beside_config_are_refused_not_silently_left_out():
    # {"class": "Compose", "ops": [...]} once built an empty Compose: an augmentation that changed nothing
    with pytest.raises(PatchworkError, match=r"'ops' beside \"class\"; settings go inside \"config\""):
        from_config({"class": "Compose", "ops": [{"class": "RandomFlip", "config": {}}]})
    with pytest.raises(PatchworkError, match=r"'p_horizontal'"):
        from_config({"class": "RandomFlip", "p_horizontal": 1.0, "config": {}})
