"""A tile server for tests: XYZ tiles (PNG, Web Mercator) cut from a real raster, served on 127.0.0.1."""
from __future__ import annotations

import functools
import http.server
import os
import threading

import numpy as np
from osgeo import gdal

from patchwork.core.io.web import TILE, WEB_MERCATOR_HALF, zoom_resolution


def cut_tiles(raster: str, folder: str, zoom: int) -> str:
    """`raster` warped to EPSG:3857 on zoom `zoom`'s pixel grid (returned), and cut into folder/z/x/y.png tiles
    (RGBA: alpha 0 where the raster has no data)."""
    res = zoom_resolution(zoom)
    os.makedirs(folder, exist_ok=True)
    aligned = os.path.join(folder, f"aligned_z{zoom}.tif")
    gdal.Warp(aligned, raster, dstSRS="EPSG:3857", xRes=res, yRes=res, targetAlignedPixels=True,
              resampleAlg="near", dstAlpha=True, outputType=gdal.GDT_Byte)
    ds = gdal.Open(aligned)
    gt = ds.GetGeoTransform()
    col0 = round((gt[0] + WEB_MERCATOR_HALF) / res)
    row0 = round((WEB_MERCATOR_HALF - gt[3]) / res)
    data = ds.ReadAsArray()[[0, 1, 2, ds.RasterCount - 1]]  # RGB (bands 1-3 of an RGBN raster) and alpha
    for ty in range(row0 // TILE, (row0 + ds.RasterYSize - 1) // TILE + 1):
        for tx in range(col0 // TILE, (col0 + ds.RasterXSize - 1) // TILE + 1):
            tile = np.zeros((4, TILE, TILE), np.uint8)
            r0, c0 = ty * TILE - row0, tx * TILE - col0
            rs, cs = slice(max(r0, 0), min(r0 + TILE, ds.RasterYSize)), slice(max(c0, 0), min(c0 + TILE,
                                                                                             ds.RasterXSize))
            tile[:, rs.start - r0 : rs.stop - r0, cs.start - c0 : cs.stop - c0] = data[:, rs, cs]
            mem = gdal.GetDriverByName("MEM").Create("", TILE, TILE, 4, gdal.GDT_Byte)
            mem.WriteArray(tile)
            os.makedirs(os.path.join(folder, str(zoom), str(tx)), exist_ok=True)
            gdal.GetDriverByName("PNG").CreateCopy(os.path.join(folder, str(zoom), str(tx), f"{ty}.png"), mem)
    return aligned


class TileServer:
    """http://127.0.0.1:<port>/{z}/{x}/{y}.png from `folder`, in a thread; counts the tiles asked for."""

    def __init__(self, folder: str) -> None:
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                server.requests.append(self.path)
                super().do_GET()

        self.requests: list[str] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     functools.partial(Handler, directory=folder))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{{z}}/{{x}}/{{y}}.png"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


CAPABILITIES = """<?xml version="1.0" encoding="UTF-8"?>
<WMS_Capabilities version="1.3.0" xmlns="http://www.opengis.net/wms" xmlns:xlink="http://www.w3.org/1999/xlink">
<Service><Name>WMS</Name><Title>Patchwork test WMS</Title>
<OnlineResource xlink:type="simple" xlink:href="{url}"/></Service>
<Capability><Request>
<GetCapabilities><Format>text/xml</Format><DCPType><HTTP><Get><OnlineResource xlink:type="simple" xlink:href="{url}"/>
</Get></HTTP></DCPType></GetCapabilities>
<GetMap><Format>image/png</Format><DCPType><HTTP><Get><OnlineResource xlink:type="simple" xlink:href="{url}"/>
</Get></HTTP></DCPType></GetMap></Request>
<Exception><Format>XML</Format></Exception>
<Layer><Title>Patchwork</Title><CRS>EPSG:3857</CRS>
<EX_GeographicBoundingBox><westBoundLongitude>-180</westBoundLongitude><eastBoundLongitude>180</eastBoundLongitude>
<southBoundLatitude>-85</southBoundLatitude><northBoundLatitude>85</northBoundLatitude></EX_GeographicBoundingBox>
<Layer queryable="0"><Name>scene</Name><Title>scene</Title><CRS>EPSG:3857</CRS>
<EX_GeographicBoundingBox><westBoundLongitude>{w}</westBoundLongitude><eastBoundLongitude>{e}</eastBoundLongitude>
<southBoundLatitude>{s}</southBoundLatitude><northBoundLatitude>{n}</northBoundLatitude></EX_GeographicBoundingBox>
<BoundingBox CRS="EPSG:3857" minx="{minx}" miny="{miny}" maxx="{maxx}" maxy="{maxy}"/>
</Layer></Layer></Capability></WMS_Capabilities>"""


class WmsServer:
    """A WMS 1.3.0 on 127.0.0.1 serving one layer, "scene", from an RGBA GeoTIFF in EPSG:3857 (GetMap: nearest)."""

    def __init__(self, raster: str) -> None:
        from urllib.parse import parse_qs, urlparse

        from osgeo import osr

        ds = gdal.Open(raster)
        gt = ds.GetGeoTransform()
        bounds = (gt[0], gt[3] + gt[5] * ds.RasterYSize, gt[0] + gt[1] * ds.RasterXSize, gt[3])
        rgba = f"/vsimem/wms_{id(self)}.vrt"  # what a PNG holds: red, green, blue and the alpha band
        gdal.Translate(rgba, raster, format="VRT", bandList=[1, 2, 3, ds.RasterCount])
        raster = rgba
        mercator, wgs84 = osr.SpatialReference(), osr.SpatialReference()
        mercator.ImportFromEPSG(3857)
        wgs84.ImportFromEPSG(4326)
        wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        to_wgs84 = osr.CoordinateTransformation(mercator, wgs84)
        (w, s, _), (e, n, _) = to_wgs84.TransformPoint(bounds[0], bounds[1]), to_wgs84.TransformPoint(bounds[2],
                                                                                                         bounds[3])
        server = self
        self.requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                server.requests.append(self.path)
                query = {k.upper(): v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                if query.get("REQUEST", "").lower() == "getcapabilities":
                    body = CAPABILITIES.format(url=server.url, w=w, e=e, s=s, n=n, minx=bounds[0], miny=bounds[1],
                                               maxx=bounds[2], maxy=bounds[3]).encode()
                    kind = "text/xml"
                else:
                    minx, miny, maxx, maxy = (float(v) for v in query["BBOX"].split(","))
                    width, height = int(query["WIDTH"]), int(query["HEIGHT"])
                    png = f"/vsimem/getmap_{threading.get_ident()}.png"
                    warped = gdal.Warp("", raster, format="MEM", outputBounds=(minx, miny, maxx, maxy), width=width,
                                       height=height, resampleAlg="near", dstSRS="EPSG:3857")
                    gdal.GetDriverByName("PNG").CreateCopy(png, warped)
                    handle = gdal.VSIFOpenL(png, "rb")
                    gdal.VSIFSeekL(handle, 0, 2)
                    size = gdal.VSIFTellL(handle)
                    gdal.VSIFSeekL(handle, 0, 0)
                    body = gdal.VSIFReadL(1, size, handle)
                    gdal.VSIFCloseL(handle)
                    gdal.Unlink(png)
                    kind = "image/png"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/wms?"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class RangeServer:
    """http://127.0.0.1:<port>/<name> for the files in `folder`, honouring single byte ranges (`Range: bytes=a-b`)
    as a cloud object store does: GDAL's /vsicurl/ reads a cloud-optimised GeoTIFF's header and tiles so. Counts the
    requests and the bytes sent; `ranges_only` refuses a request for a whole file (416), as a reader of a COG must
    never need one."""

    def __init__(self, folder: str, ranges_only: bool = True) -> None:
        import re

        server = self
        self.requests: list[tuple[str, str]] = []  # (path, Range header or "")
        self.bytes_sent = 0
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as object stores: GDAL reuses its connections

            def log_message(self, *args):
                pass

            def _file(self) -> str | None:
                path = os.path.join(folder, os.path.basename(self.path.split("?")[0]))
                return path if os.path.isfile(path) else None

            def do_HEAD(self):  # noqa: N802 - http.server's name
                path = self._file()
                self.send_response(200 if path else 404)
                self.send_header("Content-Length", str(os.path.getsize(path) if path else 0))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()

            def do_GET(self):  # noqa: N802 - http.server's name
                path, wanted = self._file(), self.headers.get("Range", "")
                with server.lock:
                    server.requests.append((self.path, wanted))
                if path is None:
                    return self._reply(404, b"")
                size = os.path.getsize(path)
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted)
                if not match:
                    return self._reply(416 if ranges_only else 200, b"" if ranges_only else open(path, "rb").read())
                start, end = int(match[1]), min(int(match[2] or size - 1), size - 1)
                if start >= size:
                    return self._reply(416, b"")
                with open(path, "rb") as f:
                    f.seek(start)
                    body = f.read(end - start + 1)
                self._reply(206, body, f"bytes {start}-{end}/{size}")

            def _reply(self, status: int, body: bytes, content_range: str = "") -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                if content_range:
                    self.send_header("Content-Range", content_range)
                self.end_headers()
                self.wfile.write(body)
                with server.lock:
                    server.bytes_sent += len(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
