"""A STAC item's asset, read where it lies: the item and a cloud-optimised GeoTIFF on an HTTP server that answers
byte ranges only; the map equals the one made from the file."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import PatchworkError, classify, stac_asset
from tests.conftest import SHARED_DATA
from tests.tiles import RangeServer

MODEL = os.path.join(SHARED_DATA, "models", "one_output_softmax_bsx2x512x512.onnx")


def item(assets: dict) -> dict:
    return {"type": "Feature", "stac_version": "1.0.0", "id": "ortho", "geometry": None, "properties": {},
            "links": [], "assets": assets}


@pytest.fixture
def served(tmp_path, ortho_path):
    gdal.Translate(str(tmp_path / "ortho_cog.tif"), ortho_path, format="COG", creationOptions=["BLOCKSIZE=256"])
    cog = "image/tiff; application=geotiff; profile=cloud-optimized"
    (tmp_path / "item.json").write_text(json.dumps(item({
        "thumbnail": {"href": "thumb.png", "type": "image/png", "roles": ["thumbnail"]},
        "visual": {"href": "ortho_cog.tif", "type": cog, "roles": ["visual"]},  # relative: to the item
        "metadata": {"href": "https://example.invalid/meta.xml", "type": "application/xml"}})))
    server = RangeServer(str(tmp_path))
    yield server
    server.close()


def test_a_stac_items_cog_asset_is_classified_in_place_to_the_files_map(tmp_path, ortho_path, served):
    path = stac_asset(f"{served.url}item.json")  # (the only raster asset: "visual")
    assert path == f"/vsicurl/{served.url}ortho_cog.tif" == stac_asset(f"{served.url}item.json", "visual")
    classify(path, MODEL, str(tmp_path / "remote.tif"), bands=[1, 2, 3], scale=1 / 255, overlap=64)
    classify(ortho_path, MODEL, str(tmp_path / "local.tif"), bands=[1, 2, 3], scale=1 / 255, overlap=64)
    remote, local = (gdal.Open(str(tmp_path / f"{n}.tif")) for n in ("remote", "local"))
    np.testing.assert_array_equal(remote.ReadAsArray(), local.ReadAsArray())
    assert remote.GetGeoTransform() == local.GetGeoTransform()
    tif_requests = [ranged for path, ranged in served.requests if path.endswith(".tif")]
    assert tif_requests and all(r.startswith("bytes=") for r in tif_requests)  # never the whole file


def test_stac_paths_and_refusals(tmp_path, served):
    assert stac_asset(str(tmp_path / "item.json"), "visual") == str(tmp_path / "ortho_cog.tif")  # a local item
    with pytest.raises(PatchworkError, match="has no asset 'B04'; its assets: thumbnail, visual, metadata"):
        stac_asset(f"{served.url}item.json", "B04")
    (tmp_path / "two.json").write_text(json.dumps(item({
        "B04": {"href": "s3://bucket/B04.tif", "type": "image/tiff; application=geotiff", "roles": ["data"]},
        "B08": {"href": "gs://bucket/B08.tif", "type": "image/tiff; application=geotiff", "roles": ["data"]}})))
    with pytest.raises(PatchworkError, match="has 2 raster assets \\(B04, B08\\); name the one to read"):
        stac_asset(str(tmp_path / "two.json"))
    assert stac_asset(str(tmp_path / "two.json"), "B04") == "/vsis3/bucket/B04.tif"
    assert stac_asset(str(tmp_path / "two.json"), "B08") == "/vsigs/bucket/B08.tif"
    (tmp_path / "collection.json").write_text(json.dumps({"type": "Collection", "id": "c"}))
    with pytest.raises(PatchworkError, match="is not a STAC item"):
        stac_asset(str(tmp_path / "collection.json"))
    with pytest.raises(PatchworkError, match="cannot read the STAC item"):
        stac_asset(f"{served.url}missing.json")
