"""Web map tiles (XYZ) as a GDAL raster: a basemap layer read at one zoom level over an extent.

An XYZ service (OpenStreetMap-style `{z}/{x}/{y}` tiles in Web Mercator) becomes a GDAL WMS description (GDAL's TMS
mini-driver), clipped by a VRT to the extent asked for: the core then reads it as it reads a file, a tile of the
service at a time, and never asks for tiles outside the extent. Missing tiles (HTTP 404) are nodata.
"""
from __future__ import annotations

import math
import os
from xml.sax.saxutils import escape

from osgeo import gdal

from ..errors import PatchworkError, one_line
from .gdal_errors import opened
from .partials import owned_name

WEB_MERCATOR_HALF = 20037508.342789244  # metres from the origin to the edge of EPSG:3857's square world
TILE = 256


def zoom_resolution(zoom: int) -> float:
    """The pixel size (metres of EPSG:3857) of zoom level `zoom`."""
    return 2 * WEB_MERCATOR_HALF / (TILE * 2**zoom)


def zoom_for(resolution: float, most: int = 22) -> int:
    """The zoom level whose pixels are closest to `resolution` metres (never past `most`)."""
    return max(0, min(most, round(math.log2(zoom_resolution(0) / resolution))))


HTTP_TIMEOUT_S = 15  # a tile server that does not answer fails the run after this, so Cancel is heard


def xyz_description(url: str, zoom: int, bands: int = 4) -> str:
    """GDAL's WMS XML for an XYZ service; `url` has {z}, {x} and {y} (or ${z}…) placeholders."""
    template = url
    for key in ("z", "x", "y"):
        template = template.replace("${" + key + "}", "{" + key + "}").replace("{" + key + "}", "${" + key + "}")
    size = TILE * 2**zoom
    return (
        "<GDAL_WMS><Service name=\"TMS\"><ServerUrl>" + escape(template) + "</ServerUrl></Service>"
        f"<DataWindow><UpperLeftX>{-WEB_MERCATOR_HALF!r}</UpperLeftX><UpperLeftY>{WEB_MERCATOR_HALF!r}</UpperLeftY>"
        f"<LowerRightX>{WEB_MERCATOR_HALF!r}</LowerRightX><LowerRightY>{-WEB_MERCATOR_HALF!r}</LowerRightY>"
        f"<TileLevel>{zoom}</TileLevel><TileCountX>1</TileCountX><TileCountY>1</TileCountY><YOrigin>top</YOrigin>"
        f"<SizeX>{size}</SizeX><SizeY>{size}</SizeY></DataWindow>"
        "<Projection>EPSG:3857</Projection>"
        f"<BlockSizeX>{TILE}</BlockSizeX><BlockSizeY>{TILE}</BlockSizeY><BandsCount>{bands}</BandsCount>"
        "<ZeroBlockHttpCodes>204,404</ZeroBlockHttpCodes><MaxConnections>4</MaxConnections>"
        f"<Timeout>{HTTP_TIMEOUT_S}</Timeout>"  # per request, this service only (GDAL's default waits 300 s)
        "</GDAL_WMS>"
    )


