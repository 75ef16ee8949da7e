"""The dock panel driven as a user would: parameters, previews on the canvas, background runs, cancel, unload."""
from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtWidgets import QLabel, QPushButton

from patchwork.core import load_pipeline
from tests.conftest import REPO, SHARED_DATA
from tests.onnx_models import conv_model

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


def wait_for(run, qgis_app, timeout: float = 60.0) -> tuple[bool, str]:
    """Process events until a background run reports back; returns (ok, message)."""
    done = {}
    run.finished.connect(lambda ok, results, message: done.update(ok=ok, message=message))
    deadline = time.monotonic() + timeout
    while "ok" not in done and time.monotonic() < deadline:
        qgis_app.processEvents()
        time.sleep(0.01)
    assert "ok" in done, "the run did not finish in time"
    return done["ok"], done["message"]


@pytest.fixture
def dock(qgis_app, qgis_iface, patchwork_provider):
    from patchwork.ui.dock import PatchworkDock

    panel = PatchworkDock(qgis_iface)
    yield panel
    panel.cleanup()
    QgsProject.instance().removeAllMapLayers()


@pytest.fixture
def s2_layer(s2_path, qgis_iface):
    layer = QgsRasterLayer(s2_path, "s2")
    QgsProject.instance().addMapLayer(layer)
    qgis_iface.mapCanvas().setDestinationCrs(layer.crs())
    qgis_iface.mapCanvas().setExtent(layer.extent())
    return layer


def test_chip_preview_follows_the_sampler_settings(dock, s2_layer):
    assert dock.objectName() == "PatchworkDock"
    dock.sample.raster_combo.setLayer(s2_layer)
    dock.sample.sampler_combo.setCurrentText("regular")
    dock.sample.chip_size.setValue(32)
    dock.sample.step.setValue(32)
    assert dock.sample.preview_chips() == 7 * 11  # 206 x 343 px: 7 rows and 11 columns of 32 px chips, edges shifted
    geometry = dock.sample.footprints.band.asGeometry()
    assert geometry.constGet().numGeometries() == 77
    assert geometry.boundingBox().toString(6) == s2_layer.extent().toString(6)  # full coverage, edges included
    dock.sample.sampler_combo.setCurrentText("poisson")
    dock.sample.min_distance.setValue(40)
    dock.sample.count.setValue(10)
    assert dock.sample.preview_chips() == 10
    dock.sample.chip_size.setValue(400)  # larger than the raster: the panel says so instead of drawing
    assert dock.sample.preview_chips() == 0 and "larger than the raster" in dock.message.text()
    dock.sample.live_preview.setChecked(False)
    assert dock.sample.footprints.band is None and dock.sample.footprints.count == 0


