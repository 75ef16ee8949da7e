"""A STAC item's raster asset as a path GDAL reads in place (byte ranges of a cloud-optimised GeoTIFF).

A STAC item (a JSON document, local or on the web) lists its assets by key, each with an `href`. Patchwork reads
an asset where it lies: https:// through GDAL's /vsicurl/, s3:// through /vsis3/, gs:// through /vsigs/, so Dask
workers read their own blocks and nothing is downloaded whole. GDAL's own HTTP settings (proxy, credentials) apply.
"""
from __future__ import annotations

import json
import os
from urllib.parse import urljoin

from osgeo import gdal

from ..errors import PatchworkError
from .gdal_errors import checked

CLOUD_PREFIXES = {"https://": "/vsicurl/", "http://": "/vsicurl/", "s3://": "/vsis3/", "gs://": "/vsigs/",
                  "az://": "/vsiaz/"}
MAX_ITEM_BYTES = 16 * 2**20  # a STAC item is a few kB; a larger answer is not one
RASTER_TYPES = ("image/tiff", "image/jp2", "application/x-hdf")


def gdal_path(href: str) -> str:
    """A URL as GDAL reads it in place (https → /vsicurl/, s3 → /vsis3/, ...); a local path or /vsi path unchanged."""
    for prefix, vsi in CLOUD_PREFIXES.items():
        if href.startswith(prefix):
            return vsi + (href if vsi == "/vsicurl/" else href[len(prefix):])
    return href


def stac_asset(item: str, asset: str | None = None) -> str:
    """The GDAL path of a raster asset of the STAC item at `item` (a file path or URL).

    `asset`: the asset's key (e.g. "visual", "B04"); None picks the only GeoTIFF asset with the role "data", else the
    one keyed "visual". Relative hrefs are taken relative to the item, as STAC says.
    """
    document = _read_item(item)
    if document.get("type") != "Feature" or not isinstance(document.get("assets"), dict):
        raise PatchworkError(f"INPUT: '{item}' is not a STAC item (a GeoJSON Feature with assets); give the item's "
                             "own URL, not a collection's or a search's.")
    assets = document["assets"]
    rasters = {key: a for key, a in assets.items() if any(t in str(a.get("type", "")) for t in RASTER_TYPES)}
    if asset is None:
        data = [key for key, a in rasters.items() if "data" in a.get("roles", [])]
        asset = data[0] if len(data) == 1 else "visual" if "visual" in rasters else None
        if asset is None:
            raise PatchworkError(f"INPUT: the STAC item '{item}' has {len(rasters)} raster assets "
                                 f"({', '.join(rasters) or 'none'}); name the one to read.")
    if asset not in assets:
        raise PatchworkError(f"INPUT: the STAC item '{item}' has no asset '{asset}'; its assets: "
                             f"{', '.join(assets) or 'none'}.")
    href = assets[asset].get("href")
    if not isinstance(href, str) or not href:
        raise PatchworkError(f"INPUT: the asset '{asset}' of the STAC item '{item}' has no href.")
    if "://" not in href and not os.path.isabs(href):  # relative to the item
        href = urljoin(item, href) if "://" in item else os.path.join(os.path.dirname(os.path.abspath(item)), href)
    return gdal_path(href)


def _read_item(item: str) -> dict:
    """The item's JSON, read through GDAL (its HTTP settings apply), at most MAX_ITEM_BYTES."""
    path = gdal_path(item)
    try:
        handle = checked(gdal.VSIFOpenL, path, "rb")
        if handle is None:
            raise RuntimeError("no such file")
        try:
            text = checked(gdal.VSIFReadL, 1, MAX_ITEM_BYTES + 1, handle)
        finally:
            gdal.VSIFCloseL(handle)
    except RuntimeError as exc:
        raise PatchworkError(f"INPUT: cannot read the STAC item '{item}' ({exc}).") from exc
    if len(text) > MAX_ITEM_BYTES:
        raise PatchworkError(f"INPUT: '{item}' is larger than {MAX_ITEM_BYTES // 2**20} MB: not a STAC item.")
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PatchworkError(f"INPUT: '{item}' is not JSON, so not a STAC item ({exc}).") from exc
