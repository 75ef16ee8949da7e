"""The README's processing.run example runs as written, on the real Sentinel-2 scene and its rules classes."""
from __future__ import annotations

import os
import re

import numpy as np
from osgeo import gdal

from patchwork.core import classify
from tests.conftest import REPO, SHARED_DATA

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")
MARKER = "<!-- processing.run example"


def readme_example() -> str:
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    block = re.search(r"```python\n(.*?)```", text[text.index(MARKER):], re.S)
    return block.group(1)


def test_readme_processing_run_chain_runs_as_written(patchwork_provider, tmp_path, s2_path, monkeypatch, capsys):
    os.symlink(s2_path, tmp_path / "scene.tif")
    classify(s2_path, RULES, str(tmp_path / "labels.tif"), scale=1e-4)  # the class raster the example expects
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), names)  # noqa: S102 - the README's own code
    assert names["chips"]["CHIP_COUNT"] > 10 and names["augmented"]["CHIP_COUNT"] == 2 * names["chips"]["CHIP_COUNT"]
    assert os.path.exists("forest.onnx") and os.path.exists("training.html") and os.path.exists("compare.html")
    assert names["compared"]["AGREEMENT"] > 0.9  # the forest learnt the rules from the chips
    printed = capsys.readouterr().out
    assert re.search(r"agreement \d+\.\d%, kappa 0\.\d{3}", printed), printed
    # The label chips stitched back are the labels where chips lie
    mosaic = gdal.Open(names["mosaic"]["OUTPUT"])
    labels = gdal.Open("labels.tif")
    gt, lgt = mosaic.GetGeoTransform(), labels.GetGeoTransform()
    col, row = round((gt[0] - lgt[0]) / lgt[1]), round((gt[3] - lgt[3]) / lgt[5])
    stitched = mosaic.ReadAsArray()
    expected = labels.ReadAsArray(col, row, mosaic.RasterXSize, mosaic.RasterYSize)
    covered = stitched != mosaic.GetRasterBand(1).GetNoDataValue()
    assert covered.mean() > 0.3
    np.testing.assert_array_equal(stitched[covered], expected[covered])


def test_readme_accuracy_example_runs_as_written(patchwork_provider, tmp_path, s2_path, monkeypatch, capsys):
    """The accuracy example, with its labelling step done as an interpreter would: each point gets the class of a
    second map under it."""
    from osgeo import ogr

    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    marker = "<!-- processing.run accuracy example"
    code = re.search(r"```python\n(.*?)```", text[text.index(marker):], re.S).group(1)
    draw, assess = code.split("# ... label the points in QGIS: fill each one's 'reference' field ...")
    classify(s2_path, RULES, str(tmp_path / "classes.tif"), scale=1e-4)
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(draw, "README.md", "exec"), names)  # noqa: S102 - the README's own code
    truth = gdal.Open("classes.tif")
    gt, classes = truth.GetGeoTransform(), truth.ReadAsArray()
    ds = ogr.Open(names["drawn"]["OUTPUT"], 1)
    layer = ds.GetLayer(0)
    for number, feature in enumerate(layer):
        col = int((feature.GetGeometryRef().GetX() - gt[0]) // gt[1])
        row = int((feature.GetGeometryRef().GetY() - gt[3]) // gt[5])
        feature.SetField("reference", (int(classes[row, col]) + (number % 8 == 0)) % 3)  # one in eight is wrong
        layer.SetFeature(feature)
    ds = layer = None
    exec(compile(assess, "README.md", "exec"), names)  # noqa: S102
    assert re.search(r"overall accuracy 0\.8\d\d ± 0\.0\d\d", capsys.readouterr().out)
    assert os.path.exists("accuracy.json") and os.path.exists("accuracy.html")


def test_readme_network_example_runs_as_written(patchwork_provider, tmp_path, ortho_path, monkeypatch, capsys):
    """The segmentation network example, on two scenes cut from the orthophoto (its west and east parts, chips
    labelled by Deepness's red detector): the map it classifies is the detector's."""
    import pytest

    pytest.importorskip("torch")
    from patchwork.core import RegularSampler, sample_chips

    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    marker = "<!-- processing.run network example"
    code = re.search(r"```python\n(.*?)```", text[text.index(marker):], re.S).group(1)
    red = os.path.join(SHARED_DATA, "models", "one_output_sigmoid_red_detector.onnx")
    monkeypatch.chdir(tmp_path)
    os.symlink(ortho_path, "ortho.tif")
    labels = classify(ortho_path, red, "red.tif", bands=[1, 2, 3], scale=1 / 255).output
    for name, window in (("west", [0, 0, 640, 841]), ("east", [640, 0, 603, 841])):
        for path, source in ((f"{name}.tif", ortho_path), (f"{name}_red.tif", labels)):
            written = gdal.Translate(path, source, srcWin=window)
            written = None  # noqa: F841 - (closed: flushed to disk)
        sample_chips(f"{name}.tif", RegularSampler(step=64), 64, name, labels=f"{name}_red.tif")
    names: dict = {}
    exec(compile(code, "README.md", "exec"), names)  # noqa: S102 - the README's own code
    assert re.search(r"validation accuracy 9\d\.\d%, mean IoU 0\.[89]\d\d", capsys.readouterr().out)
    assert os.path.exists("unet.html")
    mapped, detected = gdal.Open("classes.tif").ReadAsArray(), gdal.Open("red.tif").ReadAsArray()
    assert (mapped == detected).mean() > 0.9
