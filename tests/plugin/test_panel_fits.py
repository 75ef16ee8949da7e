"""The panel on a laptop screen (#27, item 1): every tab's form scrolls, rare settings sit in collapsed groups, and
the run button, progress, Cancel and the status line stay in view at 1366×768."""
from __future__ import annotations

import os

import pytest
from qgis.core import QgsProject
from qgis.PyQt.QtCore import QPoint, Qt
from qgis.PyQt.QtWidgets import QMainWindow, QWidget


@pytest.fixture
def docked(qgis_app, qgis_iface, patchwork_provider):
    from patchwork.ui.dock import PatchworkDock

    window = QMainWindow()
    window.setCentralWidget(QWidget())
    panel = PatchworkDock(qgis_iface)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, panel)
    window.resize(1366, 768)
    window.show()
    qgis_app.processEvents()
    yield window, panel
    panel.cleanup()
    window.close()
    QgsProject.instance().removeAllMapLayers()


def in_view(widget, window) -> bool:
    """Shown, not clipped away, and inside the window's 1366×768."""
    if not widget.isVisible() or widget.visibleRegion().isEmpty():
        return False
    top_left = widget.mapTo(window, QPoint(0, 0))
    bottom = top_left.y() + widget.height()
    return top_left.y() >= 0 and bottom <= window.height()


def test_the_panel_needs_at_most_600_px_and_every_run_button_shows_at_1366x768(docked, qgis_app):
    window, panel = docked
    assert panel.minimumSizeHint().height() <= 600, panel.minimumSizeHint()
    assert window.height() <= 768  # the panel does not push the window past the screen
    buttons = [panel.sample.sample_button, panel.augment.augment_button, panel.train.button,
               panel.classify.classify_button, panel.compare.button, panel.report.accuracy_button, panel.stitch.button]
    assert panel.tabs.count() == len(buttons)
    for index, button in enumerate(buttons):
        panel.tabs.setCurrentIndex(index)
        qgis_app.processEvents()
        assert in_view(button, window), (index, button.text())
        for always in (panel.progress, panel.cancel_button, panel.message):
            panel.message.setText("a status line")
            assert in_view(always, window), (index, always)


def test_rare_settings_start_collapsed_and_the_model_info_is_never_clipped(docked, qgis_app, tmp_path):
    window, panel = docked
    assert panel.sample.sample_advanced.isCollapsed() and panel.classify.classify_advanced.isCollapsed()
    assert not panel.classify.tile_size.isVisible() and not panel.sample.aoi_combo.isVisible()
    panel.tabs.setCurrentIndex(3)
    long = "the model takes 3 bands but would get 4. " * 12
    panel.classify.model_info.setText(long)
    qgis_app.processEvents()
    info = panel.classify.model_info
    assert info.height() >= info.heightForWidth(info.width()) - 1  # every line of it, scrolled to when needed


def test_the_model_info_is_not_clipped_after_the_model_changes(docked, qgis_app, tmp_path):
    """Qt 5's form sized the description from its previous text: after a detector and back, its last lines were cut
    (121 px shown of 141)."""
    from tests.conftest import REPO
    from tests.onnx_models import cell_detector

    _, panel = docked
    panel.tabs.setCurrentIndex(3)
    info = panel.classify.model_info
    for model in (cell_detector(str(tmp_path / "cells.onnx"), "v8"),
                  os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")):
        panel.classify.model_file.setFilePath(model)
        qgis_app.processEvents()
        assert info.height() >= info.heightForWidth(info.width()) - 1
    for repeats in (12, 13, 3):
        info.setText("the model takes 3 bands but would get 4. " * repeats)
        qgis_app.processEvents()
        assert info.height() >= info.heightForWidth(info.width()) - 1, repeats
