"""Who owns a half-written output, and cleaning up after runs that died.

Every temporary file or folder a run writes beside its target is named
``.<target>.partial-<host>-<pid>-<random>``, so a later run of the same target can tell a dead run's
debris (same host, process gone: removed, and the log says so) from a live run's (left alone).
A chip dataset folder is written by one run at a time: ``.<folder>.lock`` holds the owner's host
and pid; a lock whose owner died is reported and taken over.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable

try:
    import fcntl  # POSIX: locks the kernel drops when their process dies
except ImportError:  # Windows
    fcntl = None

from ..errors import PatchworkError

HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "localhost"
_OWNED = re.compile(r"^\.(?P<stem>.+?)\.(?P<kind>partial|replaced)-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{8}(?P<ext>.*)$")

Log = Callable[[str], None]


def owner_tag() -> str:
    """`<host>-<pid>-<random>`: unique per name, and says which process wrote it."""
    return f"{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


NAME_MAX = 255  # bytes in a file name on the filesystems QGIS runs on
# What owned_name adds to a stem, and room for GDAL's ".aux.xml" beside it.
_TAG_BYTES = 1 + len(".replaced-") + len(HOST.encode()) + 1 + 10 + 1 + 8 + len(".aux.xml")


def owned_stem(stem: str, ext: str) -> str:
    """`stem` as owned names carry it: shortened (its start, "~" and a hash of it) when the name would not fit."""
    room = NAME_MAX - _TAG_BYTES - len(ext.encode())
    if len(stem.encode()) <= room:
        return stem
    digest = hashlib.sha1(stem.encode()).hexdigest()[:8]
    return stem.encode()[: max(room - 9, 1)].decode("utf-8", "ignore") + "~" + digest


def owned_name(target: str, kind: str = "partial") -> str:
    """A hidden sibling of `target` (same folder, so a rename is atomic) with its extension kept.

    A long name's stem is shortened so the sibling still fits in a file name (255 bytes).
    """
    folder, name = os.path.split(os.path.abspath(target))
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f".{owned_stem(stem, ext)}.{kind}-{owner_tag()}{ext}")


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
        if match is None or match["host"] != HOST or pid_alive(int(match["pid"])) \
                or not _debris_of(match, stem, ext, name):
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



def temporary_sibling(path: str, log: Log | None = None) -> str:
    """A hidden name owned by this process in the same folder (so the final rename is atomic), same extension.

    Partial files that dead runs left for the same `path` are removed first (and logged).
    """
    sweep_debris(path, log)
    return owned_name(path)


def remove_file(path: str) -> None:
    """Remove a file (and its .aux.xml side-car) if they are there."""
    for p in (path, path + ".aux.xml"):
        if os.path.exists(p):
            os.remove(p)


def replace_file(tmp: str, final: str) -> None:
    """Move `tmp` (and its .aux.xml, e.g. category names) onto `final`."""
    remove_file(final + ".aux.xml")  # stale statistics of an earlier output must not survive
    os.replace(tmp, final)
    if os.path.exists(tmp + ".aux.xml"):
        os.replace(tmp + ".aux.xml", final + ".aux.xml")


def publish_file(tmp: str, final: str) -> str:
    """Rename a finished temporary file onto `final`; if that fails, the temporary file goes (nothing is left)."""
    try:
        replace_file(tmp, final)
    except BaseException:
        remove_file(tmp)
        raise
    return final


def _debris_of(match: re.Match, stem: str, ext: str, name: str) -> bool:
    """Whether an owned name belongs to the target `name`.

    Its own temporaries, sidecars named after it (`.classes.input.partial-….vrt`) and temporaries of temporaries
    (`..classes.partial-….partial-….tif`).
    """
    base = re.split(r"\.(?:partial|replaced)-", match["stem"].lstrip("."), maxsplit=1)[0]
    if (base, match["ext"][: len(ext)]) in ((stem, ext), (name, ""), (owned_stem(stem, ext), ext),
                                            (owned_stem(name, ""), "")):
        return True
    return base.startswith(stem + ".")  # a sidecar: classes.input.vrt


class OutputLock:
    """One run at a time per target: `.<name>.lock` beside it, holding the owner's host, pid and start.

    On POSIX systems the lock is the kernel's `flock` on that file, held while the run's process lives: a dead
    run's lock is free at once, and taking it over is atomic (racing runs get one holder). The file's content only
    names the owner for messages. Where `flock` does not exist (Windows), the file is created exclusively and a
    dead owner's file is removed first.
    """

    def __init__(self, target: str, role: str, log: Log | None = None) -> None:
        self.target = os.path.abspath(target)
        folder, name = os.path.split(self.target)
        self.path = os.path.join(folder, f".{owned_stem(name, '.lock')}.lock")
        self.role = role
        self.log = log
        self.held = False
        self.fd: int | None = None
        self.use_flock = fcntl is not None

    def acquire(self) -> OutputLock:
        """Take the lock, or refuse when another live run holds it (a dead run's lock is taken over)."""
        owner = {"host": HOST, "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _attempt in range(20):
            taken = self._take_flock() if self.use_flock else self._take_exclusive()
            if taken is None:
                continue  # the file changed under us (a holder released it): try again
            fd, previous = taken
            if previous and previous.get("pid") != os.getpid() and self.log:
                pid = previous.get("pid")
                who = f"a run that died (pid {pid})" if pid else "a run Patchwork cannot name"
                self.log(f"'{os.path.basename(self.path)}' was left by {who}; taking it over.")
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(owner).encode())
            self.fd, self.held = fd, True
            if not self.use_flock:  # nothing to keep open: the file is the lock
                os.close(fd)
                self.fd = None
            return self
        raise PatchworkError(f"{self.role}: cannot lock '{self.target}' (another run keeps taking it). Try again.")

    def _take_flock(self) -> tuple[int, dict] | None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = _read_owner(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):  # a live process holds it
                raise self._held_by(owner, live=True) from None
            self.use_flock = False  # a filesystem without flock (some network shares): the file alone
            if not owner:
                os.remove(self.path)  # the empty file just created here
            return None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            same = False
        if not same:  # the holder removed the file as it released it: lock the new one
            os.close(fd)
            return None
        previous = _read_owner(fd)
        refusal = self._refusal(previous)
        if refusal is not None:
            os.close(fd)
            raise refusal
        return fd, previous

    def _take_exclusive(self) -> tuple[int, dict] | None:
        try:
            return os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644), {}
        except FileExistsError:
            pass
        try:
            with open(self.path, "rb") as fh:
                previous = _parse_owner(fh.read())
        except OSError:
            return None
        refusal = self._refusal(previous) or (self._held_by(previous, live=True)
                                              if pid_alive_or_unknown(previous.get("pid")) else None)
        if refusal is not None:
            raise refusal
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        return None

    def _refusal(self, owner: dict) -> PatchworkError | None:
        """Why a lock file nobody holds may still not be taken over: another machine's, or a live process's."""
        if not owner or owner.get("host") == "?":  # nobody holds it and nobody can be named: free to take
            return None
        if owner.get("host") != HOST:
            return self._held_by(owner, live=False)
        pid = owner.get("pid")
        if pid is not None and pid != os.getpid() and self.use_flock and pid_alive(pid):
            return PatchworkError(
                f"{self.role}: '{self.path}' names the running process {pid}, which is not a Patchwork run writing "
                f"'{self.target}' now (it holds no lock on it). If no Patchwork run is writing there, delete "
                f"'{self.path}' and run again.")
        return None

    def _held_by(self, owner: dict, live: bool) -> PatchworkError:
        host, pid = owner.get("host", "?"), owner.get("pid", "?")
        if host not in (HOST, "?") and not live:
            return PatchworkError(
                f"{self.role}: '{self.target}' is locked by a Patchwork run on the machine '{host}' (pid {pid}). "
                f"If that run is over, delete '{self.path}' and run again; otherwise choose another folder.")
        return PatchworkError(
            f"{self.role}: another Patchwork run (pid {pid}, started {owner.get('started', '?')}) is writing "
            f"'{self.target}'. Wait for it to finish, or choose another folder.")

    def release(self) -> None:
        """Give the lock back (the file goes first, so a run waiting for it locks a fresh one)."""
        if self.held:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
            self.held = False


def _parse_owner(data: bytes) -> dict:
    """A lock file's owner ({} when it is empty or unreadable); a pid only when it is a plausible one."""
    if not data.strip():
        return {}
    try:
        owner = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        owner = None
    if not isinstance(owner, dict):
        return {"host": "?", "pid": None}
    pid = owner.get("pid")
    owner["pid"] = pid if isinstance(pid, int) and 0 < pid < 2**31 else None
    owner["host"] = str(owner.get("host", "?"))
    return owner


def _read_owner(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    return _parse_owner(os.read(fd, 4096))


def pid_alive_or_unknown(pid: int | None) -> bool:
    """Whether a lock's pid runs here (an unreadable pid counts as gone)."""
    return pid is not None and pid_alive(pid)


def write_file_atomically(path: str, data: bytes) -> None:
    """`data` at `path`, written under a temporary name beside it and renamed when complete (its folder made)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)  # e.g. the panel's "~/Patchwork models"
    tmp = temporary_sibling(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        replace_file(tmp, path)
    except BaseException:
        remove_file(tmp)
        raise
