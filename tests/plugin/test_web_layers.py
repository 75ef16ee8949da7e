"""A web tile (XYZ) layer served on 127.0.0.1 from tiles cut from the real NAIP scene: classify reads it at its zoom
over the mask's area only, and gives the map of the GeoTIFF the tiles were cut from."""
from __future__ import annotations

import os

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsFeature, QgsGeometry, QgsProject, QgsRasterLayer, QgsVectorLayer

from tests.conftest import SHARED_DATA
from tests.onnx_models import conv_model
from tests.tiles import TileServer, cut_tiles


def run(algorithm, params):
    import processing
    from qgis.core import QgsProcessingFeedback

    return processing.run(f"patchwork:{algorithm}", params, feedback=QgsProcessingFeedback())


@pytest.fixture
def tiles(tmp_path, naip_path):
    aligned = cut_tiles(naip_path, str(tmp_path / "tiles"), 15)
    server = TileServer(str(tmp_path / "tiles"))
    yield aligned, server
    server.close()


def test_an_xyz_layer_classifies_like_the_geotiff_it_was_cut_from_inside_the_mask(patchwork_provider, tmp_path,
                                                                                    tiles):
    aligned, server = tiles
    layer = QgsRasterLayer(f"type=xyz&url={server.url}&zmin=0&zmax=15", "naip tiles", "wms")
    assert layer.isValid() and layer.providerType() == "wms"
    ds = gdal.Open(aligned)
    gt = ds.GetGeoTransform()
    corners = [(150, 120), (900, 200), (500, 700)]  # a triangle inside the scene, in pixels of the aligned raster
    wkt = "POLYGON((" + ", ".join(f"{gt[0] + c * gt[1]} {gt[3] + r * gt[5]}" for c, r in [*corners, corners[0]]) + "))"
    mask = QgsVectorLayer("Polygon?crs=EPSG:3857", "mask", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromWkt(wkt))
    mask.dataProvider().addFeatures([feature])
    rgb = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1) * 20
    model = conv_model(str(tmp_path / "rgb.onnx"), rgb, softmax=True,
                       metadata={"model_type": "Segmentor", "class_names": {"0": "red", "1": "green", "2": "blue"}})
    common = {"MODEL": model, "BANDS": "1,2,3", "SCALE": 1 / 255, "TILE_SIZE": 128, "OVERLAP": 32, "MASK": mask}
    web = run("classify", {"INPUT": layer, **common, "OUTPUT": str(tmp_path / "web.tif")})
    server_requests = len(server.requests)
    file = run("classify", {"INPUT": aligned, **common, "OUTPUT": str(tmp_path / "file.tif")})
    web_map, file_map = gdal.Open(web["OUTPUT"]), gdal.Open(file["OUTPUT"])
    wgt = web_map.GetGeoTransform()
    col, row = round((wgt[0] - gt[0]) / gt[1]), round((wgt[3] - gt[3]) / gt[5])  # the mask's box and a tile
    assert wgt[1] == pytest.approx(gt[1], rel=1e-12)
    c0, r0 = max(col, 0), max(row, 0)  # where the two maps overlap
    c1, r1 = min(col + web_map.RasterXSize, ds.RasterXSize), min(row + web_map.RasterYSize, ds.RasterYSize)
    expected = file_map.ReadAsArray(c0, r0, c1 - c0, r1 - r0)
    np.testing.assert_array_equal(web_map.ReadAsArray(c0 - col, r0 - row, c1 - c0, r1 - r0), expected)
    assert (expected != 255).sum() > 100_000 and len(np.unique(expected[expected != 255])) > 1
    served = sum(len(files) for _, _, files in os.walk(tmp_path / "tiles" / "15"))
    assert 0 < server_requests < served  # only the tiles of the mask's box (and a tile around) were asked for
    assert not [name for name in os.listdir(tmp_path) if ".xyz." in name]  # the run's VRT and service file went
    with pytest.raises(Exception, match="EXTENT: a web tile layer covers the world"):
        run("classify", {"INPUT": layer, "MODEL": model, "BANDS": "1,2,3", "OUTPUT": str(tmp_path / "x.tif")})
    QgsProject.instance().removeAllMapLayers()


