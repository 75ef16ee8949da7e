"""Runs inside a real QGIS window (qgis.bin --code): drives the Patchwork panel and saves screenshots.

Started by scripts/screenshots.sh (`make screenshots`, and the GUI test). Environment:
PATCHWORK_SHOTS (folder for the PNGs), PATCHWORK_RESULT (JSON of what was checked),
PATCHWORK_SCENE (raster to use), PATCHWORK_WORK (scratch folder), PATCHWORK_SCREEN (the screen, e.g. 1366x768).
"""
import json
import os
import traceback

import qgis.utils
from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import QEvent, QTimer
from qgis.PyQt.QtWidgets import QAction, QDockWidget

SHOTS = os.environ["PATCHWORK_SHOTS"]
RESULT = os.environ["PATCHWORK_RESULT"]
SCENE = os.environ["PATCHWORK_SCENE"]
WORK = os.environ["PATCHWORK_WORK"]
SCREEN = tuple(int(v) for v in os.environ.get("PATCHWORK_SCREEN", "1920x1080").split("x"))
iface = qgis.utils.iface
result = {"steps": []}


def record_exception(kind, value, tb, msg=None, *args, **kwargs):
    """Instead of QGIS's modal Python-error dialog (which would block the session): record and go on."""
    result.setdefault("python_errors", []).append("".join(traceback.format_exception(kind, value, tb)))


qgis.utils.showException = record_exception


def save(name, widget=None):
    """A dialog as it is; the main window as the screen shows it (what lies past the screen's edge is not seen)."""
    from qgis.PyQt.QtGui import QGuiApplication

    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, name)
    (widget.grab() if widget is not None else QGuiApplication.primaryScreen().grabWindow(0)).save(path)
    result.setdefault("shots", []).append(path)
    window = iface.mainWindow().frameGeometry()
    result.setdefault("window_sizes", {})[name] = [window.width(), window.height()]


def panel():
    return iface.mainWindow().findChild(QDockWidget, "PatchworkDock")


def settle(seconds=0.6):
    """Let QGIS run its event loop (the panel's 250 ms preview timer included)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.02)


def canvas_items():
    return len(iface.mapCanvas().scene().items())


def after_run(next_step, tries=None):
    """Call `next_step` once the panel's background run has finished (polled, so QGIS stays responsive)."""
    tries = tries or [0]
    dock = panel()
    tries[0] += 1
    if dock.run is not None and dock.run.running and tries[0] < 300:
        QTimer.singleShot(200, lambda: after_run(next_step, tries))
        return
    result.setdefault("messages", []).append(dock.message.text())  # what the panel said when the run ended
    guarded(next_step, 300)


def step_start():
    from patchwork.core import classify
    from patchwork.plugin.resources import resource_path

    iface.mainWindow().setGeometry(0, 0, *SCREEN)  # the whole screen, as a maximised window (Xvfb has no manager)
    result["canvas_items_before"] = canvas_items()
    qgis.utils.updateAvailablePlugins()  # QGIS started with --noplugins: let it find ours (QGIS_PLUGINPATH)
    qgis.utils.loadPlugin("patchwork")
    qgis.utils.startPlugin("patchwork")
    labels_path = os.path.join(WORK, "labels.tif")  # the rules' classes: what the panel's chain learns from
    classify(SCENE, resource_path("models", "ndvi_ndwi_rules.json"), labels_path, scale=1e-4)
    labels = iface.addRasterLayer(labels_path, "labels (rules)")
    layer = iface.addRasterLayer(SCENE, "Sentinel-2 (B, G, R, NIR)")  # loaded while the panel is closed
    renderer = layer.renderer()
    renderer.setRedBand(3)
    renderer.setGreenBand(2)
    renderer.setBlueBand(1)
    layer.setDefaultContrastEnhancement()
    iface.setActiveLayer(layer)
    iface.zoomToActiveLayer()
    settle()
    result["canvas_items_panel_closed"] = canvas_items() - result["canvas_items_before"]
    qgis.utils.plugins["patchwork"].action.setChecked(True)
    dock = panel()
    result["dock_visible"] = bool(dock and dock.isVisible())
    dock.sample.raster_combo.setLayer(layer)
    dock.sample.labels_combo.setLayer(labels)
    dock.classify.classify_raster.setLayer(layer)
    dock.sample.sampler_combo.setCurrentText("poisson")
    dock.sample.chip_size.setValue(24)
    dock.sample.min_distance.setValue(30)
    dock.sample.count.setValue(0)
    result["preview_chips"] = dock.sample.preview_chips()
    result["canvas_items_panel_open"] = canvas_items() - result["canvas_items_before"]
    result["steps"].append("sample preview")
    guarded(step_sample_shot, 1500)


