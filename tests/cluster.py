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
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs none {hidden}"], capture_output=True,
                           text=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode:
        return None
    started = []
    for number in range(count):
        own = os.path.join(folder, f"worker{number}")
        os.makedirs(own)
        started.append(subprocess.Popen(
            ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none "$0" && cd "$1" && exec "$2" -m '
             'distributed.cli.dask_worker "$3" --no-nanny --nthreads 1 --no-dashboard --local-directory "$1"', hidden,
             own, sys.executable, scheduler], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return started