def test_a_wms_layer_is_rendered_by_qgis_at_resolution_and_classifies_like_its_geotiff(patchwork_provider, tmp_path,
                                                                                          naip_path):
    from urllib.parse import quote

    from tests.tiles import WmsServer

    aligned = cut_tiles(naip_path, str(tmp_path / "tiles"), 15)  # RGBA on EPSG:3857, zoom 15's grid
    server = WmsServer(aligned)
    try:
        layer = QgsRasterLayer(f"crs=EPSG:3857&format=image/png&layers=scene&styles=&url={quote(server.url)}",
                               "scene (WMS)", "wms")
        assert layer.isValid(), layer.error().message()
        ds = gdal.Open(aligned)
        gt = ds.GetGeoTransform()
        x0, y0 = gt[0] + 200 * gt[1], gt[3] + 150 * gt[5]
        extent = f"{x0},{x0 + 600 * gt[1]},{y0 + 400 * gt[5]},{y0} [EPSG:3857]"  # on the GeoTIFF's pixel edges
        rgb = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1) * 20
        model = conv_model(str(tmp_path / "rgb.onnx"), rgb, softmax=True, metadata={"model_type": "Segmentor"})
        common = {"MODEL": model, "BANDS": "1,2,3", "SCALE": 1 / 255, "TILE_SIZE": 128}
        with pytest.raises(Exception, match="RESOLUTION: QGIS renders"):
            run("classify", {"INPUT": layer, **common, "EXTENT": extent, "OUTPUT": str(tmp_path / "x.tif")})
        web = run("classify", {"INPUT": layer, **common, "EXTENT": extent, "RESOLUTION": gt[1],
                               "OUTPUT": str(tmp_path / "wms.tif")})
        file = run("classify", {"INPUT": aligned, **common, "OUTPUT": str(tmp_path / "file.tif")})
        web_map = gdal.Open(web["OUTPUT"])
        assert (web_map.RasterXSize, web_map.RasterYSize) == (600, 400) and server.requests
        expected = gdal.Open(file["OUTPUT"]).ReadAsArray(200, 150, 600, 400)
        np.testing.assert_array_equal(web_map.ReadAsArray(), expected)  # QGIS rendered the same pixels
        # Super-resolution (and detection) render a web map layer the same way (plugin/algorithms/web_maps.py)
        sr_model = os.path.join(SHARED_DATA, "models-more", "dummy_superresolution_model.onnx")
        clip = str(tmp_path / "clip.tif")
        gdal.Translate(clip, aligned, srcWin=[200, 150, 600, 400])
        finer = {name: run("superresolve", {"INPUT": source, "MODEL": sr_model, "BANDS": "1,2,3", "SCALE": 1 / 255,
                                            "OUTPUT": str(tmp_path / f"sr_{name}.tif"), **extra})["OUTPUT"]
                 for name, source, extra in (("wms", layer, {"EXTENT": extent, "RESOLUTION": gt[1]}),
                                             ("file", clip, {}))}
        web_sr, file_sr = (gdal.Open(finer[name]) for name in ("wms", "file"))
        assert (web_sr.RasterXSize, web_sr.RasterYSize) == (1200, 800)
        assert web_sr.GetGeoTransform() == pytest.approx(file_sr.GetGeoTransform())
        np.testing.assert_array_equal(web_sr.ReadAsArray(), file_sr.ReadAsArray())
        web_sr = file_sr = None
        assert not [name for name in os.listdir(tmp_path) if ".rendered." in name or name.startswith(".")]
    finally:
        server.close()


