"""One holder of an output's lock, even when several runs race to take over a dead run's lock (#29, item 8)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from patchwork.core import PatchworkError
from patchwork.core.io.partials import OutputLock

RACER = """
import os, sys, time
from patchwork.core import PatchworkError
from patchwork.core.io.partials import OutputLock
target, journal, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
while time.time() < start:
    pass
try:
    lock = OutputLock(target, "OUTPUT").acquire()
except PatchworkError:
    sys.exit(0)
with open(journal, "a") as fh:
    fh.write(f"+{os.getpid()}\\n")
time.sleep(0.2)
with open(journal, "a") as fh:
    fh.write(f"-{os.getpid()}\\n")
lock.release()
"""


def dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def child_env() -> dict:
    import patchwork

    return {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(patchwork.__file__)))}


@pytest.mark.skipif(os.name == "nt", reason="the race is tested where flock exists")
def test_racing_take_overs_of_a_dead_lock_give_one_holder_at_a_time(tmp_path):
    target = tmp_path / "classes.tif"
    lock_file = tmp_path / ".classes.tif.lock"
    overlaps = []
    for trial in range(12):
        lock_file.write_text(json.dumps({"host": socket.gethostname(), "pid": dead_pid(), "started": "before"}))
        journal = tmp_path / f"journal-{trial}.txt"
        start = time.time() + 1.0
        racers = [subprocess.Popen([sys.executable, "-c", RACER, str(target), str(journal), str(start)],
                                   env=child_env()) for _ in range(6)]
        assert all(r.wait(timeout=60) == 0 for r in racers)
        holding = most = 0
        for line in journal.read_text().split():
            holding += 1 if line[0] == "+" else -1
            most = max(most, holding)
        overlaps.append(most)
    assert overlaps == [1] * 12, overlaps  # the old read → remove → create gave 2-3 holders in 13 of 30 trials
    assert not lock_file.exists()


def test_a_lock_naming_a_live_unrelated_process_says_which_file_to_remove(tmp_path):
    lock_file = tmp_path / ".classes.tif.lock"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock_file.write_text(json.dumps({"host": socket.gethostname(), "pid": sleeper.pid, "started": "before"}))
        with pytest.raises(PatchworkError, match=rf"names the running process {sleeper.pid}.*delete '{lock_file}'"):
            OutputLock(str(tmp_path / "classes.tif"), "OUTPUT").acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert lock_file.exists()  # not the run's to remove


@pytest.mark.parametrize("content", ['{"host": "%s", "pid": 99999999999}', '{"pid": -3}', "not json", ""])
def test_an_unreadable_owner_is_taken_over_with_a_message(tmp_path, content):
    lock_file = tmp_path / ".classes.tif.lock"
    lock_file.write_text(content.replace("%s", socket.gethostname()))
    log = []
    lock = OutputLock(str(tmp_path / "classes.tif"), "OUTPUT", log.append).acquire()
    assert json.loads(lock_file.read_text())["pid"] == os.getpid()
    lock.release()
    assert not lock_file.exists()
    assert (log == []) if content == "" else ("cannot name" in log[0])


def test_a_held_lock_refuses_a_second_run_in_the_same_process(tmp_path):
    first = OutputLock(str(tmp_path / "classes.tif"), "OUTPUT").acquire()
    with pytest.raises(PatchworkError, match=f"another Patchwork run \\(pid {os.getpid()}"):
        OutputLock(str(tmp_path / "classes.tif"), "OUTPUT").acquire()
    first.release()
    OutputLock(str(tmp_path / "classes.tif"), "OUTPUT").acquire().release()


@pytest.mark.skipif(os.name == "nt", reason="flock exists only on POSIX")
def test_a_filesystem_without_flock_still_gets_one_holder(tmp_path, monkeypatch):
    import errno

    from patchwork.core.io import partials

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(partials.fcntl, "flock", no_locks)
    first = OutputLock(str(tmp_path / "classes.tif"), "OUTPUT").acquire()
    with pytest.raises(PatchworkError, match=f"another Patchwork run \\(pid {os.getpid()}"):
        OutputLock(str(tmp_path / "classes.tif"), "OUTPUT").acquire()
    first.release()
    assert not (tmp_path / ".classes.tif.lock").exists()
