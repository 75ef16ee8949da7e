"""patchwork:augmentchips through Processing: chip index in, augmented chip dataset out."""
from __future__ import annotations

import json

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback, QgsVectorLayer

from patchwork.core import read_index
from tests.conftest import files_under


def run(algorithm, params):
    import processing

    return processing.run(f"patchwork:{algorithm}", params, feedback=QgsProcessingFeedback())


def test_augment_chips_from_an_index_with_a_json_pipeline(patchwork_provider, tmp_path, s2_path):
    alg = QgsApplication.processingRegistry().algorithmById("patchwork:augmentchips")
    assert alg.displayName() == "Augment chips"
    assert [p.name() for p in alg.parameterDefinitions()] == ["INPUT", "PIPELINE", "COPIES", "SEED", "OVERWRITE",
                                                             "WORKERS", "OUTPUT_DIR", "OUTPUT"]
    assert alg.parameterDefinition("PIPELINE").defaultValue().endswith("default.json")
    chips = run("samplechips", {"INPUT": s2_path, "CHIP_SIZE": 64, "STEP": 64, "OUTPUT_DIR": str(tmp_path / "chips"),
                                "OUTPUT": str(tmp_path / "chips.gpkg")})
    pipeline = {"class": "Compose", "config": {"ops": [
        {"class": "RandomRotate90", "config": {"p": 1.0}}, {"class": "GaussianNoise", "config": {"sigma": 5.0}}]}}
    out = run("augmentchips", {"INPUT": chips["OUTPUT"], "PIPELINE": json.dumps(pipeline), "COPIES": 2, "SEED": 9,
                               "OUTPUT_DIR": str(tmp_path / "aug"), "OUTPUT": str(tmp_path / "aug.gpkg")})
    assert out["CHIP_COUNT"] == 2 * chips["CHIP_COUNT"]
    layer = QgsVectorLayer(out["OUTPUT"], "aug", "ogr")
    assert layer.isValid() and layer.featureCount() == out["CHIP_COUNT"] and layer.crs().authid() == "EPSG:4326"
    records = read_index(out["OUTPUT"])
    assert {r["copy"] for r in records} == {0, 1}
    assert json.loads(records[0]["augmentation"])["config"]["ops"][0]["class"] == "RandomRotate90"
    chip = gdal.Open(records[0]["image_path"])
    assert chip.GetGeoTransform()[2] != 0  # a quarter turn: rotated geotransform written to the GeoTIFF
    assert chip.ReadAsArray().dtype == np.float64


def test_bad_pipeline_is_a_clear_error_and_writes_nothing(patchwork_provider, tmp_path, s2_path):
    chips = run("samplechips", {"INPUT": s2_path, "CHIP_SIZE": 64, "STEP": 64, "OUTPUT_DIR": str(tmp_path / "chips"),
                                "OUTPUT": str(tmp_path / "chips.gpkg")})
    with pytest.raises(QgsProcessingException, match="p_vertical is a probability"):
        run("augmentchips", {"INPUT": chips["OUTPUT"],
                             "PIPELINE": '{"class": "RandomFlip", "config": {"p_vertical": 3}}',
                             "OUTPUT_DIR": str(tmp_path / "aug"), "OUTPUT": str(tmp_path / "aug.gpkg")})
    assert not files_under(str(tmp_path / "aug")) and not (tmp_path / "aug.gpkg").exists()