def test_detect_on_an_xyz_layer_finds_the_boxes_of_the_geotiff_inside_the_mask(patchwork_provider, tmp_path,
                                                                                tiles):
    from tests.onnx_models import cell_detector

    aligned, server = tiles
    layer = QgsRasterLayer(f"type=xyz&url={server.url}&zmin=0&zmax=15", "naip tiles", "wms")
    gt = gdal.Open(aligned).GetGeoTransform()
    corners = [(100, 100), (1300, 100), (1300, 1000), (100, 1000)]  # most of the scene, in pixels of the GeoTIFF
    wkt = "POLYGON((" + ", ".join(f"{gt[0] + c * gt[1]} {gt[3] + r * gt[5]}" for c, r in [*corners, corners[0]]) + "))"
    mask = QgsVectorLayer("Polygon?crs=EPSG:3857", "mask", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromWkt(wkt))
    mask.dataProvider().addFeatures([feature])
    model = cell_detector(str(tmp_path / "cells.onnx"))
    settings = {"MODEL": model, "BANDS": "1,2,3", "SCALE": 1 / 255, "TILE_SIZE": 128, "OVERLAP": 64, "MASK": mask}
    web = run("detect", {"INPUT": layer, **settings, "OUTPUT": str(tmp_path / "web.gpkg")})
    # The web layer is read over the mask's box and a tile (128 px) around it, and the detector's cells start at
    # that area's corner: the reference is the GeoTIFF clipped to the same area.
    clip = str(tmp_path / "clip.tif")
    gdal.Translate(clip, aligned, srcWin=[100 - 128, 100 - 128, 1200 + 256, 900 + 256])
    file = run("detect", {"INPUT": clip, **settings, "OUTPUT": str(tmp_path / "file.gpkg")})

    def boxes(path):
        ds = __import__("osgeo.ogr", fromlist=["ogr"]).Open(path)
        found = sorted(tuple(round(v, 3) for v in (*f.GetGeometryRef().GetEnvelope(), f.GetField("score")))
                       for f in ds.GetLayerByName("detections"))
        ds = None
        return found

    assert web["DETECTIONS"] == file["DETECTIONS"] > 5
    assert boxes(web["OUTPUT"]) == boxes(file["OUTPUT"])  # the same boxes, in map coordinates


def test_a_tile_server_that_never_answers_ends_the_run_and_cancel_is_heard(patchwork_provider, tmp_path):
    """#29 item 7: GDAL waited 300 s for each tile of a hung server, past Cancel and SIGINT."""
    import http.server
    import threading
    import time

    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    from patchwork.core.io.web import HTTP_TIMEOUT_S

    stop = threading.Event()

    class Hang(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            stop.wait(120)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hang)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/{{z}}/{{x}}/{{y}}.png"
    layer = QgsRasterLayer(f"type=xyz&url={url}&zmin=0&zmax=15", "hung tiles", "wms")
    model = conv_model(str(tmp_path / "rgb.onnx"), np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1), softmax=True)
    feedback = QgsProcessingFeedback()
    threading.Timer(2.0, feedback.cancel).start()
    started = time.monotonic()
    try:
        import processing

        with pytest.raises(QgsProcessingException, match="Cancelled|cannot read the tile service|tile"):
            processing.run("patchwork:classify", {
                "INPUT": layer, "MODEL": model, "BANDS": "1,2,3", "SCALE": 1 / 255, "TILE_SIZE": 128,
                "EXTENT": "-8800000,-8799000,4900000,4901000 [EPSG:3857]", "OUTPUT": str(tmp_path / "x.tif")},
                feedback=feedback)
        assert time.monotonic() - started < HTTP_TIMEOUT_S + 20
    finally:
        stop.set()
        server.shutdown()
    assert [name for name in os.listdir(tmp_path) if name != "rgb.onnx"] == []


@pytest.mark.parametrize("resolution", [0, -5, 1e-9])
def test_a_wms_resolution_that_is_not_a_pixel_size_is_a_message(patchwork_provider, tmp_path, naip_path, resolution):
    """#29 item 11: RESOLUTION 0, −5 or 1e-9 on a WMS layer ended in an unexpected error."""
    from urllib.parse import quote

    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException, QgsProject

    from tests.tiles import WmsServer

    aligned = cut_tiles(naip_path, str(tmp_path / "tiles"), 15)
    server = WmsServer(aligned)
    try:
        layer = QgsRasterLayer(f"crs=EPSG:3857&format=image/png&layers=scene&styles=&url={quote(server.url)}",
                               "scene (WMS)", "wms")
        gt = gdal.Open(aligned).GetGeoTransform()
        extent = f"{gt[0]},{gt[0] + 600 * gt[1]},{gt[3] + 400 * gt[5]},{gt[3]} [EPSG:3857]"
        model = conv_model(str(tmp_path / "rgb.onnx"), np.ones((3, 3, 1, 1), np.float32), softmax=True)
        params = {"INPUT": layer, "MODEL": model, "BANDS": "1,2,3", "EXTENT": extent, "RESOLUTION": resolution,
                  "OUTPUT": str(tmp_path / "x.tif")}
        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        ok, message = QgsApplication.processingRegistry().algorithmById("patchwork:classify") \
            .checkParameterValues(params, context)
        assert not ok and message.startswith("RESOLUTION:") and "scene (WMS)" in message
        with pytest.raises(QgsProcessingException, match="RESOLUTION:"):
            run("classify", params)
    finally:
        server.close()
    assert not (tmp_path / "x.tif").exists()
