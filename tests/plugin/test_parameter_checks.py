"""checkParameterValues: every algorithm refuses bad input before the run starts, with the run's own message.

Each case is checked twice: by the algorithm's checkParameterValues (what the dialog, the modeler, qgis_process and
processing.run call before running) and by running the core function the algorithm calls, without the check. The
two messages must be the same, and the check must leave the folder as it was.
"""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingContext, QgsProject

from patchwork.core import PatchworkError, write_geotiff
from tests.conftest import REPO, SHARED_DATA, files_under
from tests.onnx_models import cell_detector

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")
DEEPNESS = os.path.join(SHARED_DATA, "models", "one_output_softmax_bsx2x512x512.onnx")


def _context() -> QgsProcessingContext:
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    return context


def check_and_run(algorithm_id: str, parameters: dict) -> tuple[bool, str, str]:
    """(check passed, the check's message, the message of the same run without the check)."""
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
    ok, message = algorithm.checkParameterValues(parameters, _context())
    call = algorithm.core_call(parameters, _context())
    with pytest.raises(PatchworkError) as raised:
        call.function(*call.args, **call.kwargs)
    return ok, message, str(raised.value)


def crs_less_copy(source: str, path: str) -> str:
    """`source`'s first 64 x 64 px with its geotransform but no CRS."""
    ds = gdal.Open(source)
    data = ds.ReadAsArray(0, 0, 64, 64)
    write_geotiff(path, data, ds.GetGeoTransform(), "", None)
    return path


def smaller_copy(source: str, path: str) -> str:
    gdal.Translate(path, source, srcWin=[0, 0, 50, 40])
    return path


