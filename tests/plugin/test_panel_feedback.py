"""Failures are loud, defaults are right (#27, items 2 and 3): a failed run reaches QGIS's message bar at Critical
level in the words of the form, one run at a time, and label polygons default to their class field, never `fid`."""
from __future__ import annotations

import os
import time

import pytest
from osgeo import ogr, osr
from qgis.core import Qgis, QgsCategorizedSymbolRenderer, QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QPoint
from qgis.PyQt.QtWidgets import QApplication

from patchwork.core import PatchworkError
from tests.plugin.test_dock import wait_for


@pytest.fixture
def dock(qgis_app, qgis_iface, patchwork_provider):
    from patchwork.ui.dock import PatchworkDock

    qgis_iface.messageBar().clearWidgets()
    panel = PatchworkDock(qgis_iface)
    yield panel
    panel.cleanup()
    QgsProject.instance().removeAllMapLayers()


def critical_texts(iface) -> list[str]:
    return [item.text() for item in iface.messageBar().items() if item.level() == Qgis.MessageLevel.Critical]


def test_a_refused_run_is_critical_in_the_message_bar_with_the_parameters_label(dock, qgis_iface, tmp_path,
                                                                                   s2_path):
    from qgis.core import QgsRasterLayer

    from patchwork.plugin.algorithms.classify import ClassifyAlgorithm as Classify

    layer = QgsRasterLayer(s2_path, "s2")
    QgsProject.instance().addMapLayer(layer)
    dock.classify.classify_raster.setLayer(layer)
    dock.classify.model_file.setFilePath(str(tmp_path / "missing.onnx"))
    dock.classify.classified_file.setFilePath(str(tmp_path / "classes.tif"))
    dock.classify.run_classify()
    texts = critical_texts(qgis_iface)
    algorithm = Classify()
    algorithm.initAlgorithm()
    words = algorithm.parameterDefinition("MODEL").description()
    assert texts and any(words in text for text in texts), texts
    assert not any("MODEL:" in text for text in texts)
    assert dock.message.text().startswith(words) or words in dock.message.text()


def test_a_run_that_fails_while_running_is_critical_buttons_wait_and_the_tab_change_clears_it(
        dock, qgis_iface, qgis_app, s2_path, tmp_path, monkeypatch):
    from qgis.core import QgsRasterLayer

    from patchwork.core.tasks import sample_chips as sample_task
    from patchwork.plugin.algorithms.sample_chips import SampleChipsAlgorithm as Sample

    layer = QgsRasterLayer(s2_path, "s2")
    QgsProject.instance().addMapLayer(layer)
    dock.sample.raster_combo.setLayer(layer)
    dock.sample.labels_combo.setLayer(None)  # (settings an earlier test saved in the project come back in a new panel)
    dock.sample.aoi_combo.setLayer(None)
    dock.sample.sampler_combo.setCurrentText("random")
    dock.sample.count.setValue(5)
    dock.sample.chip_folder.setFilePath(str(tmp_path / "chips"))

    def slow_failure(*args, **kwargs):
        time.sleep(0.5)
        raise PatchworkError("COUNT: the disk went away (simulated)")
    monkeypatch.setattr(sample_task, "_cut_chips", slow_failure)
    dock.sample.run_sample()
    assert dock.run is not None, dock.message.text()
    assert not any(button.isEnabled() for button in dock.run_buttons())  # one run at a time, and it shows
    ok, _message = wait_for(dock.run, qgis_app)
    assert not ok and all(button.isEnabled() for button in dock.run_buttons())
    algorithm = Sample()
    algorithm.initAlgorithm()
    words = algorithm.parameterDefinition("COUNT").description()
    texts = critical_texts(qgis_iface)
    assert any(f"{words}: the disk went away" in text for text in texts), texts
    assert dock.message.text().startswith(f"{words}: the disk went away")
    dock.tabs.setCurrentIndex(3)
    assert dock.message.text() == "" and dock.progress.value() == 0


