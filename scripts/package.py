"""Builds dist/patchwork-<version>.zip, the zip QGIS's "Install from ZIP" and the plugin repository take.

Inside: one folder `patchwork/` with metadata.txt, __init__.py, LICENSE, README.md, requirements.txt and
the core/, plugin/, ui/ and resources/ folders — only files git tracks (never a stray file that happens
to be on disk, such as a `.env`), and never through a symbolic link (a link could ship any file of the
machine that builds the zip). No tests, scripts, docs, caches or dev files.
"""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ["metadata.txt", "__init__.py", "LICENSE", "README.md", "requirements.txt"]
FOLDERS = ["core", "plugin", "ui", "resources"]


def version(repo: str = REPO) -> str:
    with open(os.path.join(repo, "metadata.txt"), encoding="utf-8") as fh:
        return next(line.split("=", 1)[1].strip() for line in fh if line.startswith("version="))


def shipped_files(repo: str = REPO) -> list[str]:
    """The repository-relative paths that go into the zip: tracked by git, regular files, in the plugin's parts."""
    try:
        listed = subprocess.run(["git", "-C", repo, "ls-files", "-z", "--", *FILES, *FOLDERS],
                                capture_output=True, check=True).stdout.decode("utf-8")
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"package: {repo!r} must be a git checkout (the zip holds only tracked files): {exc}") from exc
    shipped = []
    for name in sorted(n for n in listed.split("\0") if n):
        full = os.path.join(repo, name)
        if os.path.islink(full) or any(os.path.islink(os.path.join(repo, *name.split("/")[:i]))
                                       for i in range(1, name.count("/") + 1)):
            print(f"package: left out '{name}': a symbolic link", file=sys.stderr)
            continue
        if not os.path.isfile(full) or name.endswith((".pyc", ".pyo")):
            continue
        shipped.append(name)
    missing = [name for name in FILES if name not in shipped]
    if missing:
        raise SystemExit(f"package: {', '.join(missing)} not tracked by git")
    return shipped


def build(target_dir: str, repo: str = REPO) -> str:
    os.makedirs(target_dir, exist_ok=True)
    path = os.path.join(target_dir, f"patchwork-{version(repo)}.zip")
    tmp = path + ".partial"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in shipped_files(repo):
            archive.write(os.path.join(repo, name), f"patchwork/{name}")
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "dist")
    print(build(target, sys.argv[2] if len(sys.argv) > 2 else REPO))
