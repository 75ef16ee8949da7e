"""How long-running core work reports progress and learns it was cancelled.

The core never imports QGIS: the plugin passes an adapter around QgsProcessingFeedback,
and Python users can pass nothing (silent) or their own object with these three methods.
"""
from __future__ import annotations

from typing import Protocol

from .errors import Cancelled


class Feedback(Protocol):
    def set_progress(self, percent: float) -> None: ...

    def is_cancelled(self) -> bool: ...

    def info(self, message: str) -> None: ...


class SilentFeedback:
    """The default: no output, never cancelled."""

    def set_progress(self, percent: float) -> None:
        pass

    def is_cancelled(self) -> bool:
        return False

    def info(self, message: str) -> None:
        pass


def check_cancelled(feedback: Feedback) -> None:
    if feedback.is_cancelled():
        raise Cancelled("cancelled by the user")