def polygons_gpkg(path: str, fields: dict, rows: list[dict]) -> QgsVectorLayer:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    layer = ds.CreateLayer("labels", srs, ogr.wkbPolygon)
    for name, kind in fields.items():
        layer.CreateField(ogr.FieldDefn(name, kind))
    for i, row in enumerate(rows):
        feature = ogr.Feature(layer.GetLayerDefn())
        for name, value in row.items():
            feature.SetField(name, value)
        x = 500000 + 100 * i
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({x} 0,{x + 50} 0,{x + 50} 50,{x} 50,{x} 0))"))
        layer.CreateFeature(feature)
    ds = None
    return QgsVectorLayer(path, os.path.basename(path), "ogr")


def test_the_class_field_defaults_to_the_class_never_the_key(dock, tmp_path):
    rows = [{"area": 1.5 * i, "landcover": ["water", "crop"][i % 2], "name": f"parcel {i}"} for i in range(11)]
    named = polygons_gpkg(str(tmp_path / "named.gpkg"), {"area": ogr.OFTReal, "name": ogr.OFTString,
                                                        "landcover": ogr.OFTString}, rows)
    assert named.fields().names()[0] == "fid"
    QgsProject.instance().addMapLayer(named)
    dock.sample.labels_combo.setLayer(named)
    assert dock.sample.label_field.currentField() == "landcover"

    styled = polygons_gpkg(str(tmp_path / "styled.gpkg"), {"area": ogr.OFTReal, "kind": ogr.OFTString},
                           [{"area": 1.0, "kind": "a"}, {"area": 2.0, "kind": "b"}, {"area": 3.0, "kind": "a"}])
    styled.setRenderer(QgsCategorizedSymbolRenderer("kind", []))
    QgsProject.instance().addMapLayer(styled)
    dock.sample.labels_combo.setLayer(styled)
    assert dock.sample.label_field.currentField() == "kind"  # what the user styled by

    bare = polygons_gpkg(str(tmp_path / "bare.gpkg"), {"value": ogr.OFTInteger},
                         [{"value": i % 3} for i in range(6)])
    QgsProject.instance().addMapLayer(bare)
    dock.sample.labels_combo.setLayer(bare)
    assert dock.sample.label_field.currentField() == "value"  # not fid

    dock.sample.labels_combo.setLayer(named)
    dock.sample.label_field.setField("name")  # a different value on each of the 11 polygons
    assert "each of the 11 polygons its own class" in dock.message.text()


def test_a_new_model_brings_its_own_scale_offset_and_bands(dock, tmp_path):
    """#27 item 5: 1/255 left from a Deepness model turned a 0–255 forest's map into one class."""
    from tests.conftest import SHARED_DATA

    deepness = os.path.join(SHARED_DATA, "models", "one_output_softmax_bsx2x512x512.onnx")
    dock.classify.model_file.setFilePath(deepness)
    assert dock.classify.scale.value() == pytest.approx(1 / 255, rel=1e-6)
    dock.classify.classify_bands.setText("1,2,3")
    from onnx import TensorProto, helper

    from tests.onnx_models import save_model

    forest = str(tmp_path / "forest.onnx")  # a per-pixel model with the input metadata Patchwork's trainer writes
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "pixels",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])])
    save_model(graph, {"patchwork:input_scale": 1.0, "patchwork:input_offset": 0.0,
                       "patchwork:band_names": ["blue", "green", "red", "nir"]}, forest)
    dock.classify.model_file.setFilePath(forest)
    tab = dock.classify
    assert tab.scale.value() == 1.0 and tab.offset.value() == 0.0 and tab.classify_bands.text() == ""
    assert "expects bands: blue, green, red, nir" in dock.classify.model_info.text()