@pytest.fixture
def work(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def cases(work, s2_path):
    """(algorithm, parameters, words the message must hold), one per refusal the issue lists and a few more."""
    labels = smaller_copy(s2_path, str(work / "labels_small.tif"))
    pickle_model = work / "model.pkl"
    pickle_model.write_bytes(pickle.dumps({"not": "a model"}))
    chips = work / "chips"
    chips.mkdir()
    for i in range(2):  # two-band chips: not a 3-class soft vote
        write_geotiff(str(chips / f"c{i}.tif"), np.zeros((2, 8, 8), np.float32),
                      (500000.0 + 80 * i, 10.0, 0.0, 4000000.0, 0.0, -10.0),
                      gdal.Open(s2_path).GetProjection(), None)
    out = str(work / "out.tif")
    return [
        ("classify", {"INPUT": s2_path, "MODEL": RULES, "BANDS": "1,2,3", "OUTPUT": out}, "takes 4 bands"),
        ("classify", {"INPUT": s2_path, "MODEL": str(pickle_model), "OUTPUT": out}, "TRUST_MODEL"),
        ("classify", {"INPUT": s2_path, "MODEL": DEEPNESS, "BANDS": "1,2,3", "TILE_SIZE": 256, "OUTPUT": out},
         "takes 512 px tiles only"),
        ("classify", {"INPUT": s2_path, "MODEL": RULES, "AGGREGATION": 2, "OUTPUT": out}, "for regression models"),
        ("samplechips", {"INPUT": crs_less_copy(s2_path, str(work / "no_crs.tif")), "CHIP_SIZE": 16,
                         "OUTPUT_DIR": str(work / "chips_out"), "OUTPUT": str(work / "index.gpkg")}, "has no CRS"),
        ("samplechips", {"INPUT": s2_path, "LABELS": labels, "CHIP_SIZE": 16, "OUTPUT_DIR": str(work / "chips_out"),
                         "OUTPUT": str(work / "index.gpkg")}, "LABELS"),
        ("trainclassifier", {"INPUT": s2_path, "LABELS": labels, "OUTPUT_MODEL": str(work / "m.onnx")}, "LABELS"),
        ("trainclassifier", {"INPUT": s2_path, "LABELS": s2_path, "PARAMETERS": '{"n_trees": 5}',
                             "OUTPUT_MODEL": str(work / "m.onnx")}, "n_trees"),
        ("stitchchips", {"INPUT": str(chips), "AGGREGATION": 1, "N_CLASSES": 3, "OUTPUT": out}, "3 band(s)"),
        ("stitchchips", {"INPUT": str(chips), "AGGREGATION": 0, "N_CLASSES": 0, "OUTPUT": out}, "N_CLASSES"),
        ("compare", {"INPUT": labels, "REFERENCE": s2_path, "OUTPUT": out}, "grid"),
        ("detect", {"INPUT": s2_path, "MODEL": DEEPNESS, "OUTPUT": str(work / "boxes.gpkg")}, "not a detector"),
        ("detect", {"INPUT": s2_path, "MODEL": cell_detector(str(work / "cells.onnx")),
                    "OUTPUT": str(work / "boxes.gpkg")}, "takes 3 bands but it would get 4"),
    ]


def test_each_algorithm_refuses_bad_input_before_the_run_with_the_runs_message(patchwork_provider, work, s2_path):
    seen = set()
    for algorithm, parameters, words in cases(work, s2_path):
        before = files_under(str(work))
        ok, message, at_run_time = check_and_run(f"patchwork:{algorithm}", parameters)
        assert not ok, (algorithm, parameters)
        assert message == at_run_time, (algorithm, message, at_run_time)
        assert words in message, (algorithm, message)
        assert "Traceback" not in message
        assert files_under(str(work)) == before, f"{algorithm}: the check (or the refused run) wrote files"
        seen.add(algorithm)
    assert seen == {"classify", "samplechips", "trainclassifier", "stitchchips", "compare", "detect"}


def test_augment_refuses_a_pipeline_that_does_not_fit_the_chips_before_writing(patchwork_provider, tmp_path,
                                                                                 s2_path):
    import processing

    index = str(tmp_path / "index.gpkg")
    processing.run("patchwork:samplechips", {"INPUT": s2_path, "CHIP_SIZE": 32, "STEP": 64,
                                             "OUTPUT_DIR": str(tmp_path / "chips"), "OUTPUT": index})
    # Two wavelengths for four-band chips: a pipeline that fails on the first chip, not after hundreds
    pipeline = json.dumps({"class": "Compose", "config": {"ops": [
        {"class": "AtmosphericHaze", "config": {"intensity": [0.1, 0.1], "wavelengths": [490, 560]}}]}})
    parameters = {"INPUT": index, "PIPELINE": pipeline, "OUTPUT_DIR": str(tmp_path / "augmented"),
                  "OUTPUT": str(tmp_path / "augmented.gpkg")}
    ok, message, at_run_time = check_and_run("patchwork:augmentchips", parameters)
    assert not ok and "2 wavelengths for a 4-band chip" in message, message
    assert message == at_run_time
    assert not os.path.exists(tmp_path / "augmented") and not os.path.exists(tmp_path / "augmented.gpkg")


def test_good_parameters_pass_the_check_without_writing(patchwork_provider, work, s2_path):
    out = str(work / "classes.tif")
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("patchwork:classify")
    ok, message = algorithm.checkParameterValues({"INPUT": s2_path, "MODEL": RULES, "SCALE": 0.0001,
                                                  "OUTPUT": out}, _context())
    assert ok and message == ""
    assert files_under(str(work)) == []


def test_a_raster_without_crs_is_classified_with_a_warning(patchwork_provider, work, s2_path):
    import processing
    from qgis.core import QgsProcessingFeedback

    class Log(QgsProcessingFeedback):
        lines: list[str] = []

        def pushInfo(self, info):  # noqa: N802 - QGIS API name
            self.lines.append(info)

    log = Log()
    raster = crs_less_copy(s2_path, str(work / "no_crs.tif"))
    result = processing.run("patchwork:classify", {"INPUT": raster, "MODEL": RULES, "SCALE": 0.0001,
                                                   "OUTPUT": str(work / "classes.tif")}, feedback=log)
    assert gdal.Open(result["OUTPUT"]).GetProjection() == ""
    assert any("has no CRS, so neither has the map" in line for line in log.lines), log.lines


def test_choices_take_words_in_processing_run_and_keep_them_when_qgis_copies_the_definition(patchwork_provider,
                                                                                            work, ortho_path):
    import processing

    model = os.path.join(SHARED_DATA, "models", "one_output_sigmoid_red_detector.onnx")
    common = {"INPUT": ortho_path, "MODEL": model, "BANDS": "1,2,3", "SCALE": 1 / 255,
              "OVERLAP": 192}
    runs = {tag: processing.run("patchwork:classify", {**common, **choice, "OUTPUT": str(work / f"{tag}.tif"),
                                                        "OUTPUT_PROBABILITIES": str(work / f"{tag}_p.tif")})
            for tag, choice in (("words", {"WINDOW": "hann", "AGGREGATION": "softvote"}),
                                ("numbers", {"WINDOW": 1, "AGGREGATION": 1}), ("default", {}))}
    shares = {tag: gdal.Open(run["OUTPUT_PROBABILITIES"]).ReadAsArray() for tag, run in runs.items()}
    np.testing.assert_array_equal(shares["words"], shares["numbers"])
    # Hann-weighted mean probabilities are not boxcar vote shares: the words were read, not taken as the default
    assert not np.allclose(shares["words"], shares["default"], equal_nan=True)
    definition = QgsApplication.processingRegistry().algorithmById("patchwork:classify").parameterDefinition("WINDOW")
    copy = definition.clone()
    assert type(copy).__name__ == "EnumParameter" and copy.checkValueIsAcceptable("triangular")
    assert copy.options() == definition.options() and not copy.checkValueIsAcceptable("gauss")


def test_rasters_without_crs_are_refused_where_chips_need_a_place_and_warned_about_elsewhere(work, s2_path):
    from patchwork.core import RegularSampler, classify, compare_classifications, sample_chips, stitch_chips

    class Said:  # a core Feedback that keeps what the runs say
        messages: list[str] = []

        def set_progress(self, percent):
            pass

        def is_cancelled(self):
            return False

        def info(self, message):
            self.messages.append(message)

    raster = crs_less_copy(s2_path, str(work / "no_crs.tif"))
    with pytest.raises(PatchworkError, match="has no CRS. Assign one first"):
        sample_chips(raster, RegularSampler(step=32), 32, str(work / "chips"))
    said = Said()
    classes = classify(raster, RULES, str(work / "classes.tif"), scale=1e-4, feedback=said).output
    chips = work / "class_chips"
    chips.mkdir()
    gdal.Translate(str(chips / "a.tif"), classes, srcWin=[0, 0, 32, 32])
    with pytest.raises(PatchworkError, match="has no CRS. Assign one first"):  # chips placed on the ground
        stitch_chips(str(chips), str(work / "mosaic.tif"), n_classes=3, feedback=said)
    compare_classifications(classes, classes, agreement=str(work / "agreement.tif"), feedback=said)
    warnings = [m for m in said.messages if "has no CRS, so neither has the" in m]
    assert [w.split("neither has the ")[1].split(":")[0] for w in warnings] == ["map", "agreement map"]
    assert not os.path.exists(work / "mosaic.tif") and not os.path.exists(work / "chips")
