"""No output may overwrite an input: through qgis_process as a user runs it, and through links and `..`."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from patchwork.core import PatchworkError, RandomSampler, augment_chips, classify, sample_chips
from tests.cli.test_qgis_process import qgis_env, qgis_process  # noqa: F401 - fixture
from tests.conftest import REPO

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


def run(env, algorithm, **parameters):
    return qgis_process(env, "run", algorithm, "--", *(f"{k}={v}" for k, v in parameters.items()))


def snapshot(*paths):
    from pathlib import Path

    return {str(p): Path(p).read_bytes() for p in paths}


def test_classify_output_naming_the_model_is_refused(tmp_path, s2_path, qgis_env):  # noqa: F811
    model = tmp_path / "rules.json"
    shutil.copy(RULES, model)
    before = snapshot(model)
    done = run(qgis_env, "patchwork:classify", INPUT=s2_path, MODEL=model, OUTPUT=model)
    assert done.returncode != 0 and "is the MODEL of this run" in done.stdout + done.stderr
    assert snapshot(model) == before and sorted(os.listdir(tmp_path)) == ["rules.json"]


def test_samplechips_index_naming_the_aoi_is_refused(tmp_path, naip_path, qgis_env):  # noqa: F811
    from osgeo import gdal

    aoi = tmp_path / "aoi.gpkg"
    gdal.VectorTranslate(str(aoi), gdal.OpenEx(_aoi_geojson(tmp_path, naip_path)), format="GPKG", layerName="aoi")
    before = snapshot(aoi)
    done = run(qgis_env, "patchwork:samplechips", INPUT=naip_path, AOI=aoi, SAMPLER=0, CHIP_SIZE=64, STEP=64,
               OUTPUT_DIR=tmp_path / "chips", OUTPUT=aoi)
    assert done.returncode != 0 and "is the AOI of this run" in done.stdout + done.stderr
    assert snapshot(aoi) == before and not (tmp_path / "chips").exists()


def test_augmentchips_index_naming_its_input_is_refused(tmp_path, naip_path, qgis_env):  # noqa: F811
    chips = sample_chips(naip_path, RandomSampler(4, seed=1), 64, str(tmp_path / "chips"),
                         str(tmp_path / "chips.gpkg"))
    before = snapshot(chips.index_path)
    done = run(qgis_env, "patchwork:augmentchips", INPUT=chips.index_path, PIPELINE="geometric",
               OUTPUT_DIR=tmp_path / "augmented", OUTPUT=chips.index_path)
    assert done.returncode != 0 and "is the INPUT of this run" in done.stdout + done.stderr
    assert snapshot(chips.index_path) == before and not (tmp_path / "augmented").exists()


def test_links_and_dotdot_are_resolved(tmp_path, s2_path):
    model = tmp_path / "models" / "rules.json"
    model.parent.mkdir()
    shutil.copy(RULES, model)
    os.symlink(model, tmp_path / "link.tif")
    before = snapshot(model)
    for output in (tmp_path / "link.tif", tmp_path / "models" / ".." / "models" / "rules.json"):
        with pytest.raises(PatchworkError, match="is the MODEL of this run"):
            classify(s2_path, str(model), str(output))
    os.link(model, tmp_path / "hard.tif")
    with pytest.raises(PatchworkError, match="is the MODEL of this run"):
        classify(s2_path, str(model), str(tmp_path / "hard.tif"))
    assert snapshot(model) == before
    with pytest.raises(PatchworkError, match="is also OUTPUT"):
        classify(s2_path, str(model), str(tmp_path / "a.tif"), probabilities=str(tmp_path / "a.tif"))


def test_a_chip_folder_holding_the_input_index_is_refused(tmp_path, naip_path):
    chips = sample_chips(naip_path, RandomSampler(4, seed=1), 64, str(tmp_path / "chips"))
    before = snapshot(chips.index_path)
    with pytest.raises(PatchworkError, match="holds the INPUT.*would destroy it"):
        augment_chips(chips.index_path, "geometric", str(tmp_path / "chips"), overwrite=True)
    apart = sample_chips(naip_path, RandomSampler(4, seed=1), 64, str(tmp_path / "data" / "chips"),
                         str(tmp_path / "apart.gpkg"))
    with pytest.raises(PatchworkError, match="holds the INPUT chip"):
        augment_chips(apart.index_path, "geometric", str(tmp_path / "data"), overwrite=True)
    assert snapshot(chips.index_path) == before


def _aoi_geojson(tmp_path, raster) -> str:
    from patchwork.core import RasterSource

    with RasterSource(raster) as src:
        x0, y0 = src.geotransform[0], src.geotransform[3]
        size = 200 * src.geotransform[1]
        crs = src.crs_wkt
    from osgeo import osr

    epsg = osr.SpatialReference(wkt=crs).GetAuthorityCode(None)
    path = tmp_path / "aoi.geojson"
    ring = [[x0, y0], [x0 + size, y0], [x0 + size, y0 - size], [x0, y0 - size], [x0, y0]]
    path.write_text(json.dumps({"type": "FeatureCollection",
                                "crs": {"type": "name", "properties": {"name": f"EPSG:{epsg}"}},
                                "features": [{"type": "Feature", "properties": {},
                                              "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    return str(path)