def test_maps_are_named_by_model_and_input_and_heads_by_their_names(dock, qgis_app, tmp_path, ortho_path):
    """#27 item 8: two maps of one model were both 'classes — model.onnx'; a second head was 'OUTPUT_output2'."""
    import numpy as np
    from osgeo import gdal
    from qgis.core import QgsRasterLayer

    from tests.onnx_models import two_head_model

    names = []
    for name, window in (("west", [0, 0, 256, 256]), ("east", [256, 0, 256, 256])):
        path = str(tmp_path / f"{name}.tif")
        gdal.Translate(path, ortho_path, srcWin=window, bandList=[1, 2, 3])
        layer = QgsRasterLayer(path, name)
        QgsProject.instance().addMapLayer(layer)
        rgb = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)
        model = two_head_model(str(tmp_path / "two.onnx"), rgb[:2], rgb,
                               {"model_type": "Segmentor", "class_names": [{"0": "bare", "1": "green"},
                                                                           {"0": "dry", "1": "wet", "2": "open"}]})
        dock.classify.classify_raster.setLayer(layer)
        dock.classify.model_file.setFilePath(model)
        dock.classify.classified_file.setFilePath("")
        dock.classify.run_classify()
        ok, message = wait_for(dock.run, qgis_app)
        assert ok, message
        names.append([layer.name() for layer in dock.run.layers])
    assert names == [["classes — two.onnx on west", "classes (water) — two.onnx on west"],
                     ["classes — two.onnx on east", "classes (water) — two.onnx on east"]]


