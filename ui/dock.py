"""The Patchwork dock panel: Sample, Augment, Train, Classify, Compare, Report and Stitch, with map previews.

Every run goes through the same Processing algorithms as the toolbox and `qgis_process`, in a
background task with a progress bar and Cancel; outputs are added to the project styled.
"""
from __future__ import annotations

import json

from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..plugin.algorithms.accuracy import AccuracyAlgorithm as Accuracy
from ..plugin.algorithms.accuracy import AccuracySampleAlgorithm as AccuracySample
from ..plugin.algorithms.augment_chips import AugmentChipsAlgorithm as Augment
from ..plugin.algorithms.classify import ClassifyAlgorithm as Classify
from ..plugin.algorithms.compare import CompareAlgorithm as Compare
from ..plugin.algorithms.sample_chips import SampleChipsAlgorithm as Sample
from ..plugin.algorithms.stitch_chips import StitchChipsAlgorithm as Stitch
from ..plugin.algorithms.suggest_labels import SuggestLabelsAlgorithm as SuggestLabels
from ..plugin.algorithms.train_classifier import TrainClassifierAlgorithm as Train
from ..plugin.algorithms.train_segmentation import TrainSegmentationAlgorithm as TrainNetwork
from .runner import AlgorithmRun, announce, announce_failure, readable
from .tabs.augment import AugmentTab
from .tabs.classify import ClassifyTab
from .tabs.form_tab import FormTab, TrainTab
from .tabs.report import ReportTab
from .tabs.sample import SampleTab
from .widgets import tr

SETTINGS_SCOPE = "Patchwork"