def settle(qgis_app, seconds: float = 0.5) -> None:
    """Let the panel's 250 ms preview timer fire."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        qgis_app.processEvents()
        time.sleep(0.01)


def test_the_canvas_shows_patchwork_items_only_while_the_panel_is_open_on_their_tab(dock, s2_layer, qgis_iface,
                                                                                      qgis_app):
    scene = qgis_iface.mapCanvas().scene()
    before = len(scene.items())
    dock.hide()
    dock.sample.raster_combo.setLayer(s2_layer)  # a raster loaded while the panel is closed
    settle(qgis_app)
    assert dock.sample.footprints.band is None and len(scene.items()) == before
    dock.show()  # opened: the Sample tab's footprints appear
    settle(qgis_app)
    assert dock.sample.footprints.count > 0 and len(scene.items()) == before + 1
    dock.tabs.setCurrentIndex(2)  # another tab: they leave the map
    assert len(scene.items()) == before
    dock.tabs.setCurrentIndex(0)
    settle(qgis_app)
    assert len(scene.items()) == before + 1
    dock.hide()  # closed (toolbar button, menu entry or close box): nothing of Patchwork's stays on the canvas
    assert len(scene.items()) == before and dock.sample.footprints.count == 0


def test_augmentation_preview_shows_draws_on_the_map_and_in_a_gallery(dock, s2_layer):
    dock.sample.raster_combo.setLayer(s2_layer)
    dock.sample.chip_size.setValue(48)
    dock.augment.draws.setValue(3)
    dock.augment.set_pipeline(load_pipeline("geometric"))
    samples = dock.augment.preview_augmentation()
    assert len(samples) == 4 and all(s.image.shape[1:] == (48, 48) for s in samples)
    group = QgsProject.instance().layerTreeRoot().findGroup("Patchwork preview")
    assert group is not None and len(group.findLayers()) == 4
    for node, sample in zip(group.findLayers(), samples):
        assert gdal.Open(node.layer().source()).GetGeoTransform() == pytest.approx(sample.geotransform)
    pictures = [label for label in dock.augment.gallery.findChildren(QLabel)
                if label.pixmap() and not label.pixmap().isNull()]
    assert len(pictures) == 4
    first = dock.augment.preview_seed.value()
    dock.augment.reroll()
    assert dock.augment.preview_seed.value() == first + 3
    dock.cleanup()
    assert QgsProject.instance().layerTreeRoot().findGroup("Patchwork preview") is None
    assert not QgsProject.instance().mapLayersByName("original chip")


def test_sample_run_in_the_background_adds_the_styled_index(dock, s2_layer, tmp_path, qgis_app):
    dock.sample.raster_combo.setLayer(s2_layer)
    dock.sample.sampler_combo.setCurrentText("regular")
    dock.sample.chip_size.setValue(64)
    dock.sample.step.setValue(64)
    dock.sample.chip_folder.setFilePath(str(tmp_path / "chips"))
    dock.sample.run_sample()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    index = QgsProject.instance().mapLayersByName("chips (regular, 24)")  # a name that says what it is
    assert index and index[0].featureCount() == 4 * 6
    assert index[0].renderer().symbol().symbolLayer(0).strokeColor().name() == "#ffc800"
    assert dock.progress.value() == 100 and not dock.cancel_button.isEnabled()
    # handed on: Augment and Train now start from these chips
    assert dock.augment.index_combo.currentLayer() == index[0]
    assert dock.train.form.values()["INPUT"] in (index[0].id(), index[0].source(), index[0])


def test_model_picker_explains_problems_before_the_run(dock, tmp_path, ortho_path):
    ortho = QgsRasterLayer(ortho_path, "ortho")
    QgsProject.instance().addMapLayer(ortho)
    dock.classify.classify_raster.setLayer(ortho)
    dock.classify.model_file.setFilePath(os.path.join(SHARED_DATA, "models", "two_outputs_softmax_bsx2x512x512.onnx"))
    assert not dock.classify.check_model()
    shown = dock.classify.model_info.text()
    assert "takes 3 bands but would get 4" in shown and "Coffee, Tea" in shown
    dock.classify.classify_bands.setText("1,2,3")
    assert dock.classify.check_model() and "tile 512 px (fixed)" in dock.classify.model_info.text()
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(b"\x80\x04K\x01.")
    dock.classify.model_file.setFilePath(str(pickled))
    assert not dock.classify.check_model() and "TRUST_MODEL" in dock.classify.model_info.text()


def test_a_run_the_algorithm_would_refuse_does_not_start(dock, tmp_path, ortho_path):
    """The panel asks the algorithm's checkParameterValues first: the Toolbox's words, no task, no file."""
    ortho = QgsRasterLayer(ortho_path, "ortho")
    QgsProject.instance().addMapLayer(ortho)
    dock.classify.classify_raster.setLayer(ortho)
    dock.classify.model_file.setFilePath(os.path.join(SHARED_DATA, "models", "two_outputs_softmax_bsx2x512x512.onnx"))
    dock.classify.classified_file.setFilePath(str(tmp_path / "classes.tif"))
    dock.classify.run_classify()  # four bands for a three-band model
    assert dock.run is None
    bands = dock.message.text()  # the message names the field as the form labels it, not its id
    assert bands.startswith("Bands fed to the model, in its order (default: all): the model")
    assert "takes 3 bands" in bands
    assert os.listdir(tmp_path) == []


def test_classify_run_adds_a_class_map_with_names(dock, s2_layer, tmp_path, qgis_app):
    dock.classify.classify_raster.setLayer(s2_layer)
    dock.classify.model_file.setFilePath(RULES)
    dock.classify.scale.setValue(0.0001)
    dock.classify.tile_size.setValue(128)
    dock.classify.classified_file.setFilePath(str(tmp_path / "classes.tif"))
    dock.classify.min_segment.setValue(9)
    dock.classify.polygons_file.setFilePath(str(tmp_path / "classes.gpkg"))
    dock.classify.areas_file.setFilePath(str(tmp_path / "areas.csv"))
    dock.classify.uncertainty_file.setFilePath(str(tmp_path / "uncertainty.tif"))
    dock.classify.run_classify()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    layer = dock.run.layers[0]
    assert layer.name() == "classes — ndvi_ndwi_rules.json on s2"
    unsure = QgsProject.instance().mapLayersByName("uncertainty — ndvi_ndwi_rules.json on s2")[0]
    assert unsure.renderer().type() == "singlebandpseudocolor"  # 0 sure (dark) to 1 unsure (bright)
    assert layer.renderer().type() == "paletted"
    assert [c.label for c in layer.renderer().classes()] == ["water", "bare land / scrub", "vegetation"]
    assert dock.compare.form.values()["INPUT"] in (layer.id(), layer.source(), layer)  # handed on to Compare
    polygons = QgsProject.instance().mapLayersByName("class polygons — ndvi_ndwi_rules.json on s2")[0]
    assert polygons.renderer().type() == "categorizedSymbol" and polygons.featureCount() > 10
    assert [c.label() for c in polygons.renderer().categories()] == ["water", "bare land / scrub", "vegetation"]
    assert (tmp_path / "areas.csv").read_text().startswith("class,name,pixels,hectares,percent")


def test_outputs_left_empty_go_to_temporary_files_as_in_qgis_dialogs(dock, s2_layer, qgis_app):
    dock.classify.classify_raster.setLayer(s2_layer)
    dock.classify.model_file.setFilePath(RULES)
    dock.classify.scale.setValue(0.0001)
    dock.classify.classified_file.setFilePath("")
    dock.classify.run_classify()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    path = dock.run.results["OUTPUT"]
    assert os.path.exists(path) and os.path.dirname(os.path.dirname(path)).startswith(tempfile.gettempdir())
    assert dock.message.text() == "Done: classes — ndvi_ndwi_rules.json on s2"


def test_cancel_stops_the_run_within_a_second_and_leaves_nothing(dock, tmp_path, qgis_app, example_path):
    layer = QgsRasterLayer(example_path, "example")
    QgsProject.instance().addMapLayer(layer)
    dock.classify.classify_raster.setLayer(layer)
    # An image model in tiles of 8 px, one per call: a long run (a per-pixel model would not use tiles).
    model = conv_model(str(tmp_path / "conv.onnx"), np.ones((2, 4, 1, 1), np.float32), softmax=True)
    dock.classify.model_file.setFilePath(model)
    dock.classify.tile_size.setValue(16)
    dock.classify.classified_file.setFilePath(str(tmp_path / "out" / "classes.tif"))
    run = dock.start_run("patchwork:classify", {"INPUT": example_path, "MODEL": model, "TILE_SIZE": 8,
                                                "BATCH_SIZE": 1, "WORKERS": 1,
                                                "OUTPUT": str(tmp_path / "out" / "classes.tif")})
    deadline = time.monotonic() + 10
    while dock.progress.value() < 2 and time.monotonic() < deadline:  # it is really running
        qgis_app.processEvents()
    assert dock.progress.value() < 100
    started = time.monotonic()
    dock.cancel_run()
    ok, message = wait_for(run, qgis_app, timeout=5)
    assert not ok and time.monotonic() - started < 1.0
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_settings_are_remembered_per_project(dock, qgis_iface):
    from patchwork.ui.dock import PatchworkDock

    dock.sample.chip_size.setValue(96)
    dock.sample.sampler_combo.setCurrentText("jittered")
    dock.classify.scale.setValue(0.0001)
    dock.save_settings()
    again = PatchworkDock(qgis_iface)
    try:
        assert again.sample.chip_size.value() == 96 and again.sample.sampler_combo.currentText() == "jittered"
        assert again.classify.scale.value() == pytest.approx(0.0001)
    finally:
        again.cleanup()
        QgsProject.instance().removeEntry("Patchwork", "/")


def test_every_widget_has_a_tooltip_and_takes_the_keyboard(dock):
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QPlainTextEdit

    def ours(w) -> bool:  # not the inner parts of Qt's and QGIS's own composite widgets
        return not w.objectName().startswith("qt_") and type(w.parent()).__name__ not in ("QTabBar",
                                                                                         "QgsFilterLineEdit")

    widgets = [w for kind in (QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QPlainTextEdit)
               for w in dock.findChildren(kind) if ours(w)]
    assert len(widgets) > 40
    missing = [w for w in widgets if not w.toolTip() and not (w.parent() and w.parent().toolTip())]
    assert not missing, [(type(w).__name__, w.objectName(), type(w.parent()).__name__) for w in missing]
    assert all(w.focusPolicy() != Qt.NoFocus for w in widgets if isinstance(w, (QAbstractSpinBox, QComboBox)))


def test_unload_removes_menu_toolbar_dock_and_canvas_items(qgis_app, qgis_iface, patchwork_provider, s2_layer):
    import patchwork

    canvas_items = len(qgis_iface.mapCanvas().scene().items())
    plugin = patchwork.classFactory(qgis_iface)
    plugin.initGui()
    dock = plugin.dock
    assert dock is not None and plugin.action.objectName() == "PatchworkPanelAction"
    plugin.action.setChecked(True)
    dock.sample.raster_combo.setLayer(s2_layer)
    assert dock.sample.preview_chips() > 0
    plugin.unload()
    assert plugin.dock is None and plugin.action is None and plugin.provider is None
    assert len(qgis_iface.mapCanvas().scene().items()) == canvas_items  # its rubber bands are gone


def test_a_folder_holding_a_chip_dataset_is_replaced_only_when_the_user_agrees(dock, tmp_path, monkeypatch):
    from qgis.PyQt.QtWidgets import QMessageBox

    from patchwork.ui.widgets import may_replace_dataset

    folder = tmp_path / "chips"
    assert may_replace_dataset(dock, str(folder)) is False  # a new folder: nothing to ask
    folder.mkdir()
    (folder / "dataset.json").write_text("{}")
    asked = []
    for answer, expected in ((QMessageBox.StandardButton.No, None), (QMessageBox.StandardButton.Yes, True)):
        monkeypatch.setattr(QMessageBox, "question", lambda *args, answer=answer: asked.append(args[2]) or answer)
        assert may_replace_dataset(dock, str(folder)) is expected
    assert len(asked) == 2 and "already holds a chip dataset" in asked[0]


def test_the_whole_chain_runs_from_the_panel_alone(dock, s2_layer, tmp_path, qgis_app, qgis_iface):
    """Sample → Augment → Train → Classify → Compare, each tab handing its output to the next."""
    from patchwork.core import classify

    labels_path = str(tmp_path / "labels.tif")
    classify(s2_layer.source(), RULES, labels_path, scale=1e-4)
    labels = QgsRasterLayer(labels_path, "labels")
    QgsProject.instance().addMapLayer(labels)
    dock.sample.raster_combo.setLayer(s2_layer)
    dock.sample.labels_combo.setLayer(labels)
    dock.sample.sampler_combo.setCurrentText("poisson")
    dock.sample.chip_size.setValue(32)
    dock.sample.min_distance.setValue(48)
    dock.sample.count.setValue(0)
    dock.sample.chip_folder.setFilePath(str(tmp_path / "chips"))
    dock.sample.run_sample()
    assert wait_for(dock.run, qgis_app)[0]
    dock.augment.set_pipeline(load_pipeline("geometric"))
    dock.augment.augment_folder.setFilePath(str(tmp_path / "augmented"))
    dock.augment.run_augment()
    assert wait_for(dock.run, qgis_app)[0]
    augmented = dock.run.layers[0]
    assert augmented.name().startswith("augmented chips (")
    assert dock.train.form.values()["INPUT"] in (augmented.id(), augmented.source(), augmented)
    default_model = dock.train.form.values()["OUTPUT_MODEL"]
    assert default_model.endswith(".onnx") and not default_model.startswith(tempfile.gettempdir())  # kept
    dock.train.form.set_value("PARAMETERS", '{"n_estimators": 30}')
    dock.train.form.set_value("OUTPUT_MODEL", str(tmp_path / "forest.onnx"))
    dock.train.button.click()
    ok, message = wait_for(dock.run, qgis_app, timeout=120)
    assert ok, message
    assert dock.classify.model_file.filePath() == str(tmp_path / "forest.onnx")  # the model appears in Classify
    assert dock.message.text().startswith("Model trained, validation accuracy")
    dock.classify.classify_raster.setLayer(s2_layer)
    dock.classify.classified_file.setFilePath(str(tmp_path / "classes.tif"))
    dock.classify.run_classify()
    assert wait_for(dock.run, qgis_app)[0]
    assert dock.run.layers[0].name() == "classes — forest.onnx on s2"
    dock.compare.form.set_value("REFERENCE", labels)
    dock.compare.button.click()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    assert dock.run.results["AGREEMENT"] > 0.9
    assert dock.message.text().startswith("Agreement ") and "kappa" in dock.message.text()
    assert [layer.name() for layer in dock.run.layers] == ["agreement"]
    qgis_app.processEvents()  # Patchwork's notice comes after QGIS's own "Task complete"
    shown = qgis_iface.messageBar().currentItem()  # the message bar says so too, with a button to the layer
    assert shown is not None and shown.text().startswith("Agreement ")
    assert "Zoom to layer" in [button.text() for button in shown.findChildren(QPushButton)]
    assert "Open report" in [button.text() for button in shown.findChildren(QPushButton)]


def test_a_raster_without_crs_is_refused_by_the_previews_as_by_the_sampler(dock, s2_path, tmp_path, qgis_iface):
    from patchwork.core import write_geotiff

    source = gdal.Open(s2_path)
    path = write_geotiff(str(tmp_path / "no_crs.tif"), source.ReadAsArray(), source.GetGeoTransform(), "")
    layer = QgsRasterLayer(path, "no CRS")
    QgsProject.instance().addMapLayer(layer)
    scene = qgis_iface.mapCanvas().scene()
    before = len(scene.items())
    dock.sample.raster_combo.setLayer(layer)
    assert dock.sample.preview_chips() == 0 and "has no CRS" in dock.message.text()
    assert dock.augment.preview_augmentation() == [] and "has no CRS" in dock.message.text()
    assert len(scene.items()) == before  # nothing drawn: no footprints, no outline, no tint
    assert QgsProject.instance().layerTreeRoot().findGroup("Patchwork preview") is None


def test_each_parameter_is_defined_once_and_the_panel_reads_it(qgis_iface, patchwork_provider):
    """Help, default, range and choices live in the algorithm's definitions; the panel's fields and tooltips are
    read from them (and QGIS shows the same help in the Toolbox's tooltips)."""
    from qgis.core import QgsApplication

    from patchwork.ui.dock import PatchworkDock

    QgsProject.instance().clear()  # no settings kept from earlier tests: the panel's own defaults
    dock = PatchworkDock(qgis_iface)
    try:
        registry = QgsApplication.processingRegistry()
        for algorithm in registry.providerById("patchwork").algorithms():
            for parameter in algorithm.parameterDefinitions():
                if parameter.isDestination() and algorithm.group() == "Workflows":
                    continue  # the model's outputs are its steps' (their help is theirs)
                assert parameter.help(), f"{algorithm.id()} {parameter.name()} has no help"
                assert parameter.help() in parameter.toolTip()
        sample = registry.algorithmById("patchwork:samplechips")
        chip = sample.parameterDefinition("CHIP_SIZE")
        size = dock.sample.chip_size
        assert (size.value(), size.maximum()) == (chip.defaultValue(), chip.maximum()) == (64, 8192)
        assert dock.sample.chip_size.toolTip() == chip.help()
        assert dock.sample.boundary.toolTip() == sample.parameterDefinition("BOUNDARY").help()
        assert [dock.sample.boundary.itemText(i) for i in range(dock.sample.boundary.count())] == \
            sample.parameterDefinition("BOUNDARY").options()
        classify = registry.algorithmById("patchwork:classify")
        assert dock.classify.scale.toolTip() == classify.parameterDefinition("SCALE").help()
        tab = dock.classify
        assert tab.tile_size.text() == tab.overlap.text() == "the model's"  # a sentinel reads as words
        assert dock.classify.tile_size.maximum() == classify.parameterDefinition("TILE_SIZE").maximum()
        train = dock.train.form.widget("VALIDATION_FRACTION")
        assert registry.algorithmById("patchwork:trainclassifier").parameterDefinition("VALIDATION_FRACTION").help() \
            in train.toolTip()
    finally:
        dock.cleanup()


def test_the_panel_previews_and_runs_chips_centred_on_points(dock, tmp_path, qgis_app):
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsVectorLayer

    naip = QgsRasterLayer(os.path.join(SHARED_DATA, "naip_rgbn_5m_2019.tif"), "naip")
    QgsProject.instance().addMapLayer(naip)
    extent = naip.extent()
    points = QgsVectorLayer(f"Point?crs={naip.crs().authid()}", "survey", "memory")
    for fx, fy in ((0.2, 0.3), (0.5, 0.5), (0.8, 0.6), (1.5, 0.5)):  # the last one east of the raster
        feature = QgsFeature()
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(extent.xMinimum() + fx * extent.width(),
                                                               extent.yMaximum() - fy * extent.height())))
        points.dataProvider().addFeatures([feature])
    QgsProject.instance().addMapLayer(points)
    dock.sample.raster_combo.setLayer(naip)
    dock.sample.sampler_combo.setCurrentText("points")
    assert dock.sample.locations_combo.isEnabled() and not dock.sample.step.isEnabled()
    dock.sample.locations_combo.setLayer(points)
    dock.sample.chip_size.setValue(32)
    assert dock.sample.preview_chips() == 3
    dock.sample.chip_folder.setFilePath(str(tmp_path / "chips"))
    dock.sample.run_sample()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    assert dock.run.layers[0].featureCount() == 3 and dock.run.layers[0].name() == "chips (points, 3)"


