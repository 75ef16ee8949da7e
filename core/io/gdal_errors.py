"""GDAL, OGR and OSR calls that fail the same way whatever the process's exception setting.

QGIS, its Processing algorithms and other plugins share one GDAL in one process. `UseExceptions()` and
`DontUseExceptions()` change it for all of them (before GDAL 3.7 for every thread), so Patchwork calls neither.
Each call that can fail runs instead under an error handler pushed for this thread only (CPLPushErrorHandler is
per thread): a failure becomes RuntimeError with GDAL's own message, as with exceptions on, and nothing is printed.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, TypeVar

from osgeo import gdal

T = TypeVar("T")


@contextmanager
def gdal_failures() -> Iterator[list[str]]:
    """The failures GDAL reports on this thread inside the block, collected (and printed nowhere)."""
    failures: list[str] = []

    def record(level: int, _number: int, message: str) -> None:
        if level >= gdal.CE_Failure:
            failures.append(message)

    gdal.PushErrorHandler(record)
    try:
        yield failures
    finally:
        gdal.PopErrorHandler()


def checked(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """function(*args, **kwargs); RuntimeError with GDAL's messages when it reported a failure."""
    with gdal_failures() as failures:
        result = function(*args, **kwargs)
    if failures:
        # The traceback keeps this frame: it must not keep the dataset alive (a bound method of it, an argument),
        # or the caller's close would not close it and the garbage collector would, at any later moment.
        del function, args, kwargs, result
        raise RuntimeError("; ".join(failures))
    return result


def opened(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Like checked, for calls that open or create a dataset, a layer or a geometry: None is a failure too."""
    result = checked(function, *args, **kwargs)
    if result is None:
        raise RuntimeError("GDAL returned nothing (not a supported or readable source)")
    return result


def open_raster(path: str, drivers: list[str] | None = None, options: list[str] | None = None) -> gdal.Dataset:
    """A raster dataset; RuntimeError with GDAL's reason (OF_VERBOSE_ERROR: the same reason in either setting).

    `drivers` limits which GDAL drivers may open it (GDAL picks a driver by content, not by the name's extension);
    `options` are the driver's open options.
    """
    extra = {"allowed_drivers": drivers} if drivers else {}
    if options:
        extra["open_options"] = options
    return opened(gdal.OpenEx, path, gdal.OF_RASTER | gdal.OF_VERBOSE_ERROR, **extra)


def open_vector(path: str) -> gdal.Dataset:
    """A vector dataset (its layers: GetLayer, GetLayerByName); RuntimeError with GDAL's reason."""
    return opened(gdal.OpenEx, path, gdal.OF_VECTOR | gdal.OF_VERBOSE_ERROR)