class PatchworkDock(QgsDockWidget):
    """The shell: the tabs (each its own module, `tabs/`), the progress bar and Cancel of the one run at a time, the
    status line, each tab's output handed on to the next tab, and the settings kept per project."""

    def __init__(self, iface, parent=None) -> None:
        super().__init__(tr("Patchwork"), parent)
        self.setObjectName("PatchworkDock")
        self.iface = iface
        self.canvas = iface.mapCanvas()
        self.run: AlgorithmRun | None = None
        self.notice = None  # Patchwork's last message in QGIS's message bar
        self.widened = False  # widened to its tab titles once (widen_to_tabs)
        self.started = False  # set to the active raster layer once (start_on_the_active_layer)
        self.chain: list = []  # the runs still to start, one after the other (retrain_with), as the tabs' own actions
        self.accuracies: list[float] = []  # the validation accuracy of each model trained here, in order

        body = QWidget()
        layout = QVBoxLayout(body)
        self.tabs = QTabWidget()
        self.sample = SampleTab(self.canvas)
        self.augment = AugmentTab(self.canvas, lambda: (self.sample.raster_combo.currentLayer(),
                                                        self.sample.chip_size.value(), self.sample.seed.value()))
        self.train = TrainTab(self.canvas)
        self.classify = ClassifyTab()
        self.compare = FormTab(Compare.ID, self.canvas, tr("Compare"), tr("Run Patchwork ▸ Compare classifications"))
        self.report = ReportTab(self.canvas)
        self.report.labelling_requested.connect(self.start_labelling)
        self.report.retrain_requested.connect(self.retrain_with)
        self.stitch = FormTab(Stitch.ID, self.canvas, tr("Stitch chips"), tr("Run Patchwork ▸ Stitch chips"),
                              ((Stitch.INPUT, tr("Choose a chip folder first.")),))
        for page, title in ((self.sample, tr("Sample")), (self.augment, tr("Augment")), (self.train, tr("Train")),
                            (self.classify, tr("Classify")), (self.compare, tr("Compare")),
                            (self.report, tr("Report")), (self.stitch, tr("Stitch"))):
            page.run_requested.connect(self.start_run)
            page.message_shown.connect(self.show_message)
            self.tabs.addTab(page, title)
        layout.addWidget(self.tabs)
        self.tabs.currentChanged.connect(self._tab_changed)
        status = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setToolTip(tr("Progress of the current run"))
        self.cancel_button = QPushButton(tr("Cancel"))
        self.cancel_button.setToolTip(tr("Stop the current run; nothing it was writing is kept"))
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_run)
        status.addWidget(self.progress)
        status.addWidget(self.cancel_button)
        layout.addLayout(status)
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        self.setWidget(body)
        self.restore_settings()
        QgsProject.instance().readProject.connect(self.restore_settings)
        self.visibilityChanged.connect(self._visibility_changed)

    def _tab_changed(self, index: int) -> None:
        """Chip footprints belong to the Sample tab, the augmented chip's outline to Augment: each leaves the map
        with its tab (and with the panel) and the footprints come back with theirs. The status line and progress
        bar speak of the tab they were set on: they clear when another tab shows (not during a run)."""
        if self.run is None or not self.run.running:
            self.show_message("")
            self.progress.setValue(0)
        if self.tabs.widget(index) is not self.augment:
            self.augment.leave()
        if self.tabs.widget(index) is self.sample:
            self.sample.schedule_chip_preview()
        else:
            self.sample.leave()

    def _visibility_changed(self, visible: bool) -> None:
        """However the panel is closed (its toolbar button, menu entry, close box, a tabbed dock hidden behind
        another), its canvas items go; when it is shown again the Sample tab's footprints come back."""
        if visible:
            self.start_on_the_active_layer()
            self.sample.schedule_chip_preview()
            self.widen_to_tabs()
        else:
            self.sample.leave()
            self.augment.clear_previews()

    def start_on_the_active_layer(self) -> None:
        """Once, when first shown: the rasters to sample and classify are the active layer, not the first one."""
        if self.started:
            return
        self.started = True
        active = self.iface.activeLayer() if hasattr(self.iface, "activeLayer") else None
        if isinstance(active, QgsRasterLayer):
            self.sample.raster_combo.setLayer(active)
            self.classify.classify_raster.setLayer(active)

    def widen_to_tabs(self) -> None:
        """Once, when first shown docked: as wide as its seven tab titles (else the last ones hide behind arrows),
        never more than 40 % of the window (at 1366 px that is what the seven titles need)."""
        window = self.parentWidget()
        if self.widened or self.isFloating() or not isinstance(window, QMainWindow):
            return
        self.widened = True
        wanted = min(self.tabs.tabBar().sizeHint().width() + 32, int(window.width() * 0.40))
        if self.width() < wanted:
            window.resizeDocks([self], [wanted], Qt.Orientation.Horizontal)

    # -- runs, messages, settings, cleanup --------------------------------------------------------

    def start_run(self, algorithm_id: str, parameters: dict) -> AlgorithmRun | None:
        if self.run is not None and self.run.running:
            self.show_message(tr("A run is in progress; cancel it or wait."), error=True)
            return None
        self.save_settings()
        run = AlgorithmRun(algorithm_id, parameters)
        ok, message = run.check()  # the run's own checks, before anything starts: the same words as the Toolbox
        if not ok:
            self.report_failure(run, readable(message, run.algorithm), message)
            return None
        self.run = run
        self.run.progress.connect(lambda value: self.progress.setValue(int(value)))
        self.run.finished.connect(self._run_finished)
        self.progress.setValue(0)
        self.cancel_button.setEnabled(True)
        self.set_run_buttons_enabled(False)  # one run at a time: the buttons say so
        self.show_message(tr("Running {}…").format(self.run.algorithm.displayName()))
        self.run.start()
        return self.run

    def cancel_run(self) -> None:
        if self.run is not None:
            self.run.cancel()

    def _run_finished(self, ok: bool, results: dict, message: str) -> None:
        self.cancel_button.setEnabled(False)
        self.set_run_buttons_enabled(True)
        if not ok:
            self.chain.clear()  # a chain stops with its step
        if not ok and self.run.feedback.isCanceled():  # the user's own wish: said, not raised as a failure
            self.progress.setValue(0)
            self.show_message(message)
            self.set_notice(None)
            return
        if not ok:
            self.progress.setValue(0)
            self.report_failure(self.run, message or tr("The run failed; see the log."), self.run.feedback.textLog())
            return
        self.progress.setValue(100)
        self.hand_on(self.run.algorithm_id, results)
        summary = self.run.summary()
        if self.run.algorithm_id in (Train.ID, TrainNetwork.ID) and len(self.accuracies) > 1:
            summary += " " + tr("Validation accuracy {:.3f} → {:.3f} (the model before).").format(*self.accuracies[-2:])
        self.show_message(summary)
        if self.chain:
            QTimer.singleShot(0, self.next_in_chain)
        report = results.get(Train.OUTPUT_REPORT) or results.get(Compare.OUTPUT_HTML) or \
            results.get(Accuracy.OUTPUT_REPORT)
        layers = self.run.layers
        # After QGIS's own "Task complete" notice for the task, so that Patchwork's (its layer, its report) is on top.
        QTimer.singleShot(0, lambda: self.set_notice(announce(self.iface, summary, layers, report)))

    def report_failure(self, run: AlgorithmRun, text: str, details: str) -> None:
        """A failure in the status line and, at Critical level, in QGIS's message bar (the log behind Details)."""
        self.show_message(text, error=True)
        missing_package = "Install Python dependencies" in text  # core.dependencies' words for a missing package
        self.set_notice(announce_failure(self.iface, tr("{} failed: {}").format(run.algorithm.displayName(), text),
                                         details, self.open_installer if missing_package else None))

    def open_installer(self) -> None:
        """The installer of optional packages (the same as Raster ▸ Patchwork ▸ Install Python dependencies…)."""
        from .installer import InstallerDialog

        self.installer = InstallerDialog(self.iface.mainWindow() if hasattr(self.iface, "mainWindow") else None)
        self.installer.show()

    def set_notice(self, item) -> None:
        """Patchwork's message in QGIS's bar: the one of the last run only (an older "Done" must not resurface)."""
        if self.notice is not None:
            try:
                self.iface.messageBar().popWidget(self.notice)
            except RuntimeError:  # QGIS already deleted it (closed, or timed out)
                pass
        self.notice = item

    def run_buttons(self) -> list[QPushButton]:
        """Every button that starts a run."""
        return [self.sample.sample_button, self.augment.augment_button, self.train.button,
                self.classify.classify_button, self.compare.button, *self.report.run_buttons(), self.stitch.button]

    def set_run_buttons_enabled(self, enabled: bool) -> None:
        for button in self.run_buttons():
            button.setEnabled(enabled)
        self.report.allow_runs(enabled)  # (and its suggestion button, when there is an uncertainty map)

    def hand_on(self, algorithm_id: str, results: dict) -> None:
        """Each tab's output becomes the next tab's input: chips → Train, model → Classify, map → Compare and Report,
        accuracy sample → its labelling and assessment."""
        if algorithm_id in (Sample.ID, Augment.ID):
            layer = next(iter(self.run.layers), None)
            if layer is not None:
                self.train.set_chips(layer)
            if layer is not None and algorithm_id == Sample.ID:
                self.augment.index_combo.setLayer(layer)  # and to Augment
        elif algorithm_id in (Train.ID, TrainNetwork.ID):
            self.classify.model_file.setFilePath(results[Train.OUTPUT_MODEL])
            self.train.set_new_model_path()  # the next training keeps this one
            accuracy = results.get(Train.ACCURACY, results.get(TrainNetwork.VAL_ACCURACY))
            if accuracy is not None:
                self.accuracies.append(float(accuracy))
        elif algorithm_id == Classify.ID and self.run.layers:
            self.compare.form.set_value(Compare.INPUT, self.run.layers[0])
            self.report.set_map(self.run.layers[0])
            unsure = results.get(Classify.OUTPUT_UNCERTAINTY)
            self.report.set_uncertainty(unsure, results.get(Classify.OUTPUT))
        elif algorithm_id == AccuracySample.ID and self.run.layers:
            self.report.set_sample(self.run.layers[0], self.run.parameters.get(AccuracySample.INPUT))
        elif algorithm_id == Accuracy.ID:
            self.report.remember_assessment(results.get(Accuracy.OUTPUT_JSON))
        elif algorithm_id == SuggestLabels.ID and self.run.layers:
            self.report.set_suggestions(self.run.layers[0])

    def start_labelling(self, layer, how: str) -> None:
        """Points to label (an accuracy sample, suggested places), ready: the active layer, in editing, its table
        open (a drop-down of the class names in the field to fill); `how` says what to do."""
        if layer is None or not layer.isValid():
            self.show_message(tr("Draw the points first."), error=True)
            return
        self.iface.setActiveLayer(layer)
        if not layer.isEditable():
            layer.startEditing()
        self.iface.showAttributeTable(layer)
        self.show_message(how)

    def retrain_with(self, places) -> None:
        """Close the labelling loop: the places labelled join the Sample tab's label polygons in a new layer, and
        Sample, Train and Classify run again with their tabs' settings (and the assessment, when there was one)."""
        from osgeo import gdal

        from ..core.io.palette import legend
        from ..plugin.layers import labels_with_places
        from .runner import temporary_output

        labels, field = self.sample.labels_combo.currentLayer(), self.sample.label_field.currentField()
        if not isinstance(labels, QgsVectorLayer) or not field:
            self.show_message(tr("Retraining adds the labelled places to label polygons: choose them and their class "
                                 "field on the Sample tab (a label raster cannot take them)."), error=True)
            return
        if places is None or not places.isValid() or places.isEditable() and places.isModified():
            self.show_message(tr("Save the edits of the places first."), error=True)
            return
        classes = self.report.classes
        if not classes:
            self.show_message(tr("Classify with an uncertainty map first."), error=True)
            return
        class_map = gdal.Open(classes)
        names, _colours = legend(class_map.GetRasterBand(1))
        gt = class_map.GetGeoTransform()
        class_map = None
        path = temporary_output("labels.gpkg")
        added = labels_with_places(labels, field, places, "label", (gt[1], gt[5]), names, path,
                                   QgsProject.instance().transformContext())
        if not added:
            self.show_message(tr("No place has a class yet: fill 'label' in their table (Label the places)."),
                              error=True)
            return
        merged = QgsVectorLayer(f"{path}|layername=labels", tr("{} + {} labelled places").format(labels.name(), added))
        QgsProject.instance().addMapLayer(merged)
        self.sample.labels_combo.setLayer(merged)
        self.sample.label_field.setField(field)
        self.chain = [self.sample.run_sample, self.train.run, self.classify.run_classify]
        if self.report.assessed_before():
            self.chain.append(self.report.assess_new_map)
        self.next_in_chain()

    def next_in_chain(self) -> None:
        """Start the next run of the chain (as its tab's own button does), if any."""
        if self.chain and (self.run is None or not self.run.running):
            self.chain.pop(0)()
            if self.run is None or not self.run.running:  # the step refused to start (it said why)
                self.chain.clear()

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #b00000" if error else "")

    def _settings(self) -> dict:
        """Widgets whose values are kept per project: name → (getter, setter)."""
        sample, augment, classify = self.sample, self.augment, self.classify
        spins = {"chip_size": sample.chip_size, "step": sample.step, "count": sample.count, "seed": sample.seed,
                 "draws": augment.draws, "copies": augment.copies, "tile_size": classify.tile_size,
                 "overlap": classify.overlap}
        doubles = {"jitter": sample.jitter, "min_distance": sample.min_distance, "max_nodata": sample.max_nodata,
                   "scale": classify.scale, "offset": classify.offset}
        combos = {"sampler": sample.sampler_combo, "boundary": sample.boundary, "window": classify.window_combo,
                  "aggregation": classify.aggregation_combo}
        texts = {"model": (classify.model_file.filePath, classify.model_file.setFilePath),
                 "pipeline": (augment.pipeline_edit.toPlainText, augment.pipeline_edit.setPlainText),
                 "bands": (classify.classify_bands.text, classify.classify_bands.setText),
                 "chip_folder": (sample.chip_folder.filePath, sample.chip_folder.setFilePath)}
        settings = {name: (w.value, lambda v, w=w: w.setValue(int(v))) for name, w in spins.items()}
        settings.update({name: (w.value, lambda v, w=w: w.setValue(float(v))) for name, w in doubles.items()})
        settings.update({name: (w.currentIndex, lambda v, w=w: w.setCurrentIndex(int(v)))
                         for name, w in combos.items()})
        settings.update(texts)
        return settings

    def save_settings(self) -> None:
        project = QgsProject.instance()
        for name, (getter, _setter) in self._settings().items():
            project.writeEntry(SETTINGS_SCOPE, name, json.dumps(getter()))

    def restore_settings(self, *_args) -> None:
        project = QgsProject.instance()
        # the remembered model comes with its remembered SCALE, OFFSET and bands
        self.sample.restoring = self.classify.restoring = True
        try:
            for name, (_getter, setter) in self._settings().items():
                text, found = project.readEntry(SETTINGS_SCOPE, name, "")
                if found and text:
                    try:
                        setter(json.loads(text))
                    except (ValueError, TypeError):
                        continue
        finally:
            self.sample.restoring = self.classify.restoring = False

    def cleanup(self) -> None:
        """Everything the panel put on the canvas or in the project goes; a run in progress is cancelled."""
        self.cancel_run()
        self.sample.leave()
        self.augment.leave()
        self.augment.augmentation_preview.remove()
        try:
            QgsProject.instance().readProject.disconnect(self.restore_settings)
        except TypeError:
            pass