def test_the_panel_takes_label_polygons_and_previews_chips_drawn_by_class(dock, tmp_path, qgis_app):
    """Polygons in EPSG:4326 over the UTM NAIP scene, a class field with a categorized style: the balanced sampler's
    chips are previewed from the rasterised polygons and the run writes label chips with the style's classes."""
    from qgis.core import (
        QgsCategorizedSymbolRenderer,
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransform,
        QgsFeature,
        QgsFillSymbol,
        QgsGeometry,
        QgsRectangle,
        QgsRendererCategory,
        QgsVectorLayer,
    )

    naip = QgsRasterLayer(os.path.join(SHARED_DATA, "naip_rgbn_5m_2019.tif"), "naip")
    QgsProject.instance().addMapLayer(naip)
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    to_wgs84 = QgsCoordinateTransform(naip.crs(), wgs84, QgsProject.instance())
    extent = naip.extent()
    polygons = QgsVectorLayer("Polygon?crs=EPSG:4326&field=crop:integer", "fields", "memory")  # every QGIS's way
    for crop, (x0, x1) in ((1, (0.05, 0.45)), (2, (0.55, 0.95))):
        box = QgsRectangle(extent.xMinimum() + x0 * extent.width(), extent.yMinimum() + 0.1 * extent.height(),
                           extent.xMinimum() + x1 * extent.width(), extent.yMinimum() + 0.9 * extent.height())
        geometry = QgsGeometry.fromRect(box)
        geometry.transform(to_wgs84)
        feature = QgsFeature(polygons.fields())
        feature.setGeometry(geometry)
        feature.setAttribute("crop", crop)
        polygons.dataProvider().addFeatures([feature])
    categories = [QgsRendererCategory(value, QgsFillSymbol.createSimple({"color": colour}), name)
                  for value, colour, name in ((1, "#e0c040", "wheat"), (2, "#40a040", "maize"))]
    polygons.setRenderer(QgsCategorizedSymbolRenderer("crop", categories))
    QgsProject.instance().addMapLayer(polygons)
    dock.sample.raster_combo.setLayer(naip)
    dock.sample.sampler_combo.setCurrentText("balanced")
    dock.sample.count.setValue(6)
    dock.sample.chip_size.setValue(32)
    assert dock.sample.preview_chips() == 0 and "choose LABELS" in dock.message.text()
    assert not dock.sample.label_field.isEnabled()
    dock.sample.labels_combo.setLayer(polygons)
    assert dock.sample.label_field.isEnabled() and dock.sample.label_field.currentField() == "crop"
    assert dock.sample.preview_chips() == 12  # 6 per class, drawn from the polygons rasterised on the raster's grid
    dock.sample.chip_folder.setFilePath(str(tmp_path / "chips"))
    dock.sample.run_sample()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    assert dock.run.layers[0].featureCount() == 12
    with open(tmp_path / "chips" / "dataset.json", encoding="utf-8") as fh:
        manifest = json.load(fh)
    assert [(c["id"], c["name"]) for c in manifest["classes"]] == [(1, "wheat"), (2, "maize")]
    assert manifest["chips_per_class"] == {"1": 6, "2": 6}