def test_each_models_task_shows_its_own_fields(dock, tmp_path):
    """#27 item 9: a detector kept the classification form (window, aggregation, areas did nothing) and had no
    confidence or IoU; the query image sat greyed out without a word."""
    from tests.conftest import REPO, SHARED_DATA
    from tests.onnx_models import cell_detector

    dock.classify.model_file.setFilePath(cell_detector(str(tmp_path / "cells.onnx"), "v8"))
    assert not dock.classify.confidence.isHidden() and not dock.classify.iou.isHidden()
    tab = dock.classify
    assert tab.window_combo.isHidden() and tab.areas_file.isHidden() and tab.query_file.isHidden()
    labels = {widget: label for rows in dock.classify.task_forms.values() for label, widget in rows}
    assert labels[dock.classify.areas_file].isHidden()  # the label goes with it
    form = next(form for form, rows in tab.task_forms.items() if (labels[tab.areas_file], tab.areas_file) in rows)
    assert form.getWidgetPosition(tab.areas_file)[0] == -1  # out of the form: Qt 5 kept a hidden row's spacing
    dock.classify.model_file.setFilePath(os.path.join(SHARED_DATA, "models-more", "dummy_recognition_model.onnx"))
    assert not dock.classify.query_file.isHidden() and dock.classify.confidence.isHidden()
    dock.classify.model_file.setFilePath(os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json"))
    assert dock.classify.query_file.isHidden() and dock.classify.confidence.isHidden()
    assert not dock.classify.window_combo.isHidden() and not dock.classify.areas_file.isHidden()
    # and no gap where the detector's and the recognition model's rows were: the mask's label follows the bands
    dock.show()
    QApplication.processEvents()
    bands = dock.classify.classify_bands.parentWidget()
    gap = labels[tab.classify_mask].mapTo(dock, QPoint(0, 0)).y() - bands.mapTo(dock, QPoint(0, bands.height())).y()
    assert 0 <= gap <= 2 * form.verticalSpacing() + 2, gap
    dock.hide()


def test_the_augmentation_preview_stretches_all_draws_alike_in_the_layers_bands_and_leaves_with_the_gallery(
        dock, qgis_app, s2_path):
    """#27 item 7: draws were stretched by the original chip alone (a ±10 % change looked saturated), shown in
    bands 3,2,1 whatever the layer showed, and their layers stayed in the project."""
    import numpy as np
    from qgis.core import QgsRasterLayer

    from patchwork.core import BrightnessJitter, Compose, Sample
    from patchwork.ui.preview import stretch_limits

    image = np.tile(np.arange(101, dtype=np.float32), (1, 101, 1))
    original = Sample(image, None, (0, 1, 0, 0, 0, -1), None)
    brighter = original.replace(image=image * 1.1)
    (lo, hi), = stretch_limits([original, brighter], (1,))
    assert lo < 2 and 100 < hi < 110  # the brighter draw is inside the stretch, not clipped at the original's top

    layer = QgsRasterLayer(s2_path, "s2")
    QgsProject.instance().addMapLayer(layer)
    renderer = layer.renderer()
    renderer.setRedBand(3)
    renderer.setGreenBand(2)
    renderer.setBlueBand(1)
    assert dock.augment.bands_for_display(4, layer) == (3, 2, 1)
    renderer.setRedBand(1)
    renderer.setBlueBand(3)
    assert dock.augment.bands_for_display(4, layer) == (1, 2, 3)  # what the layer shows, not false colour
    dock.augment.display_bands.setText("4,3,2")
    assert dock.augment.bands_for_display(4, layer) == (4, 3, 2)

    dock.sample.raster_combo.setLayer(layer)
    dock.augment.set_pipeline(Compose([BrightnessJitter((0.9, 1.1))]))
    assert len(dock.augment.preview_augmentation()) == 5
    assert QgsProject.instance().layerTreeRoot().findGroup("Patchwork preview") is not None
    dock.augment.gallery.close()
    qgis_app.processEvents()
    assert QgsProject.instance().layerTreeRoot().findGroup("Patchwork preview") is None
    assert not QgsProject.instance().mapLayersByName("original chip")


def test_smaller_things_of_a_first_run(dock, qgis_iface, tmp_path, s2_path, naip_path):
    """#27 item 10: the report beside the model, short descriptions in the Toolbox, the active layer first, band
    lists checked as typed."""
    from qgis.core import QgsApplication, QgsRasterLayer

    from patchwork.plugin.algorithms.train_classifier import TrainClassifierAlgorithm as Train
    from tests.conftest import REPO

    values = dock.train.form.values()
    assert values[Train.OUTPUT_REPORT] == os.path.splitext(values[Train.OUTPUT_MODEL])[0] + "_report.html"
    for algorithm in QgsApplication.processingRegistry().providerById("patchwork").algorithms():
        assert algorithm.shortDescription().endswith(".") and "<" not in algorithm.shortDescription()

    first, second = QgsRasterLayer(naip_path, "naip"), QgsRasterLayer(s2_path, "s2")
    QgsProject.instance().addMapLayers([first, second])
    qgis_iface.setActiveLayer(second)
    dock.started = False
    dock.start_on_the_active_layer()
    assert dock.sample.raster_combo.currentLayer() is second and dock.classify.classify_raster.currentLayer() is second

    dock.classify.model_file.setFilePath(os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json"))
    dock.classify.classify_bands.setText("1,2,9")
    assert not dock.classify.check_model() and "'s2' has 4 bands; there is no band 9" in dock.classify.model_info.text()
    dock.classify.classify_bands.setText("1,two")
    assert not dock.classify.check_model() and "not a list of band numbers" in dock.classify.model_info.text()


def test_a_missing_package_offers_the_installer(dock, qgis_iface, tmp_path, s2_path, monkeypatch):
    """#27 item 10: the installer never offered itself when a package was missing."""
    import numpy as np
    import skops.io as sio
    from qgis.core import QgsRasterLayer
    from qgis.PyQt.QtWidgets import QPushButton
    from sklearn.ensemble import RandomForestClassifier

    from patchwork.core.dependencies import install_hint
    from patchwork.core.models import sklearn as sklearn_models

    x = np.random.default_rng(0).random((50, 4))
    model = str(tmp_path / "forest.skops")
    sio.dump(RandomForestClassifier(n_estimators=2).fit(x, (x[:, 0] > 0.5).astype(int)), model)

    def missing(package, purpose):
        raise PatchworkError(f"{purpose}: the Python package '{package}' is needed, and QGIS's Python does not have "
                             f"it. {install_hint([package])}")
    monkeypatch.setattr(sklearn_models, "require", missing)
    layer = QgsRasterLayer(s2_path, "s2")
    QgsProject.instance().addMapLayer(layer)
    dock.classify.classify_raster.setLayer(layer)
    dock.classify.model_file.setFilePath(model)
    dock.classify.run_classify()
    item = next(i for i in qgis_iface.messageBar().items() if i.level() == Qgis.MessageLevel.Critical)
    buttons = {b.text(): b for b in item.findChildren(QPushButton)}
    assert "Install packages…" in buttons, list(buttons)
    buttons["Install packages…"].click()
    assert dock.installer.isVisible()  # the same installer as Raster ▸ Patchwork ▸ Install Python dependencies…
    dock.installer.close()


def test_chips_per_class_follow_what_the_labelled_area_supports(dock, tmp_path, naip_path):
    """#27 item 4: balanced sampling's 100 chips a class piled onto small hand-drawn polygons."""
    from qgis.core import QgsRasterLayer

    from patchwork.core import RasterSource

    raster = QgsRasterLayer(naip_path, "naip")
    with RasterSource(naip_path) as src:
        gt = src.geotransform
        crs = src.crs_wkt
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / "small.gpkg"))
    layer = ds.CreateLayer("labels", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("landcover", ogr.OFTString))
    for i, (side, name) in enumerate([(40, "water"), (40, "water"), (60, "field"), (200, "forest")]):  # sides in px
        x, y = gt[0] + (50 + 220 * i) * gt[1], gt[3] + 100 * gt[5]
        d = side * gt[1]
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("landcover", name)
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({x} {y},{x + d} {y},{x + d} {y - d},{x} {y - d},"
                                                      f"{x} {y}))"))
        layer.CreateFeature(feature)
    ds = None
    labels = QgsVectorLayer(str(tmp_path / "small.gpkg"), "hand-drawn", "ogr")
    QgsProject.instance().addMapLayers([raster, labels])
    dock.sample.raster_combo.setLayer(raster)
    dock.sample.chip_size.setValue(32)
    dock.sample.sampler_combo.setCurrentText("balanced")
    dock.sample.labels_combo.setLayer(labels)
    assert dock.sample.label_field.currentField() == "landcover"
    assert dock.sample.count.value() == 4 * 2 * 40 * 40 // 32**2 == 12  # two 40 px water squares: ~4 chips over a pixel
    assert "Chips per class set to 12" in dock.message.text()


