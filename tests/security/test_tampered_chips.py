"""A tampered chip dataset reads no other file and fetches nothing (#29, item 9): chips are GeoTIFF files of the
dataset, resolved against the index's folder, checked before anything is opened."""
from __future__ import annotations

import http.server
import os
import threading

import numpy as np
import pytest
from osgeo import gdal, ogr

from patchwork.core import ChipDataset, PatchworkError, RandomSampler, augment_chips, read_index, sample_chips
from tests.conftest import files_under


@pytest.fixture
def chips(tmp_path, naip_path):
    return sample_chips(naip_path, RandomSampler(3, seed=1), 32, str(tmp_path / "chips"))


def set_image_path(index: str, chip_id: int, value: str) -> None:
    ds = ogr.Open(index, 1)
    layer = ds.GetLayer(0)
    for feature in layer:
        if feature.GetField("chip_id") == chip_id:
            feature.SetField("image_path", value)
            layer.SetFeature(feature)
    ds = None


def test_a_chip_replaced_by_a_vrt_reading_another_file_is_refused(tmp_path, chips):
    first = read_index(chips.index_path)[0]
    secret = os.path.join(os.path.dirname(first["image_path"]), "secret.txt")  # beside it: GDAL ≥ 3.11 allows only
    with open(secret, "wb") as fh:                                              # such raw sources by default
        fh.write(b"password=hunter2 " * 200)
    chip = gdal.Open(first["image_path"])
    vrt = (f'<VRTDataset rasterXSize="32" rasterYSize="32"><SRS>{chip.GetProjection()}</SRS>'
           f'<GeoTransform>{", ".join(map(repr, chip.GetGeoTransform()))}</GeoTransform>'
           + "".join(f'<VRTRasterBand dataType="Byte" band="{b}" subClass="VRTRawRasterBand">'
                     '<SourceFilename relativetoVRT="1">secret.txt</SourceFilename><ImageOffset>0</ImageOffset>'
                     '<PixelOffset>1</PixelOffset><LineOffset>32</LineOffset></VRTRasterBand>' for b in range(1, 5))
           + "</VRTDataset>")
    chip = None
    with open(first["image_path"], "w") as fh:
        fh.write(vrt)
    leaked = gdal.Open(first["image_path"]).ReadAsArray()  # GDAL reads it (a .tif name, a VRT inside): a real leak
    assert bytes(leaked[0].ravel()[:8]) == b"password"
    with pytest.raises(PatchworkError, match="cannot open .* as a GTiff raster"):
        ChipDataset(chips.index_path)[0]
    with pytest.raises(PatchworkError, match="as a GTiff raster"):
        augment_chips(chips.index_path, "geometric", str(tmp_path / "augmented"))
    assert files_under(str(tmp_path / "augmented")) == []


def test_a_chip_path_naming_a_url_is_refused_before_any_request(tmp_path, chips):
    requests = []

    class Count(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Count)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for path in (f"/vsicurl/http://127.0.0.1:{server.server_port}/chip.tif",
                     f"http://127.0.0.1:{server.server_port}/chip.tif"):
            set_image_path(chips.index_path, 0, path)
            with pytest.raises(PatchworkError, match="not a file in the chip dataset"):
                ChipDataset(chips.index_path)
    finally:
        server.shutdown()
    assert requests == []


def test_paths_outside_the_dataset_are_refused_and_relative_ones_resolve_beside_the_index(tmp_path, chips,
                                                                                        monkeypatch):
    original = read_index(chips.index_path)[0]["image_path"]
    set_image_path(chips.index_path, 0, "/etc/hostname.tif")
    with pytest.raises(PatchworkError, match="not a GeoTIFF chip of a chip dataset"):
        read_index(chips.index_path)
    set_image_path(chips.index_path, 0, os.path.relpath(original, os.path.dirname(chips.index_path)))
    decoy = tmp_path / "elsewhere"
    (decoy / "images").mkdir(parents=True)
    gdal.Translate(str(decoy / "images" / os.path.basename(original)), original, scaleParams=[[0, 255, 255, 255]])
    monkeypatch.chdir(decoy)  # the old code resolved a relative chip path here
    assert read_index(chips.index_path)[0]["image_path"] == os.path.realpath(original)
    np.testing.assert_array_equal(ChipDataset(chips.index_path)[0]["image"], gdal.Open(original).ReadAsArray())


@pytest.mark.parametrize("content", ["{broken", "[1, 2]"])
def test_a_damaged_manifest_is_a_message_not_a_traceback(tmp_path, naip_path, content):
    from patchwork.core import RasterSource, VectorLabels, train_classifier

    with RasterSource(naip_path) as src:
        gt, crs = src.geotransform, src.crs_wkt
    x0, y0, size = gt[0], gt[3], 400 * gt[1]
    halves = [f"POLYGON(({x0} {y0},{x0 + size / 2} {y0},{x0 + size / 2} {y0 - size},{x0} {y0 - size},{x0} {y0}))",
              f"POLYGON(({x0 + size / 2} {y0},{x0 + size} {y0},{x0 + size} {y0 - size},{x0 + size / 2} {y0 - size},"
              f"{x0 + size / 2} {y0}))"]
    chips = sample_chips(naip_path, RandomSampler(4, seed=1), 32, str(tmp_path / "chips"),
                         labels=VectorLabels(halves, ["a", "b"], crs))

    with open(os.path.join(os.path.dirname(chips.index_path), "dataset.json"), "w") as fh:
        fh.write(content)
    with pytest.raises(PatchworkError, match="dataset.json' (cannot be read|is not a dataset manifest)"):
        ChipDataset(chips.index_path)
    with pytest.raises(PatchworkError, match="dataset.json' (cannot be read|is not a dataset manifest)"):
        train_classifier(chips.index_path, str(tmp_path / "model.onnx"))