def test_the_classify_tab_runs_a_detector_as_detect_objects(dock, tmp_path, qgis_app, ortho_path):
    from tests.onnx_models import cell_detector

    ortho = QgsRasterLayer(ortho_path, "ortho")
    QgsProject.instance().addMapLayer(ortho)
    dock.classify.classify_raster.setLayer(ortho)
    dock.classify.model_file.setFilePath(cell_detector(str(tmp_path / "cells.onnx")))
    dock.classify.classify_bands.setText("1,2,3")
    dock.classify.scale.setValue(1 / 255)
    dock.classify.tile_size.setValue(256)
    dock.classify.overlap.setValue(64)
    assert dock.classify.check_model() and "a detector" in dock.classify.model_info.text()
    dock.classify.polygons_file.setFilePath(str(tmp_path / "boxes.gpkg"))
    dock.classify.run_classify()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    layer = dock.run.layers[0]
    assert layer.name().startswith("detections — cells.onnx on ortho (") and layer.featureCount() > 50
    assert layer.renderer().type() == "categorizedSymbol"


def test_the_classify_tab_runs_a_super_resolution_model(dock, tmp_path, qgis_app, ortho_path):
    from osgeo import gdal as _gdal

    small = str(tmp_path / "small.tif")
    _gdal.Translate(small, ortho_path, srcWin=[0, 0, 96, 80], bandList=[1, 2, 3])
    layer = QgsRasterLayer(small, "small")
    QgsProject.instance().addMapLayer(layer)
    dock.classify.classify_raster.setLayer(layer)
    dock.classify.model_file.setFilePath(os.path.join(SHARED_DATA, "models-more", "dummy_superresolution_model.onnx"))
    dock.classify.scale.setValue(1 / 255)
    # the model's (an earlier test's 64 px would be refused, clearly)
    dock.classify.overlap.setValue(dock.classify.overlap.minimum())
    assert dock.classify.check_model() and "x2 super-resolution" in dock.classify.model_info.text()
    dock.classify.classified_file.setFilePath(str(tmp_path / "x2.tif"))
    dock.classify.run_classify()
    assert dock.run is not None, dock.message.text()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    result = dock.run.layers[0]
    assert result.name() == "super-resolved x2 — dummy_superresolution_model.onnx on small"
    assert (result.width(), result.height()) == (192, 160)