def test_a_band_per_model_input_picked_by_name(dock, tmp_path, monkeypatch, naip_path):
    """#27 item 5: the panel never listed which bands in which order a model expects; the rules model wants blue,
    green, red, NIR and NAIP is red, green, blue, NIR."""
    from osgeo import gdal
    from qgis.core import QgsRasterLayer

    from patchwork.ui.band_picker import BandPickerDialog
    from tests.conftest import REPO

    naip = str(tmp_path / "naip.tif")
    gdal.Translate(naip, naip_path, srcWin=[0, 0, 200, 200])
    ds = gdal.Open(naip, gdal.GA_Update)
    for band, name in enumerate(["Red", "Green", "Blue", "NIR"], 1):
        ds.GetRasterBand(band).SetDescription(name)
    ds = None
    layer = QgsRasterLayer(naip, "naip")
    QgsProject.instance().addMapLayer(layer)
    dock.classify.classify_raster.setLayer(layer)
    dock.classify.model_file.setFilePath(os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json"))
    monkeypatch.setattr(BandPickerDialog, "exec", lambda self: 1)  # the user accepts what the dialog proposes
    assert dock.classify.pick_bands() == [3, 2, 1, 4]  # blue, green, red, nir found by the bands' descriptions
    assert dock.classify.classify_bands.text() == "3,2,1,4" and dock.classify.check_model()
    labels = [dock.classify.band_picker.layout().itemAt(1).layout().itemAt(i, 0).widget().text() for i in range(4)]
    assert labels == ["Input 1: blue", "Input 2: green", "Input 3: red", "Input 4: nir"]