def xyz_raster(url: str, zoom: int, extent: tuple[float, float, float, float], beside: str,
               bands: int = 4) -> str:
    """A VRT of the XYZ service at `zoom` over `extent` (xmin, ymin, xmax, ymax in EPSG:3857); returns its path.

    It is written beside `beside` under a name this run owns; the caller removes it (remove_xyz_raster).
    """
    if not all(k in url for k in ("z}", "x}", "y}")):
        raise PatchworkError(f"INPUT: the tile URL '{url}' has no {{z}}/{{x}}/{{y}} placeholders; Patchwork reads "
                             "XYZ tile services.")
    xmin, ymin, xmax, ymax = extent
    if not (xmax > xmin and ymax > ymin):
        raise PatchworkError("EXTENT: a web layer needs an area to read (the MASK's or an EXTENT); this one is empty.")
    res = zoom_resolution(zoom)
    eps = 1e-6  # of a pixel: an extent on the zoom level's pixel edges stays on them despite rounding
    col0, col1 = math.floor((xmin + WEB_MERCATOR_HALF) / res + eps), math.ceil((xmax + WEB_MERCATOR_HALF) / res - eps)
    row0, row1 = math.floor((WEB_MERCATOR_HALF - ymax) / res + eps), math.ceil((WEB_MERCATOR_HALF - ymin) / res - eps)
    pixels = (col1 - col0) * (row1 - row0)
    if pixels > 4e9:
        raise PatchworkError(f"EXTENT: {col1 - col0} x {row1 - row0} px at zoom {zoom} is too much to read from a web "
                             "service; choose a smaller area or a coarser RESOLUTION.")
    clipped = owned_name(os.path.splitext(beside)[0] + ".xyz.vrt")
    service = clipped[: -len(".vrt")] + ".xml"
    with open(service, "w", encoding="utf-8") as fh:
        fh.write(xyz_description(url, zoom, bands))
    try:
        made = opened(gdal.Translate, clipped, service, format="VRT",
                      srcWin=[col0, row0, col1 - col0, row1 - row0])
        made = None  # noqa: F841 - closing writes the VRT
    except (RuntimeError, PatchworkError) as exc:
        os.remove(service)
        raise PatchworkError(f"INPUT: GDAL cannot read the tile service '{url}' ({one_line(exc)}).") from exc
    return clipped


def remove_xyz_raster(clipped: str) -> None:
    """Remove a VRT made by xyz_raster and the service description it points to."""
    for path in (clipped, clipped[: -len(".vrt")] + ".xml"):
        if os.path.exists(path):
            os.remove(path)


class XyzSource:
    """An XYZ tile service as classify's input: its URL, the largest zoom it serves, and the area to read.

    `extent` (xmin, ymin, xmax, ymax in EPSG:3857) may be left to a MASK; the zoom level is the one closest to
    RESOLUTION (metres of EPSG:3857), else to the model's resolution metadata, else `max_zoom`.
    """

    def __init__(self, url: str, max_zoom: int = 19, extent: tuple[float, float, float, float] | None = None,
                 bands: int = 4) -> None:
        """An XYZ service at `url` ({z}/{x}/{y} placeholders)."""
        self.url, self.max_zoom, self.extent, self.bands = url, int(max_zoom), extent, bands

    def __repr__(self) -> str:
        return f"XyzSource({self.url!r}, max_zoom={self.max_zoom})"


def web_raster(source: XyzSource, info, resolution: float | None, mask, tile_size: int | None, beside: str,
               feedback=None) -> str:
    """The VRT a run reads an XYZ service through (see xyz_raster); the caller removes it (remove_xyz_raster).

    The zoom level is the one closest to `resolution` (metres of EPSG:3857), else to the model's resolution
    metadata, else the service's largest; the area is the source's extent, else the mask's box and a tile around
    it (for context).
    """
    from osgeo import osr

    if resolution:
        zoom = zoom_for(resolution, source.max_zoom)
    elif info.resolution_cm:
        zoom = zoom_for(info.resolution_cm / 100.0, source.max_zoom)
    else:
        zoom = source.max_zoom
    extent = source.extent
    if extent is None and mask is not None:
        mercator = osr.SpatialReference()
        mercator.ImportFromEPSG(3857)
        xmin, xmax, ymin, ymax = mask.transformed(mercator.ExportToWkt()).union.GetEnvelope()
        pad = int(tile_size or info.tile_size or info.default_tile_size) * zoom_resolution(zoom)
        extent = (xmin - pad, ymin - pad, xmax + pad, ymax + pad)
    if extent is None:
        raise PatchworkError("EXTENT: a web tile layer covers the world: give an EXTENT or a MASK to read.")
    extent = (max(extent[0], -WEB_MERCATOR_HALF), max(extent[1], -WEB_MERCATOR_HALF),
              min(extent[2], WEB_MERCATOR_HALF), min(extent[3], WEB_MERCATOR_HALF))
    if feedback is not None:
        feedback.info(f"Web tiles at zoom {zoom} ({zoom_resolution(zoom):.3f} m per pixel in EPSG:3857) over "
                      f"{extent[0]:.1f}, {extent[1]:.1f} – {extent[2]:.1f}, {extent[3]:.1f}")
    return xyz_raster(source.url, zoom, extent, beside, source.bands)
