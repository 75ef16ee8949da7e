"""The plugin zip holds only what git tracks: no stray file from disk, nothing through a symbolic link."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

from tests.conftest import REPO


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def test_untracked_files_and_symlinks_stay_out(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", REPO, str(clone)], check=True)
    (clone / "core" / ".env").write_text("API_KEY=secret\n")  # untracked
    os.symlink("/etc/hostname", clone / "resources" / "hostname")  # untracked link
    os.symlink("/etc/hostname", clone / "plugin" / "tracked_link")  # a link that is even committed
    git(clone, "add", "plugin/tracked_link")
    git(clone, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a link")
    built = subprocess.run([sys.executable, str(clone / "scripts" / "package.py"), str(tmp_path / "dist"), str(clone)],
                           capture_output=True, text=True, check=True)
    names = set(zipfile.ZipFile(built.stdout.strip()).namelist())
    assert not {"patchwork/core/.env", "patchwork/resources/hostname", "patchwork/plugin/tracked_link"} & names
    assert "left out 'plugin/tracked_link': a symbolic link" in built.stderr
    tracked = {f"patchwork/{n}" for n in git(clone, "ls-files", "metadata.txt", "__init__.py", "LICENSE", "README.md",
                                             "requirements.txt", "core", "plugin", "ui", "resources").split()}
    assert names == tracked - {"patchwork/plugin/tracked_link"}