def step_sample_shot():
    iface.mapCanvas().refreshAllLayers()
    save("patchwork_sample_preview.png")
    dock = panel()
    dock.sample.chip_folder.setFilePath(os.path.join(WORK, "chips"))
    dock.sample.run_sample()
    result["steps"].append("sample started")
    after_run(step_augment_preview)


def step_augment_preview():
    dock = panel()
    result["sample_layers"] = [layer.name() for layer in dock.run.layers]
    dock.tabs.setCurrentWidget(dock.augment)
    dock.sample.chip_size.setValue(64)
    dock.augment.draws.setValue(4)
    from patchwork.core import load_pipeline

    dock.augment.set_pipeline(load_pipeline("default"))
    result["augmented_samples"] = len(dock.augment.preview_augmentation())
    result["footprints_after_tab_change"] = dock.sample.footprints.count
    preview = dock.augment.augmentation_preview.layers[0].extent()
    preview.scale(2.5)
    iface.mapCanvas().setExtent(preview)
    iface.mapCanvas().refreshAllLayers()
    result["steps"].append("augmentation preview")
    guarded(step_augment_shot, 1500)


def step_augment_shot():
    dock = panel()
    save("patchwork_augment_preview.png")
    dock.augment.gallery.move(iface.mainWindow().x() + 80, iface.mainWindow().y() + 120)
    save("patchwork_augment_gallery.png", dock.augment.gallery)
    dock.augment.gallery.close()
    dock.augment.augmentation_preview.clear()
    iface.zoomToActiveLayer()
    from patchwork.core import load_pipeline

    dock.augment.set_pipeline(load_pipeline("geometric"))
    dock.augment.augment_folder.setFilePath(os.path.join(WORK, "augmented"))
    dock.augment.run_augment()
    result["steps"].append("augment started")
    after_run(step_train)


def step_train():
    dock = panel()
    result["augment_layers"] = [layer.name() for layer in dock.run.layers]
    dock.tabs.setCurrentWidget(dock.train)
    result["train_input_handed_on"] = bool(dock.train.form.values()["INPUT"])
    dock.train.form.set_value("PARAMETERS", '{"n_estimators": 30}')
    dock.train.form.set_value("OUTPUT_MODEL", os.path.join(WORK, "forest.onnx"))
    dock.train.button.click()
    result["steps"].append("train started")
    after_run(step_train_shot)


def step_train_shot():
    dock = panel()
    result["train_message"] = dock.message.text()
    result["model_in_classify"] = dock.classify.model_file.filePath()
    save("patchwork_train.png")
    dock.tabs.setCurrentWidget(dock.classify)
    dock.classify.classified_file.setFilePath(os.path.join(WORK, "s2_classes.tif"))
    dock.classify.run_classify()
    result["steps"].append("classify started")
    after_run(step_classify_shot)


