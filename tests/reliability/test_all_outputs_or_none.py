"""A run's outputs land all or none (#29, item 5): classify's polygons, area table and style are made from the
finished map before anything is renamed, and a multi-head model's heads are renamed together."""
from __future__ import annotations

import os

import numpy as np
import pytest

from patchwork.core import Cancelled, PatchworkError, classify
from tests.conftest import REPO, files_under
from tests.onnx_models import two_head_model

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


def contents(folder) -> dict:
    return {f: (folder / f).read_bytes() for f in files_under(str(folder))}


def test_a_failure_in_the_polygons_replaces_no_map(tmp_path, s2_path, monkeypatch):
    from patchwork.core.engine import map_writer

    out = tmp_path / "out"
    out.mkdir()
    paths = {"output": str(out / "classes.tif"), "probabilities": str(out / "p.tif"),
             "vector_output": str(out / "classes.gpkg"), "area_table": str(out / "areas.csv")}
    classify(s2_path, RULES, scale=0.0001, **paths)
    before = contents(out)
    assert set(before) >= {"classes.tif", "classes.qml", "p.tif", "classes.gpkg", "areas.csv"}

    def fails(class_map, output, *args, **kwargs):
        assert os.path.exists(class_map) and not class_map.endswith("classes.tif")  # the finished temporary map
        raise PatchworkError("OUTPUT_VECTOR: the disk is full (simulated)")
    monkeypatch.setattr(map_writer, "polygonize", fails)
    with pytest.raises(PatchworkError, match="simulated"):
        classify(s2_path, RULES, scale=0.0001, offset=0.05, **paths)  # another map than the earlier one
    assert contents(out) == before  # every earlier output byte for byte, no debris


def test_a_cancel_while_polygonizing_replaces_no_map(tmp_path, s2_path):
    class CancelWhilePolygonizing:
        def set_progress(self, percent):
            pass

        def info(self, message):
            pass

        def is_cancelled(self):
            import traceback

            return any(frame.name == "polygonize" for frame in traceback.extract_stack())

    out = tmp_path / "out"
    out.mkdir()
    paths = {"output": str(out / "classes.tif"), "vector_output": str(out / "classes.gpkg")}
    classify(s2_path, RULES, scale=0.0001, **paths)
    before = contents(out)
    with pytest.raises(Cancelled):
        classify(s2_path, RULES, scale=0.0001, offset=0.05, feedback=CancelWhilePolygonizing(), **paths)
    assert contents(out) == before
    other = classify(s2_path, RULES, str(tmp_path / "other.tif"), scale=0.0001, offset=0.05)
    assert (tmp_path / "other.tif").read_bytes() != before["classes.tif"], other  # the run would change the map


def test_a_failing_second_head_leaves_the_first_heads_earlier_maps(tmp_path, ortho_path, monkeypatch):
    from patchwork.core.engine import map_writer

    rgb = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1) * 20
    model = two_head_model(str(tmp_path / "two.onnx"), rgb[:2], rgb,
                           {"model_type": "Segmentor", "class_names": [{"0": "bare", "1": "green"},
                                                                       {"0": "dry", "1": "wet", "2": "open"}]})
    out = tmp_path / "out"
    out.mkdir()
    arguments = {"bands": [1, 2, 3], "tile_size": 256, "aggregation": "softvote",
                 "probabilities": str(out / "p.tif")}
    classify(ortho_path, model, str(out / "map.tif"), scale=1 / 255, **arguments)
    before = contents(out)
    assert {"map.tif", "map_water.tif", "p.tif", "p_water.tif"} <= set(before)

    real = map_writer.MapWriter.write
    def second_head_fails(self, result):  # noqa: E306
        if self.output.endswith("map_water.tif"):
            raise PatchworkError("OUTPUT: the second head failed (simulated)")
        return real(self, result)
    monkeypatch.setattr(map_writer.MapWriter, "write", second_head_fails)
    with pytest.raises(PatchworkError, match="second head failed"):
        classify(ortho_path, model, str(out / "map.tif"), scale=1 / 200, **arguments)
    assert contents(out) == before  # the first head's new maps were not renamed either