def test_the_classify_tab_runs_the_model_at_a_resolution(dock, s2_layer, tmp_path, qgis_app):
    dock.classify.classify_raster.setLayer(s2_layer)
    dock.classify.model_file.setFilePath(RULES)
    dock.classify.scale.setValue(0.0001)
    dock.classify.classify_bands.setText("")  # all (an earlier test's 1,2,3 is remembered in the project)
    dock.classify.resolution.setText(str(3 * s2_layer.rasterUnitsPerPixelX()))  # (not a half pixel at the edge)
    dock.classify.output_grid.setCurrentText("model")
    dock.classify.classified_file.setFilePath(str(tmp_path / "coarse.tif"))
    dock.classify.run_classify()
    assert dock.run is not None, dock.message.text()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    assert (dock.run.layers[0].width(), dock.run.layers[0].height()) == (114, 69)  # 343 x 206 px / 3
    dock.classify.resolution.setText("fine")
    dock.classify.run_classify()
    assert "RESOLUTION: 'fine' is not a number" in dock.message.text()


def test_the_classify_tab_runs_a_recognition_model_with_its_query(dock, tmp_path, qgis_app, ortho_path):
    query = str(tmp_path / "query.tif")
    gdal.Translate(query, ortho_path, srcWin=[224, 224, 224, 224], bandList=[1, 2, 3])
    ortho = QgsRasterLayer(ortho_path, "ortho")
    QgsProject.instance().addMapLayer(ortho)
    dock.classify.classify_raster.setLayer(ortho)
    dock.classify.model_file.setFilePath(os.path.join(SHARED_DATA, "models-more", "dummy_recognition_model.onnx"))
    dock.classify.classify_bands.setText("1,2,3")
    dock.classify.scale.setValue(1 / 255)
    dock.classify.overlap.setValue(dock.classify.overlap.minimum())
    dock.classify.tile_size.setValue(dock.classify.tile_size.minimum())
    tab = dock.classify
    assert tab.check_model() and "runs Recognize" in tab.model_info.text() and tab.query_file.isEnabled()
    dock.classify.query_file.setFilePath(query)
    dock.classify.resolution.setText(repr(gdal.Open(ortho_path).GetGeoTransform()[1]))  # its grid, not the model's 3 cm
    dock.classify.classified_file.setFilePath(str(tmp_path / "similar.tif"))
    dock.classify.run_classify()
    assert dock.run is not None, dock.message.text()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    assert dock.run.layers[0].name() == "similarity — dummy_recognition_model.onnx on ortho"
    assert gdal.Open(str(tmp_path / "similar.tif")).ReadAsArray().max() == pytest.approx(1.0, abs=1e-4)


