"""No output replaces a file a layer or file parameter reads, whatever the core is told (#29, item 3): checked
once, in the algorithms' base class, for every algorithm and every input parameter."""
from __future__ import annotations

import json
import os

import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingException

from tests.conftest import REPO, SHARED_DATA
from tests.reliability.test_overwrites import _aoi_geojson, snapshot

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


def run(algorithm, params):
    import processing
    from qgis.core import QgsProcessingFeedback

    return processing.run(f"patchwork:{algorithm}", params, feedback=QgsProcessingFeedback())


def gpkg(tmp_path, geojson: str, name: str) -> str:
    path = str(tmp_path / f"{name}.gpkg")
    gdal.VectorTranslate(path, gdal.OpenEx(geojson), format="GPKG", layerName=name)
    return path


def refused(algorithm, params, protected: str, role: str):
    before = snapshot(protected)
    with pytest.raises(QgsProcessingException, match=f"is the {role} of this run"):
        run(algorithm, params)
    ok, message = QgsApplication.processingRegistry().algorithmById(f"patchwork:{algorithm}") \
        .checkParameterValues(params, _context())
    assert not ok and f"is the {role} of this run" in message  # the dialog refuses it before the run, too
    assert snapshot(protected) == before


def _context():
    from qgis.core import QgsProcessingContext, QgsProject

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    return context


def test_detect_output_over_its_mask(patchwork_provider, tmp_path, ortho_path):
    from tests.onnx_models import cell_detector

    mask = gpkg(tmp_path, _aoi_geojson(tmp_path, ortho_path), "mask")
    model = cell_detector(str(tmp_path / "cells.onnx"), "v8")
    refused("detect", {"INPUT": ortho_path, "MODEL": model, "MASK": mask, "BANDS": "1,2,3", "SCALE": 1 / 255,
                       "OUTPUT": mask}, mask, "MASK")


def test_classify_vector_output_over_its_mask(patchwork_provider, tmp_path, s2_path):
    mask = gpkg(tmp_path, _aoi_geojson(tmp_path, s2_path), "mask")
    refused("classify", {"INPUT": s2_path, "MODEL": RULES, "SCALE": 0.0001, "MASK": mask,
                         "OUTPUT": str(tmp_path / "classes.tif"), "OUTPUT_VECTOR": mask}, mask, "MASK")
    assert not (tmp_path / "classes.tif").exists()


def test_samplechips_index_over_its_locations(patchwork_provider, tmp_path, naip_path):
    from patchwork.core import RasterSource

    with RasterSource(naip_path) as src:
        x, y = src.geotransform[0] + 100 * src.geotransform[1], src.geotransform[3] - 100 * src.geotransform[1]
        epsg = gdal.osr.SpatialReference(wkt=src.crs_wkt).GetAuthorityCode(None)
    points = tmp_path / "points.geojson"
    points.write_text(json.dumps({"type": "FeatureCollection",
                                  "crs": {"type": "name", "properties": {"name": f"EPSG:{epsg}"}},
                                  "features": [{"type": "Feature", "properties": {},
                                                "geometry": {"type": "Point", "coordinates": [x, y]}}]}))
    locations = gpkg(tmp_path, str(points), "points")
    refused("samplechips", {"INPUT": naip_path, "SAMPLER": "points", "LOCATIONS": locations, "CHIP_SIZE": 32,
                            "OUTPUT_DIR": str(tmp_path / "chips"), "OUTPUT": locations}, locations, "LOCATIONS")
    assert not (tmp_path / "chips").exists()


def test_recognize_output_over_its_query_image(patchwork_provider, tmp_path, ortho_path):
    query = str(tmp_path / "query.tif")
    gdal.Translate(query, ortho_path, srcWin=[224, 224, 224, 224], bandList=[1, 2, 3])
    model = os.path.join(SHARED_DATA, "models-more", "dummy_recognition_model.onnx")
    refused("recognize", {"INPUT": ortho_path, "MODEL": model, "QUERY": query, "BANDS": "1,2,3", "SCALE": 1 / 255,
                          "OUTPUT": query}, query, "QUERY")
