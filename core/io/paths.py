"""No output may name an input: checked before a run writes anything.

Paths are compared as the filesystem sees them: through symlinks and `..`, by file identity where
both exist (hard links, case-insensitive filesystems), and by folder containment for folder outputs
(a chip folder must not hold the run's own inputs, since replacing it would delete them).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from ..errors import PatchworkError

Paths = Mapping[str, "str | Iterable[str] | None"]


def file_of_source(source: str) -> str:
    """The file behind a GDAL/OGR/QGIS data source string (`x.gpkg|layername=chips` → `x.gpkg`)."""
    return source.split("|", 1)[0].strip()


def _real(path: str) -> str:
    return os.path.normcase(os.path.realpath(os.path.abspath(path)))


def _same(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return _real(a) == _real(b)


def _inside(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or lies below it."""
    real_folder = _real(folder)
    probe = _real(path)
    while True:
        if probe == real_folder or (os.path.exists(folder) and os.path.exists(probe)
                                    and os.path.samefile(probe, folder)):
            return True
        parent = os.path.dirname(probe)
        if parent == probe:
            return False
        probe = parent


def _flatten(paths: Paths) -> list[tuple[str, str]]:
    flat = []
    for role, value in paths.items():
        if not value:
            continue
        values = [value] if isinstance(value, str) else list(value)
        flat += [(role, file_of_source(v)) for v in values if v and not v.startswith("/vsi")]
    return flat


def check_outputs(outputs: Paths, inputs: Paths, folders: Paths | None = None) -> None:
    """Refuse a run whose outputs name one of its inputs, or each other.

    `outputs` are files the run writes; `folders` are output folders it replaces as a whole (no input
    may lie inside one); `inputs` are every file the run reads.
    """
    files, dirs, reads = _flatten(outputs), _flatten(folders or {}), _flatten(inputs)
    for out_role, out in files:
        for in_role, inp in reads:
            if _same(out, inp):
                raise PatchworkError(
                    f"{out_role}: '{out}' is the {in_role} of this run; writing it would destroy the {in_role}. "
                    "Choose another output name."
                )
    for out_role, folder in dirs:
        for in_role, inp in reads:
            if _inside(inp, folder):
                raise PatchworkError(
                    f"{out_role}: the folder '{folder}' holds the {in_role} '{inp}'; writing the new dataset there "
                    "would destroy it. Choose another folder."
                )
    written = files + dirs
    for i, (role_a, a) in enumerate(written):
        for role_b, b in written[i + 1 :]:
            if _same(a, b):
                raise PatchworkError(f"{role_b}: '{b}' is also {role_a}; give each output its own name.")
