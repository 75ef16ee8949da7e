"""Who owns a half-written output, and cleaning up after runs that died.

Every temporary file or folder a run writes beside its target is named
``.<target>.partial-<host>-<pid>-<random>``, so a later run of the same target can tell a dead run's
debris (same host, process gone: removed, and the log says so) from a live run's (left alone).
A chip dataset folder is written by one run at a time: ``.<folder>.lock`` holds the owner's host
and pid; a lock whose owner died is reported and taken over.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable

from .errors import PatchworkError

HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "localhost"
_OWNED = re.compile(r"^\.(?P<stem>.+?)\.(?P<kind>partial|replaced)-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{8}(?P<ext>.*)$")

Log = Callable[[str], None]


def owner_tag() -> str:
    """`<host>-<pid>-<random>`: unique per name, and says which process wrote it."""
    return f"{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def owned_name(target: str, kind: str = "partial") -> str:
    """A hidden sibling of `target` (same folder, so a rename is atomic) with its extension kept."""
    folder, name = os.path.split(os.path.abspath(target))
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f".{stem}.{kind}-{owner_tag()}{ext}")


def pid_alive(pid: int) -> bool:
    """Whether process `pid` on this machine still runs (a zombie counts as dead)."""
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill would terminate the process on Windows
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel32.GetLastError() == 5  # access denied: it exists
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def sweep_debris(target: str, log: Log | None = None) -> list[str]:
    """Remove what dead runs on this host left for `target`; returns the names removed.

    A dead run's replaced copy of a folder (``.name.replaced-…``) is put back when the folder itself is
    missing: the run died between moving the old dataset aside and moving the new one in.
    """
    folder, name = os.path.split(os.path.abspath(target))
    stem, ext = os.path.splitext(name)
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = _OWNED.match(entry)
        if (match is None or match["host"] != HOST or pid_alive(int(match["pid"]))
                or (match["stem"], match["ext"][: len(ext)]) not in ((stem, ext), (name, ""))):
            continue
        path = os.path.join(folder, entry)
        if match["kind"] == "replaced" and not os.path.lexists(target):
            os.rename(path, target)
            message = f"Restored '{name}' from '{entry}', left aside by a run that died (pid {match['pid']})."
        else:
            _remove(path)
            removed.append(entry)
            message = f"Removed '{entry}', left by a run that died (pid {match['pid']})."
        if log:
            log(message)
    return removed


class OutputLock:
    """One run at a time per target: `.<name>.lock` beside it, holding the owner's host, pid and start."""

    def __init__(self, target: str, role: str, log: Log | None = None) -> None:
        self.target = os.path.abspath(target)
        folder, name = os.path.split(self.target)
        self.path = os.path.join(folder, f".{name}.lock")
        self.role = role
        self.log = log
        self.held = False

    def acquire(self) -> OutputLock:
        """Take the lock, or refuse when another live run holds it (a dead run's lock is taken over)."""
        owner = {"host": HOST, "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _attempt in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(owner, fh)
            self.held = True
            return self
        raise PatchworkError(f"{self.role}: cannot lock '{self.target}' (another run keeps taking it). Try again.")

    def _take_over_if_stale(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                owner = json.load(fh)
            host, pid = str(owner["host"]), int(owner["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            host, pid = "?", -1
        if host == HOST and pid > 0 and pid_alive(pid):
            raise PatchworkError(
                f"{self.role}: another Patchwork run (pid {pid}, started {owner.get('started', '?')}) is writing "
                f"'{self.target}'. Wait for it to finish, or choose another folder."
            )
        if host not in (HOST, "?"):
            raise PatchworkError(
                f"{self.role}: '{self.target}' is locked by a Patchwork run on the machine '{host}' (pid {pid}). "
                f"If that run is over, delete '{self.path}' and run again; otherwise choose another folder."
            )
        if self.log:
            self.log(f"'{os.path.basename(self.path)}' was left by a run that died (pid {pid}); taking it over.")
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass

    def release(self) -> None:
        """Give the lock back."""
        if self.held:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            self.held = False