def step_classify_shot():
    dock = panel()
    result["classified_layers"] = [layer.name() for layer in dock.run.layers]
    layer = dock.run.layers[0] if dock.run.layers else None
    result["class_renderer"] = layer.renderer().type() if layer else None
    for other in QgsProject.instance().mapLayersByName("labels (rules)"):  # the class map is what the shot shows
        QgsProject.instance().layerTreeRoot().findLayer(other.id()).setItemVisibilityChecked(False)
    iface.mapCanvas().refreshAllLayers()
    settle(1.5)
    save("patchwork_classify.png")
    dock.tabs.setCurrentWidget(dock.compare)
    dock.compare.form.set_value("REFERENCE", QgsProject.instance().mapLayersByName("labels (rules)")[0])
    dock.compare.button.click()
    result["steps"].append("compare started")
    after_run(step_compare_shot)


def step_compare_shot():
    dock = panel()
    result["compare_message"] = dock.message.text()
    result["compare_layers"] = [layer.name() for layer in dock.run.layers]
    iface.mapCanvas().refreshAllLayers()
    settle(1.5)
    save("patchwork_compare.png")
    dock.tabs.setCurrentWidget(dock.report)  # the classification was handed on to Report
    dock.report.sample_form.set_value("TARGET_SE", 0.02)
    dock.report.sample_form.set_value("OUTPUT", os.path.join(WORK, "accuracy_points.gpkg"))
    dock.report.sample_button.click()
    result["steps"].append("accuracy sample started")
    after_run(step_report_labelling)


