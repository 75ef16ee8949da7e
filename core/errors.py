"""Errors the core raises. Every message names the problem and the fix."""


class PatchworkError(ValueError):
    """Bad input or an impossible request; the message says what to change."""


class Cancelled(Exception):  # noqa: N818 - reads better than CancelledError at call sites
    """The user cancelled a run; whatever it was writing has been removed."""
