"""Runs inside a real QGIS window (qgis.bin --code): drives the Patchwork panel and saves screenshots.

Started by scripts/screenshots.sh (`make screenshots`, and the GUI test). Environment:
PATCHWORK_SHOTS (folder for the PNGs), PATCHWORK_RESULT (JSON of what was checked),
PATCHWORK_SCENE (raster to use), PATCHWORK_WORK (scratch folder).
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
iface = qgis.utils.iface
result = {"steps": []}


def record_exception(kind, value, tb, msg=None, *args, **kwargs):
    """Instead of QGIS's modal Python-error dialog (which would block the session): record and go on."""
    result.setdefault("python_errors", []).append("".join(traceback.format_exception(kind, value, tb)))


qgis.utils.showException = record_exception


def save(name, widget=None):
    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, name)
    (widget or iface.mainWindow()).grab().save(path)
    result.setdefault("shots", []).append(path)


def panel():
    return iface.mainWindow().findChild(QDockWidget, "PatchworkDock")


def step_start():
    iface.mainWindow().resize(1500, 950)
    result["canvas_items_before"] = len(iface.mapCanvas().scene().items())
    qgis.utils.updateAvailablePlugins()  # QGIS started with --noplugins: let it find ours (QGIS_PLUGINPATH)
    qgis.utils.loadPlugin("patchwork")
    qgis.utils.startPlugin("patchwork")
    layer = iface.addRasterLayer(SCENE, "Sentinel-2 (B, G, R, NIR)")
    renderer = layer.renderer()
    renderer.setRedBand(3)
    renderer.setGreenBand(2)
    renderer.setBlueBand(1)
    layer.setDefaultContrastEnhancement()
    iface.setActiveLayer(layer)
    iface.zoomToActiveLayer()
    qgis.utils.plugins["patchwork"].action.setChecked(True)
    dock = panel()
    result["dock_visible"] = bool(dock and dock.isVisible())
    dock.raster_combo.setLayer(layer)
    dock.classify_raster.setLayer(layer)
    dock.sampler_combo.setCurrentText("poisson")
    dock.chip_size.setValue(24)
    dock.min_distance.setValue(30)
    dock.count.setValue(0)
    result["preview_chips"] = dock.preview_chips()
    result["steps"].append("sample preview")


def step_sample_shot():
    iface.mapCanvas().refreshAllLayers()
    save("patchwork_sample_preview.png")
    dock = panel()
    dock.tabs.setCurrentIndex(1)
    dock.chip_size.setValue(64)
    dock.draws.setValue(4)
    from patchwork.core.augment import load_pipeline

    dock.set_pipeline(load_pipeline("default"))
    result["augmented_samples"] = len(dock.preview_augmentation())
    result["footprints_after_tab_change"] = dock.footprints.count
    preview = dock.augmentation_preview.layers[0].extent()
    preview.scale(2.5)
    iface.mapCanvas().setExtent(preview)
    iface.mapCanvas().refreshAllLayers()
    result["steps"].append("augmentation preview")


def step_augment_shot():
    dock = panel()
    save("patchwork_augment_preview.png")
    dock.gallery.move(iface.mainWindow().x() + 80, iface.mainWindow().y() + 120)
    save("patchwork_augment_gallery.png", dock.gallery)
    dock.gallery.close()
    dock.augmentation_preview.clear()
    dock.preview_outline.clear()
    iface.zoomToActiveLayer()
    dock.tabs.setCurrentIndex(2)
    dock.scale.setValue(0.0001)
    dock.classified_file.setFilePath(os.path.join(WORK, "s2_classes.tif"))
    dock.run_classify()
    result["steps"].append("classify started")


def step_wait_classify(tries=[0]):  # noqa: B006 - a call counter on purpose
    dock = panel()
    tries[0] += 1
    if dock.run is not None and dock.run.running and tries[0] < 100:
        QTimer.singleShot(200, step_wait_classify)
        return
    result["classified_layers"] = [layer.name() for layer in dock.run.layers]
    layer = dock.run.layers[0] if dock.run.layers else None
    result["class_renderer"] = layer.renderer().type() if layer else None
    iface.mapCanvas().refreshAllLayers()
    QTimer.singleShot(1500, step_classify_shot)


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


def step_classify_shot():
    save("patchwork_classify.png")
    result["steps"].append("classified")
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
faulthandler.dump_traceback_later(90, exit=True, file=_hang_log)
guarded(step_start, 1000)
guarded(step_sample_shot, 3000)
guarded(step_augment_shot, 5000)
guarded(step_wait_classify, 6500)