def step_report_labelling():
    """The sample opened for labelling (its table, a drop-down of class names), labelled as an interpreter would
    (from the rules map; the forest learnt it so well that one point in ten is given the next class, for the report
    to show intervals), then assessed."""
    from osgeo import gdal
    from qgis.PyQt.QtWidgets import QApplication

    dock = panel()
    result["accuracy_points"] = [layer.name() for layer in dock.run.layers]
    points = dock.run.layers[0]
    iface.mapCanvas().refreshAllLayers()
    dock.report.label_button.click()
    settle(1.5)
    save("patchwork_report_labelling.png")
    truth = gdal.Open(QgsProject.instance().mapLayersByName("labels (rules)")[0].source())
    gt, classes = truth.GetGeoTransform(), truth.ReadAsArray()
    reference = points.fields().indexOf("reference")
    for feature in points.getFeatures():
        point = feature.geometry().asPoint()
        value = int(classes[int((point.y() - gt[3]) // gt[5]), int((point.x() - gt[0]) // gt[1])])
        points.changeAttributeValue(feature.id(), reference, (value + (feature["sample_id"] % 10 == 0)) % 3)
    result["labels_saved"] = points.commitChanges()
    for window in QApplication.topLevelWidgets():  # the attribute table, done with
        if window.metaObject().className() == "QgsAttributeTableDialog":
            window.close()
    dock.report.accuracy_form.set_value("OUTPUT_REPORT", os.path.join(WORK, "accuracy.html"))
    dock.report.accuracy_button.click()
    result["steps"].append("accuracy started")
    after_run(step_report_shot)


def step_report_shot():
    dock = panel()
    result["accuracy_message"] = dock.message.text()
    result["suggest_enabled_without_uncertainty"] = dock.report.suggest_button.isEnabled()
    iface.mapCanvas().refreshAllLayers()
    settle(1.5)
    save("patchwork_report.png")
    dock.tabs.setCurrentWidget(dock.stitch)
    settle()  # the tab laid out (grabbed at once, its form was still wider than the panel)
    save("patchwork_stitch.png")  # the screen: the run button, progress and status line in view
    dock.tabs.setCurrentWidget(dock.sample)  # footprints back on the map …
    settle()
    result["canvas_items_sample_tab_again"] = canvas_items() - result["canvas_items_before"]
    qgis.utils.plugins["patchwork"].action.setChecked(False)  # … and gone when the toolbar button closes the panel
    settle()
    result["canvas_items_after_close"] = canvas_items() - result["canvas_items_before"]
    result["steps"].append("compared")
    guarded(step_help_and_unload, 300)


def shoot_help_dialogs():
    """Each algorithm's dialog as the Toolbox opens it, with what its help panel shows."""
    import processing
    from qgis.PyQt.QtWidgets import QTextBrowser

    result["help"] = {}
    for algorithm in QgsApplication.processingRegistry().providerById("patchwork").algorithms():
        dialog = processing.createAlgorithmDialog(algorithm.id())
        dialog.resize(1100, 760)
        dialog.show()
        QgsApplication.processEvents()
        browser = dialog.findChild(QTextBrowser, "textShortHelp")
        result["help"][algorithm.name()] = browser.toPlainText() if browser else None
        save(f"patchwork_help_{algorithm.name()}.png", dialog)
        if algorithm.name() == "classify":
            shoot_advanced_parameters(dialog)
        dialog.close()
        dialog.deleteLater()


def shoot_advanced_parameters(dialog):
    """Classify's advanced group opened: workers, device, Dask scheduler, resume, output format."""
    from qgis.PyQt.QtWidgets import QCheckBox, QLabel, QScrollArea, QToolButton, QWidget

    # Found by class name: QGIS 3.22's dialog builds it in C++, and findChildren(QgsCollapsibleGroupBox) misses it.
    groups = [w for w in dialog.findChildren(QWidget) if w.metaObject().className() == "QgsCollapsibleGroupBox"]
    for group in groups:  # opened with its own button: the wrapper Python gets is a plain QWidget
        for button in group.findChildren(QToolButton):
            button.click()
    QgsApplication.processEvents()
    area = dialog.findChild(QScrollArea)
    if area and groups:
        area.ensureWidgetVisible(groups[0], 0, 0)
        area.verticalScrollBar().setValue(groups[0].y())
    QgsApplication.processEvents()
    result["classify_advanced"] = [label.text() for group in groups for kind in (QLabel, QCheckBox)
                                   for label in group.findChildren(kind) if label.isVisible()]
    save("patchwork_classify_scale_parameters.png", dialog)


def step_help_and_unload():
    shoot_help_dialogs()
    result["steps"].append("help dialogs")
    # Unload as Plugin Reloader does, twice, and check nothing is left behind.
    for _ in range(2):
        note("unloading")
        qgis.utils.unloadPlugin("patchwork")
        note("unloaded")
        QgsApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # let deleteLater() run
        window = iface.mainWindow()
        result.setdefault("after_unload", []).append({
            "docks": len(window.findChildren(QDockWidget, "PatchworkDock")),
            "actions": len(window.findChildren(QAction, "PatchworkPanelAction")),
            "provider": QgsApplication.processingRegistry().providerById("patchwork") is not None,
            "canvas_items": len(iface.mapCanvas().scene().items()),
            "preview_group": QgsProject.instance().layerTreeRoot().findGroup("Patchwork preview") is not None,
        })
        note("loading again")
        qgis.utils.loadPlugin("patchwork")
        qgis.utils.startPlugin("patchwork")
        note("loaded again")
    result["reloaded_provider"] = QgsApplication.processingRegistry().providerById("patchwork") is not None
    finish()


def note(step):
    """Record progress as it happens, so a session that hangs still says where."""
    result["steps"].append(step)
    with open(RESULT, "w") as fh:
        json.dump(result, fh, indent=2)


def finish(error=None):
    if error:
        result["error"] = error
    with open(RESULT, "w") as fh:
        json.dump(result, fh, indent=2)
    # Leave without QGIS's "save the project?" question: the session's work is done and recorded.
    QTimer.singleShot(100, lambda: os._exit(0))


def guarded(step, delay):
    def run():
        try:
            step()
        except Exception:  # noqa: BLE001 - any failure ends the session with its traceback recorded
            finish(traceback.format_exc())
    QTimer.singleShot(delay, run)


import faulthandler  # noqa: E402 - a hang dumps every thread's stack into the log, then ends the session

_hang_log = open(RESULT + ".hang.txt", "w")  # noqa: SIM115 - kept open for the whole session
faulthandler.dump_traceback_later(150, exit=True, file=_hang_log)
guarded(step_start, 1000)  # each step schedules the next
