"""Errors the core raises. Every message names the problem and the fix."""
from __future__ import annotations

import errno
import functools
import re
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class PatchworkError(ValueError):
    """Bad input or an impossible request; the message says what to change."""


class Cancelled(Exception):  # noqa: N818 - reads better than CancelledError at call sites
    """The user cancelled a run; whatever it was writing has been removed."""


DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
# How operating systems and GDAL word a full disk (GDAL: "Free disk space available is ...").
DISK_FULL_TEXT = re.compile(r"no space|disk (is )?full|free disk space|not enough space|quota", re.IGNORECASE)


def one_line(exc: BaseException) -> str:
    """An exception's text on one line: GDAL 3.10+ appends its earlier errors as lines "May be caused by: ..."."""
    return " ".join(str(exc).split())


def explain(exc: BaseException) -> PatchworkError | None:
    """The user's message for an operating-system, GDAL, onnxruntime or memory error; None for a bug."""
    text = " ".join(exc.strerror.split()) if isinstance(exc, OSError) and exc.strerror else one_line(exc)
    if (isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS) or (
            isinstance(exc, (OSError, RuntimeError)) and DISK_FULL_TEXT.search(text)):
        where = f" writing '{exc.filename}'" if getattr(exc, "filename", None) else ""
        return PatchworkError(f"The disk is full{where} ({text}). Nothing of this run was kept and earlier outputs are "
                              "untouched: free some space or choose an output folder on another disk, then run again.")
    if isinstance(exc, OSError):
        what = f"'{exc.filename}'" if exc.filename else "a file"
        return PatchworkError(f"Cannot use {what}: {exc.strerror or text}. Check the path exists and that you may "
                              "read or write it.")
    if isinstance(exc, MemoryError):
        return PatchworkError("Not enough memory for this run. Lower TILE_SIZE or BATCH_SIZE (classify), the chip "
                              "size, or MAX_PIXELS (training), or close other programs.")
    if isinstance(exc, RecursionError):
        return PatchworkError(f"An input is nested too deeply to be read ({text}). Check the JSON file or model.")
    if type(exc).__module__.startswith("onnxruntime"):
        return PatchworkError(f"MODEL: onnxruntime failed: {text[:400]}. Check BANDS, TILE_SIZE and BATCH_SIZE match "
                              "what the model was exported for.")
    if isinstance(exc, RuntimeError) and not isinstance(exc, NotImplementedError):
        source = "GDAL" if type(exc) is RuntimeError else type(exc).__module__.split(".")[0]
        return PatchworkError(f"{text} ({source}). Check the file it names is complete and readable; if it is, "
                              "please report this message.")
    return None


def reports_errors(function: F) -> F:
    """Core entry points raise PatchworkError (or Cancelled) for anything a user can act on."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (PatchworkError, Cancelled):
            raise
        except Exception as exc:  # noqa: BLE001 - mapped where the user can act, re-raised where it is a bug
            mapped = explain(exc)
            if mapped is None:
                raise
            raise mapped from exc

    return wrapper  # type: ignore[return-value]
