"""A tile server for tests: XYZ tiles (PNG, Web Mercator) cut from a real raster, served on 127.0.0.1."""
from __future__ import annotations

import functools
import http.server
import os
import threading

import numpy as np
from osgeo import gdal

from patchwork.core.web import TILE, WEB_MERCATOR_HALF, zoom_resolution


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
