"""How long-running core work reports progress and learns it was cancelled.

The core never imports QGIS: the plugin passes an adapter around QgsProcessingFeedback,
and Python users can pass nothing (silent) or their own object with these three methods.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .errors import Cancelled


class Feedback(Protocol):
    """What long work reports to, and asks about cancel: Processing's feedback, the panel, or a script."""
    def set_progress(self, percent: float) -> None:
        """Say how far the work is (0–100)."""

    def is_cancelled(self) -> bool:
        """True when the user asked to stop."""

    def info(self, message: str) -> None:
        """Say something to the user (the log)."""


class SilentFeedback:
    """The default: no output, never cancelled."""

    def set_progress(self, percent: float) -> None:
        """Say how far the work is (0–100)."""
        pass

    def is_cancelled(self) -> bool:
        """True when the user asked to stop."""
        return False

    def info(self, message: str) -> None:
        """Say something to the user (the log)."""
        pass


def check_cancelled(feedback: Feedback) -> None:
    """Raise Cancelled when the user asked to stop."""
    if feedback.is_cancelled():
        raise Cancelled("cancelled by the user")


class GdalCancel:
    """GDAL's progress callback (`callback=` of Translate, Warp, …) that stops GDAL when `cancelled()` says so.

    GDAL then returns no dataset; `stopped` tells a cancel from a failure.
    """

    def __init__(self, cancelled: Callable[[], bool] | None) -> None:
        self.cancelled = cancelled
        self.stopped = False

    def __call__(self, complete: float, message: str, data: object) -> int:
        """1: go on; 0: stop."""
        if self.cancelled is not None and self.cancelled():
            self.stopped = True
            return 0
        return 1