def test_background_runs_read_layers_on_the_main_thread_only(dock, tmp_path, qgis_app, monkeypatch):
    """QGIS's layers are not thread-safe: reading project layers from the run's worker thread crashed QGIS now and
    then. Every layer and feature read happens in prepareAlgorithm, on the main thread."""
    import threading

    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsVectorLayer

    from patchwork.plugin.algorithms.common import PatchworkAlgorithm
    from patchwork.ui.runner import AlgorithmRun

    reads = []

    def spy(name: str):
        read = getattr(PatchworkAlgorithm, name)

        def recorded(self, *args):
            reads.append((name, threading.current_thread() is threading.main_thread()))
            return read(self, *args)
        return recorded

    for name in ("parameterAsSource", "parameterAsLayer", "parameterAsRasterLayer", "parameterAsVectorLayer"):
        monkeypatch.setattr(PatchworkAlgorithm, name, spy(name))
    naip = QgsRasterLayer(os.path.join(SHARED_DATA, "naip_rgbn_5m_2019.tif"), "naip")
    extent = naip.extent()
    points = QgsVectorLayer(f"Point?crs={naip.crs().authid()}", "survey", "memory")
    area = QgsVectorLayer(f"Polygon?crs={naip.crs().authid()}", "area", "memory")
    for fx, fy in ((0.2, 0.3), (0.5, 0.5), (0.8, 0.6)):
        feature = QgsFeature()
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(extent.xMinimum() + fx * extent.width(),
                                                               extent.yMaximum() - fy * extent.height())))
        points.dataProvider().addFeatures([feature])
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromRect(extent.buffered(-extent.width() / 10)))
    area.dataProvider().addFeatures([feature])
    QgsProject.instance().addMapLayers([naip, points, area])
    runs = [("patchwork:samplechips", {"INPUT": naip.id(), "SAMPLER": "points", "LOCATIONS": points.id(),
                                       "AOI": area.id(), "CHIP_SIZE": 32, "OUTPUT_DIR": str(tmp_path / "chips"),
                                       "OUTPUT": str(tmp_path / "chips.gpkg")}),
            ("patchwork:classify", {"INPUT": naip.id(), "MODEL": RULES, "SCALE": 1 / 255, "MASK": area.id(),
                                    "OUTPUT": str(tmp_path / "classes.tif")})]
    for algorithm_id, parameters in runs:
        run = AlgorithmRun(algorithm_id, parameters)
        run.start()
        ok, message = wait_for(run, qgis_app)
        assert ok, message
    assert os.path.exists(tmp_path / "chips.gpkg") and os.path.exists(tmp_path / "classes.tif")
    assert {name for name, _ in reads} >= {"parameterAsSource", "parameterAsRasterLayer"}
    assert [name for name, on_main_thread in reads if not on_main_thread] == []


def test_the_stitch_tab_is_the_algorithms_own_form_and_stitches_chips(dock, qgis_app, tmp_path, naip_path):
    """#26: Stitch was hand-built (its own labels, its own output picker); now QGIS's widgets from the algorithm's
    definitions, like Train and Compare. A run from the tab writes the mosaic of the chips on their grid."""
    from osgeo import gdal

    from patchwork.core import RegularSampler, sample_chips
    from patchwork.plugin.algorithms.stitch_chips import StitchChipsAlgorithm as Stitch

    registry_names = [p.name() for p in dock.stitch.form.algorithm.parameterDefinitions()]
    assert set(dock.stitch.form.wrappers) == set(registry_names)
    dock.stitch.run()
    assert "Choose a chip folder first" in dock.message.text() and dock.run is None
    sample_chips(naip_path, RegularSampler(step=64), 64, str(tmp_path / "chips"))
    dock.stitch.form.set_value(Stitch.INPUT, str(tmp_path / "chips" / "images"))
    dock.stitch.form.set_value(Stitch.AGGREGATION, 2)  # mean: image chips are values
    dock.stitch.form.set_value(Stitch.OUTPUT, str(tmp_path / "mosaic.tif"))
    dock.stitch.run()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    mosaic, scene = gdal.Open(str(tmp_path / "mosaic.tif")), gdal.Open(naip_path)
    assert mosaic.GetGeoTransform() == scene.GetGeoTransform()
    # the chips cover the scene (the last row and column shifted back): the mean of the chips is the scene itself
    assert (mosaic.RasterXSize, mosaic.RasterYSize) == (scene.RasterXSize, scene.RasterYSize)
    np.testing.assert_allclose(mosaic.ReadAsArray(), scene.ReadAsArray(), atol=0.5)


