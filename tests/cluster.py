"""Dask workers for tests and benchmarks that share no filesystem with the client."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys


def workers_without_our_files(scheduler: str, hidden: str, folder: str, count: int = 2) -> list | None:
    """`count` Dask worker processes, each with its own working folder under `folder`, that cannot see `hidden`:
    each runs in a mount namespace of its own where an empty tmpfs lies over it, as on a machine that shares no
    filesystem with the client (None without root or util-linux's unshare)."""
    unshare = _private_namespace(hidden)
    if unshare is None:
        return None
    started = []
    for number in range(count):
        own = os.path.join(folder, f"worker{number}")
        os.makedirs(own)
        started.append(subprocess.Popen(
            [*unshare, "sh", "-c", 'mount -t tmpfs none "$0" && cd "$1" && exec "$2" -m '
             'distributed.cli.dask_worker "$3" --no-nanny --nthreads 1 --no-dashboard --local-directory "$1"', hidden,
             own, sys.executable, scheduler], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return started


def _private_namespace(hidden: str) -> list[str] | None:
    """The unshare command whose mounts stay in the new namespace, or None.

    `unshare -m` makes every mount private, which fails in a chroot (its root is no mount point: the Debian roots of
    `make test-qgis`). There the namespace it was started in must already be private (no "shared:" peer group on the
    mount holding `hidden`, as the roots' wrapper makes it), and the mounts are left as they are.
    """
    if not shutil.which("unshare"):
        return None
    for command in (["unshare", "-m"], ["unshare", "-m", "--propagation", "unchanged"]):
        if "unchanged" in command and _shared(hidden):
            continue
        probe = subprocess.run([*command, "sh", "-c", f"mount -t tmpfs none {hidden}"], capture_output=True)
        if probe.returncode == 0:
            return command
    return None


def _shared(path: str) -> bool:
    """True when the mount holding `path` propagates its mounts to other namespaces (or that cannot be told)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            mounts = [line.split() for line in fh]
    except OSError:
        return True
    path = os.path.realpath(path)
    holding = max((m for m in mounts if path == m[4] or path.startswith(m[4].rstrip("/") + "/")),
                  key=lambda m: len(m[4]), default=None)
    return holding is None or any(field.startswith("shared:") for field in holding[6 : holding.index("-")])