def test_the_report_tab_draws_points_opens_them_for_labelling_and_assesses_the_map(dock, s2_layer, tmp_path,
                                                                                   qgis_app, qgis_iface):
    """#24 in the panel: a classification hands its map to Report; step 1 draws the points, step 2 opens them in
    editing with their table, step 3 gives accuracy and area from the labels and shows the report."""
    from patchwork.plugin.algorithms.accuracy import AccuracyAlgorithm as Accuracy
    from patchwork.plugin.algorithms.accuracy import AccuracySampleAlgorithm as AccuracySample

    assert dock.tabs.tabText(dock.tabs.indexOf(dock.report)) == "Report"
    dock.classify.classify_raster.setLayer(s2_layer)
    dock.classify.model_file.setFilePath(RULES)
    dock.classify.scale.setValue(0.0001)
    dock.classify.classified_file.setFilePath(str(tmp_path / "classes.tif"))
    assert not dock.report.suggest_button.isEnabled()  # nothing classified yet
    dock.report.assess()
    assert "Choose the labelled points first" in dock.message.text()
    dock.classify.uncertainty_file.setFilePath(str(tmp_path / "unsure.tif"))
    dock.classify.run_classify()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    class_map = dock.run.layers[0]
    assert dock.report.suggest_button.isEnabled()  # what to label next, from that run's uncertainty
    dock.report.suggest_button.click()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    assert dock.run.layers[0].name() == "label next (50)"
    assert dock.report.sample_form.values()[AccuracySample.INPUT] in (class_map.id(), class_map.source(), class_map)
    dock.report.sample_form.set_value(AccuracySample.TARGET_SE, 0.02)
    dock.report.sample_form.set_value(AccuracySample.OUTPUT, str(tmp_path / "points.gpkg"))
    dock.report.sample_button.click()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    points = dock.run.layers[0]
    assert points.name().startswith("points to label — ") and points.featureCount() > 50
    assert points.editorWidgetSetup(points.fields().indexOf("reference")).type() == "ValueMap"
    assert dock.report.label_button.isEnabled()
    dock.report.label_button.click()
    assert points.isEditable() and qgis_iface.activeLayer() is points
    truth = gdal.Open(str(tmp_path / "classes.tif"))
    gt, classes = truth.GetGeoTransform(), truth.ReadAsArray()
    reference = points.fields().indexOf("reference")
    for number, feature in enumerate(points.getFeatures()):  # the interpreter: one point in five differs
        x, y = feature.geometry().asPoint().x(), feature.geometry().asPoint().y()
        value = int(classes[int((y - gt[3]) // gt[5]), int((x - gt[0]) // gt[1])])
        points.changeAttributeValue(feature.id(), reference, (value + (number % 5 == 0)) % 3)
    assert points.commitChanges()
    dock.report.accuracy_form.set_value(Accuracy.OUTPUT_REPORT, str(tmp_path / "accuracy.html"))
    dock.report.accuracy_button.click()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    assert dock.run.results[Accuracy.OVERALL_ACCURACY] == pytest.approx(0.8, abs=0.03)
    assert dock.message.text().startswith("Overall accuracy 0.")
    assert os.path.exists(tmp_path / "accuracy.html")
    first = json.loads(open(dock.run.results[Accuracy.OUTPUT_JSON], encoding="utf-8").read())
    # a retrained map is assessed with the sample drawn from this one: its strata stay this map's classes (Stehman
    # 2014); on this very map that design gives the same estimates as the map-class design
    dock.report.assess_new_map()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    again = json.loads(open(dock.run.results[Accuracy.OUTPUT_JSON], encoding="utf-8").read())
    assert dock.run.parameters[Accuracy.DESIGN] == 1 and dock.run.parameters[Accuracy.STRATA] is not None
    for key in ("overall_accuracy", "overall_accuracy_ci"):
        assert again[key] == pytest.approx(first[key], rel=1e-12)
    for a, b in zip(again["classes"], first["classes"]):
        assert (a["area_m2"], a["area_m2_ci"]) == pytest.approx((b["area_m2"], b["area_m2_ci"]), rel=1e-9)
    # the labels corrected, assessed again: the report says what changed since the first assessment
    points.startEditing()
    for feature in points.getFeatures():
        x, y = feature.geometry().asPoint().x(), feature.geometry().asPoint().y()
        points.changeAttributeValue(feature.id(), reference,
                                    int(classes[int((y - gt[3]) // gt[5]), int((x - gt[0]) // gt[1])]))
    assert points.commitChanges()
    dock.report.accuracy_form.set_value(Accuracy.OUTPUT_REPORT, str(tmp_path / "again.html"))
    dock.report.accuracy_button.click()
    ok, message = wait_for(dock.run, qgis_app)
    assert ok, message
    assert dock.run.results[Accuracy.OVERALL_ACCURACY] == 1.0
    page = (tmp_path / "again.html").read_text(encoding="utf-8")
    assert "Since the previous assessment" in page and "<td>1.000 ± 0.000</td>" in page


def run_through(dock, qgis_app, algorithm_ids: list[str], timeout: float = 180.0) -> None:
    """Wait for a chain of runs the panel starts itself, one after the other, each to succeed."""
    for algorithm_id in algorithm_ids:
        deadline = time.monotonic() + timeout
        while not (dock.run is not None and dock.run.algorithm_id == algorithm_id) and time.monotonic() < deadline:
            qgis_app.processEvents()
            time.sleep(0.01)
        assert dock.run.algorithm_id == algorithm_id, f"{algorithm_id} did not start"
        if dock.run.running:
            ok, message = wait_for(dock.run, qgis_app, timeout)
            assert ok, message
        qgis_app.processEvents()  # the next step starts from the event loop


def test_places_labelled_next_go_into_the_labels_and_the_panel_retrains_and_classifies_again(
        dock, tmp_path, qgis_app, naip_path, monkeypatch):
    """#24 §4, the loop in the panel: classify with uncertainty → suggest places → label some → one button adds them to
    the label polygons (a new layer, the classes as the polygons spell them) and runs Sample, Train and Classify
    again; the training says how its validation accuracy changed."""
    from qgis.core import NULL, QgsVectorLayer
    from qgis.PyQt.QtWidgets import QMessageBox

    from tests.core.test_vector_labels import polygons_in_wgs84

    sample, train, classify, suggest = (f"patchwork:{name}" for name in ("samplechips", "trainclassifier", "classify",
                                                                          "suggestlabels"))
    said = []
    shown = dock.show_message
    monkeypatch.setattr(dock, "show_message", lambda text, error=False: said.append(text) or shown(text, error))

    monkeypatch.setenv("HOME", str(tmp_path))  # the models trained here go to ~/Patchwork models
    monkeypatch.setattr(QMessageBox, "question", lambda *args: QMessageBox.StandardButton.Yes)  # replace the chips
    scene = QgsRasterLayer(naip_path, "naip")
    labels = QgsVectorLayer(polygons_in_wgs84(naip_path, str(tmp_path / "labels.gpkg")), "labels", "ogr")
    QgsProject.instance().addMapLayers([scene, labels])
    dock.sample.raster_combo.setLayer(scene)
    dock.sample.labels_combo.setLayer(labels)
    dock.sample.label_field.setField("landcover")  # text classes: water, crop, forest
    dock.sample.sampler_combo.setCurrentText("balanced")
    dock.sample.chip_size.setValue(32)
    dock.sample.count.setValue(20)
    dock.sample.chip_folder.setFilePath(str(tmp_path / "chips"))
    dock.train.form.set_value("PARAMETERS", '{"n_estimators": 20}')
    dock.classify.classify_raster.setLayer(scene)
    dock.classify.classified_file.setFilePath(str(tmp_path / "classes.tif"))
    dock.classify.uncertainty_file.setFilePath(str(tmp_path / "unsure.tif"))
    dock.sample.run_sample()
    run_through(dock, qgis_app, [sample])
    dock.train.button.click()
    run_through(dock, qgis_app, [train])
    dock.classify.run_classify()
    run_through(dock, qgis_app, [classify])
    dock.report.suggest_button.click()
    run_through(dock, qgis_app, [suggest])
    places = dock.run.layers[0]
    assert dock.report.label_places_button.isEnabled() and dock.report.retrain_button.isEnabled()
    dock.report.label_places_button.click()
    assert places.isEditable()
    label, predicted = places.fields().indexOf("label"), places.fields().indexOf("predicted_class")
    for number, feature in enumerate(places.getFeatures()):
        if number % 2 == 0:  # the analyst labels every other place, with the class it sees (here: the map's)
            places.changeAttributeValue(feature.id(), label, feature[predicted])
    assert places.commitChanges()
    labelled = sum(1 for f in places.getFeatures() if f["label"] is not None and f["label"] != NULL)
    before = labels.featureCount()
    first_model = dock.classify.model_file.filePath()
    dock.report.retrain_button.click()
    run_through(dock, qgis_app, [sample, train, classify])
    merged = dock.sample.labels_combo.currentLayer()
    assert merged is not labels and merged.featureCount() == before + labelled and labelled >= 20
    assert set(merged.uniqueValues(merged.fields().indexOf("landcover"))) <= {"water", "crop", "forest"}
    assert dock.classify.model_file.filePath() != first_model  # the new model classified the new map
    assert not dock.chain and dock.run.results["OUTPUT"] == str(tmp_path / "classes.tif")
    assert len(dock.accuracies) == 2  # each training's validation accuracy, the second said against the first
    assert any(text.endswith("Validation accuracy {:.3f} → {:.3f} (the model before).".format(*dock.accuracies))
               for text in said)


def test_the_train_tab_trains_a_network_and_classify_runs_it_with_its_own_input_scale(dock, tmp_path, qgis_app,
                                                                                       ortho_path, monkeypatch):
    """#25 in the panel: the Train tab's other kind, a segmentation network, from the Sample tab's chips; Classify
    takes the new model with the scale it was trained with (1/255 for 8-bit chips)."""
    pytest.importorskip("torch")
    from patchwork.core import classify

    monkeypatch.setenv("HOME", str(tmp_path))
    labels = QgsRasterLayer(classify(ortho_path, os.path.join(SHARED_DATA, "models",
                                                             "one_output_sigmoid_red_detector.onnx"),
                                     str(tmp_path / "red.tif"), bands=[1, 2, 3], scale=1 / 255).output, "red")
    scene = QgsRasterLayer(ortho_path, "ortho")
    QgsProject.instance().addMapLayers([scene, labels])
    dock.sample.raster_combo.setLayer(scene)
    dock.sample.labels_combo.setLayer(labels)
    dock.sample.sampler_combo.setCurrentText("regular")
    dock.sample.chip_size.setValue(64)
    dock.sample.step.setValue(64)
    dock.sample.chip_folder.setFilePath(str(tmp_path / "chips"))
    dock.sample.run_sample()
    run_through(dock, qgis_app, ["patchwork:samplechips"])
    assert dock.train.kind.count() == 2
    dock.train.kind.setCurrentIndex(1)
    assert dock.train.form.algorithm.id() == "patchwork:trainsegmentation"
    dock.train.form.set_value("EPOCHS", 2)
    dock.train.button.click()
    run_through(dock, qgis_app, ["patchwork:trainsegmentation"])
    assert dock.message.text().startswith("Network trained, validation accuracy")
    assert dock.classify.model_file.filePath().endswith(".onnx") and dock.accuracies
    assert dock.classify.scale.value() == pytest.approx(1 / 255, rel=1e-6)  # the model's own input scale
    dock.classify.classify_raster.setLayer(scene)
    dock.classify.classified_file.setFilePath(str(tmp_path / "classes.tif"))
    dock.classify.run_classify()
    run_through(dock, qgis_app, ["patchwork:classify"])
    classes = gdal.Open(str(tmp_path / "classes.tif")).ReadAsArray()
    assert (classes == gdal.Open(labels.source()).ReadAsArray()).mean() > 0.85
