"""The Patchwork dock panel: Sample, Augment, Train, Classify, Compare, Report and Stitch, with map previews.

Every run goes through the same Processing algorithms as the toolbox and `qgis_process`, in a
background task with a progress bar and Cancel; outputs are added to the project styled.
"""
from __future__ import annotations

import json
import os

from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.gui import QgsDockWidget, QgsFieldComboBox, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from .. import core
from ..core.data.augment import Compose, load_pipeline, preset_names
from ..core.data.chips import MANIFEST
from ..core.data.sampling import sampler_from_name
from ..core.errors import PatchworkError
from ..core.tasks.sample_chips import class_sampled_windows
from ..plugin import qgis_enums
from ..plugin.algorithms.accuracy import AccuracyAlgorithm as Accuracy
from ..plugin.algorithms.accuracy import AccuracySampleAlgorithm as AccuracySample
from ..plugin.algorithms.augment_chips import AugmentChipsAlgorithm as Augment
from ..plugin.algorithms.classify import ClassifyAlgorithm as Classify
from ..plugin.algorithms.compare import CompareAlgorithm as Compare
from ..plugin.algorithms.sample_chips import SampleChipsAlgorithm as Sample
from ..plugin.algorithms.stitch_chips import StitchChipsAlgorithm as Stitch
from ..plugin.algorithms.train_classifier import TrainClassifierAlgorithm as Train
from ..plugin.layers import geometries_in_crs, location_sampler, raster_geotransform, vector_labels
from ..plugin.resources import resource_path
from .forms import AlgorithmForm
from .preview import (
    MAX_PREVIEW_CHIPS,
    MAX_PREVIEW_LABEL_PIXELS,
    AugmentationPreview,
    ChipFootprints,
    candidate_windows,
    chip_at,
    read_sample,
    stretch_limits,
    thumbnail,
)
from .runner import AlgorithmRun, announce, announce_failure, new_model_path, readable, temporary_output
from .tabs.classify import ClassifyTab
from .tabs.report import ReportTab
from .widgets import (
    advanced_group,
    combo_box,
    combo_for,
    default_class_field,
    definition,
    double_for,
    file_source,
    form_layout,
    label_of,
    output_for,
    scrolled,
    spin_box,
    spin_for,
    tip_of,
    tr,
    unset,
)

SETTINGS_SCOPE = "Patchwork"


# The ops the Augment tab offers, in its list's order.
AUGMENTATIONS = (core.RandomFlip, core.RandomRotate90, core.RandomCrop, core.RandomShift, core.BrightnessJitter,
                 core.ContrastJitter, core.GaussianNoise, core.SpeckleNoise, core.BandDropout, core.BandJitter,
                 core.SunAngleJitter, core.AtmosphericHaze, core.SimulatedClouds, core.CutMix, core.MixUp, core.Compose)




class PatchworkDock(QgsDockWidget):
    def __init__(self, iface, parent=None) -> None:
        super().__init__(tr("Patchwork"), parent)
        self.setObjectName("PatchworkDock")
        self.iface = iface
        self.canvas = iface.mapCanvas()
        self.footprints = ChipFootprints(self.canvas)
        self.preview_outline = ChipFootprints(self.canvas, QColor(0, 200, 255))  # the chip being augmented
        self.augmentation_preview = AugmentationPreview()
        self.run: AlgorithmRun | None = None
        self.notice = None  # Patchwork's last message in QGIS's message bar
        self.widened = False  # widened to its tab titles once (widen_to_tabs)
        self.started = False  # set to the active raster layer once (start_on_the_active_layer)
        self.restoring = False  # settings being read back: a model chosen then keeps the remembered input settings
        self.preview_timer = QTimer(self)
        self.preview_timer.setSingleShot(True)
        self.preview_timer.setInterval(250)  # redraw once the user stops changing values
        self.preview_timer.timeout.connect(self.preview_chips)

        body = QWidget()
        layout = QVBoxLayout(body)
        self.tabs = QTabWidget()
        self.sample_page = self._sample_tab()
        self.augment_page = self._augment_tab()
        self.train_page = self._train_tab()
        self.classify = ClassifyTab()
        self.classify.run_requested.connect(self.start_run)
        self.classify.message_shown.connect(self.show_message)
        self.classify_page = self.classify
        self.compare_page = self._compare_tab()
        self.report = ReportTab(self.canvas)
        self.report.run_requested.connect(self.start_run)
        self.report.message_shown.connect(self.show_message)
        self.report.labelling_requested.connect(self.start_labelling)
        self.stitch_page = self._stitch_tab()
        for page, title in ((self.sample_page, tr("Sample")), (self.augment_page, tr("Augment")),
                            (self.train_page, tr("Train")), (self.classify_page, tr("Classify")),
                            (self.compare_page, tr("Compare")), (self.report, tr("Report")),
                            (self.stitch_page, tr("Stitch"))):
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

    # -- Sample -------------------------------------------------------------------------------

    def _sample_tab(self) -> QWidget:
        content, form = QWidget(), form_layout()
        content.setLayout(form)
        self.sample_advanced, advanced = advanced_group(tr("Where chips may lie, edges and nodata: most runs leave "
                                                           "these alone"))
        self.raster_combo = QgsMapLayerComboBox()
        self.raster_combo.setFilters(qgis_enums.RASTER_LAYERS)
        self.raster_combo.setToolTip(tip_of(Sample, Sample.INPUT))
        self.labels_combo = QgsMapLayerComboBox()  # a label raster, or label polygons with their class field
        self.labels_combo.setFilters(qgis_enums.layer_filters(qgis_enums.RASTER_LAYERS, qgis_enums.POLYGON_LAYERS))
        self.labels_combo.setAllowEmptyLayer(True)
        self.labels_combo.setLayer(None)
        self.labels_combo.setToolTip(tip_of(Sample, Sample.LABELS))
        self.label_field = QgsFieldComboBox()
        self.label_field.setToolTip(tip_of(Sample, Sample.LABEL_FIELD))
        self.all_touched = QCheckBox(definition(Sample, Sample.ALL_TOUCHED).description())
        self.all_touched.setToolTip(tip_of(Sample, Sample.ALL_TOUCHED))
        self.background = spin_for(Sample, Sample.BACKGROUND, default_words=tr("nodata"))
        self.aoi_combo = QgsMapLayerComboBox()
        self.aoi_combo.setFilters(qgis_enums.POLYGON_LAYERS)
        self.aoi_combo.setAllowEmptyLayer(True)
        self.aoi_combo.setLayer(None)
        self.aoi_combo.setToolTip(tip_of(Sample, Sample.AOI))
        self.sampler_combo = combo_for(Sample, Sample.SAMPLER)
        self.locations_combo = QgsMapLayerComboBox()
        self.locations_combo.setFilters(qgis_enums.layer_filters(qgis_enums.POINT_LAYERS, qgis_enums.LINE_LAYERS))
        self.locations_combo.setAllowEmptyLayer(True)
        self.locations_combo.setLayer(None)
        self.locations_combo.setToolTip(tip_of(Sample, Sample.LOCATIONS))
        self.spacing = double_for(Sample, Sample.SPACING, 8.0, 1)
        self.chip_size = spin_for(Sample, Sample.CHIP_SIZE, " px")
        self.step = spin_for(Sample, Sample.STEP, " px")
        self.jitter = double_for(Sample, Sample.JITTER, 0.05)
        self.min_distance = double_for(Sample, Sample.MIN_DISTANCE, 8.0, 1)
        self.count = spin_for(Sample, Sample.COUNT)
        self.seed = spin_for(Sample, Sample.SEED)
        self.boundary = combo_for(Sample, Sample.BOUNDARY)
        self.max_nodata = double_for(Sample, Sample.MAX_NODATA, 0.05, 2)
        self.chip_folder = output_for(Sample, Sample.OUTPUT_DIR, tr("[Save to temporary folder]"))  # as QGIS says
        self.live_preview = QCheckBox(tr("Show chips on the map as I change settings"))
        self.live_preview.setToolTip(tr("Draws the candidate chip footprints (before the nodata filter) on the canvas"))
        self.live_preview.setChecked(True)
        self.sample_button = QPushButton(tr("Sample chips"))
        self.sample_button.setToolTip(tr("Run Patchwork ▸ Sample chips with these settings"))
        self.sample_button.clicked.connect(self.run_sample)
        rare = (self.aoi_combo, self.background, self.boundary, self.max_nodata, self.seed)
        for name, widget in ((Sample.INPUT, self.raster_combo), (Sample.LABELS, self.labels_combo),
                             (Sample.LABEL_FIELD, self.label_field), (Sample.SAMPLER, self.sampler_combo),
                             (Sample.LOCATIONS, self.locations_combo), (Sample.SPACING, self.spacing),
                             (Sample.CHIP_SIZE, self.chip_size), (Sample.STEP, self.step), (Sample.JITTER, self.jitter),
                             (Sample.MIN_DISTANCE, self.min_distance), (Sample.COUNT, self.count),
                             (Sample.OUTPUT_DIR, self.chip_folder), (Sample.AOI, self.aoi_combo),
                             (Sample.BACKGROUND, self.background), (Sample.BOUNDARY, self.boundary),
                             (Sample.MAX_NODATA, self.max_nodata), (Sample.SEED, self.seed)):
            (advanced if widget in rare else form).addRow(label_of(Sample, name), widget)
            if widget is self.background:
                advanced.addRow(self.all_touched)
        form.addRow(self.sample_advanced)
        form.addRow(self.live_preview)
        self.sampler_combo.currentTextChanged.connect(self._sampler_changed)
        self._sampler_changed(self.sampler_combo.currentText())
        self.labels_combo.layerChanged.connect(self._labels_changed)
        for signal in (self.label_field.fieldChanged, self.sampler_combo.currentTextChanged,
                       self.chip_size.editingFinished):
            signal.connect(self._suggest_count)
        self.label_field.fieldChanged.connect(self._label_field_changed)  # (after: its warning is the one shown)
        self._labels_changed(None)
        for signal in (self.raster_combo.layerChanged, self.sampler_combo.currentIndexChanged,
                       self.labels_combo.layerChanged, self.label_field.fieldChanged, self.all_touched.toggled,
                       self.background.valueChanged,
                       self.locations_combo.layerChanged, self.spacing.valueChanged,
                       self.chip_size.valueChanged, self.step.valueChanged, self.jitter.valueChanged,
                       self.min_distance.valueChanged, self.count.valueChanged, self.seed.valueChanged,
                       self.boundary.currentIndexChanged, self.live_preview.toggled):
            signal.connect(self.schedule_chip_preview)
        return scrolled(content, self.sample_button)

    def _sampler_changed(self, name: str) -> None:
        """Only the settings the chosen sampler uses can be edited."""
        self.step.setEnabled(name in ("regular", "jittered"))
        self.jitter.setEnabled(name == "jittered")
        self.min_distance.setEnabled(name == "poisson")
        self.count.setEnabled(name in ("poisson", "random", "balanced", "stratified"))
        self.locations_combo.setEnabled(name in ("points", "lines"))
        self.spacing.setEnabled(name == "lines")

    def _labels_changed(self, layer) -> None:
        """Label polygons bring their class field and rasterising options; a label raster needs none."""
        polygons = isinstance(layer, QgsVectorLayer)
        self.label_field.setLayer(layer if polygons else None)
        if polygons:
            self.label_field.setField(default_class_field(layer))
        for widget in (self.label_field, self.all_touched, self.background):
            widget.setEnabled(polygons)

    def supported_chips_per_class(self) -> int | None:
        """How many chips per class the labelled area supports without piling them up (about 4 over each labelled
        pixel), for the smallest class of the label polygons; None without polygons, a raster or a class field."""
        layer, raster = self.labels_combo.currentLayer(), self.raster_combo.currentLayer()
        field = self.label_field.currentField()
        if not isinstance(layer, QgsVectorLayer) or raster is None or layer.fields().indexOf(field) < 0 \
                or layer.featureCount() > 50_000:  # (hand-drawn labels are few; a large layer is not read here)
            return None
        from qgis.core import QgsCoordinateTransform

        to_raster = QgsCoordinateTransform(layer.crs(), raster.crs(), QgsProject.instance())
        pixel = raster.rasterUnitsPerPixelX() * raster.rasterUnitsPerPixelY()
        areas: dict = {}
        for feature in layer.getFeatures():
            geometry = feature.geometry()
            if geometry.isEmpty() or feature[field] is None:
                continue
            geometry.transform(to_raster)
            areas[feature[field]] = areas.get(feature[field], 0.0) + geometry.area() / pixel
        if not areas:
            return None
        return max(1, int(4 * min(areas.values()) / self.chip_size.value() ** 2))

    def _suggest_count(self, *_args) -> None:
        """For the class samplers on label polygons, COUNT follows what the smallest class's area supports (at most
        100 a class): 100 chips on a small hand-drawn polygon are near-copies that leave nothing apart to validate."""
        if self.restoring or self.sampler_combo.currentText() not in ("balanced", "stratified"):
            return
        supported = self.supported_chips_per_class()
        if supported is not None:
            self.count.setValue(min(100, supported))
            self.show_message(tr("Chips per class set to {}: the smallest class's polygons hold room for about that "
                                 "many {} px chips without piling them up.").format(self.count.value(),
                                                                                   self.chip_size.value()))

    def _label_field_changed(self, field: str) -> None:
        """Say so when the class field gives every polygon its own class: an id, not a class, most likely."""
        layer = self.labels_combo.currentLayer()
        if not isinstance(layer, QgsVectorLayer) or not field or layer.fields().indexOf(field) < 0:
            return
        count = layer.featureCount()
        classes = len(layer.uniqueValues(layer.fields().indexOf(field)))
        if count > 2 and classes == count:
            self.show_message(tr("'{}' gives each of the {} polygons its own class: is it an id rather than the "
                                 "class? Pick the field that holds the class.").format(field, count), error=True)

    def sample_labels(self):
        """The labels as the sampler reads them: a label raster's path, VectorLabels, or None."""
        layer, raster = self.labels_combo.currentLayer(), self.raster_combo.currentLayer()
        if not isinstance(layer, QgsVectorLayer):
            return file_source(layer) if layer else None
        if not self.label_field.currentField():
            raise PatchworkError(tr("LABEL_FIELD: choose the field of '{}' that holds the classes.").format(
                layer.name()))
        return vector_labels(layer, self.label_field.currentField(), raster.crs(),
                             QgsProject.instance().transformContext(), self.all_touched.isChecked(),
                             None if unset(self.background) else self.background.value())

    def _tab_changed(self, index: int) -> None:
        """Chip footprints belong to the Sample tab, the augmented chip's outline to Augment: each leaves the map
        with its tab (and with the panel) and the footprints come back with theirs. The status line and progress
        bar speak of the tab they were set on: they clear when another tab shows (not during a run)."""
        if self.run is None or not self.run.running:
            self.show_message("")
            self.progress.setValue(0)
        if self.tabs.widget(index) is not self.augment_page:
            self.preview_outline.clear()
        if self.tabs.widget(index) is self.sample_page:
            self.schedule_chip_preview()
        else:
            self.preview_timer.stop()
            self.footprints.clear()

    def _visibility_changed(self, visible: bool) -> None:
        """However the panel is closed (its toolbar button, menu entry, close box, a tabbed dock hidden behind
        another), its canvas items go; when it is shown again the Sample tab's footprints come back."""
        if visible:
            self.start_on_the_active_layer()
            self.schedule_chip_preview()
            self.widen_to_tabs()
        else:
            self.preview_timer.stop()
            self.footprints.clear()
            self.preview_outline.clear()
            self.augmentation_preview.clear()  # the preview layers are the panel's, not the project's

    def start_on_the_active_layer(self) -> None:
        """Once, when first shown: the rasters to sample and classify are the active layer, not the first one."""
        if self.started:
            return
        self.started = True
        active = self.iface.activeLayer() if hasattr(self.iface, "activeLayer") else None
        if isinstance(active, QgsRasterLayer):
            self.raster_combo.setLayer(active)
            self.classify.classify_raster.setLayer(active)

    def widen_to_tabs(self) -> None:
        """Once, when first shown docked: as wide as its six tab titles (else the last ones hide behind arrows),
        never more than about a third of the window."""
        window = self.parentWidget()
        if self.widened or self.isFloating() or not isinstance(window, QMainWindow):
            return
        self.widened = True
        wanted = min(self.tabs.tabBar().sizeHint().width() + 32, int(window.width() * 0.36))
        if self.width() < wanted:
            window.resizeDocks([self], [wanted], Qt.Orientation.Horizontal)

    def sampler(self):
        name = self.sampler_combo.currentText()
        if name in ("points", "lines"):  # chips centred on the locations layer's features
            locations, raster = self.locations_combo.currentLayer(), self.raster_combo.currentLayer()
            if locations is None or raster is None:
                raise PatchworkError(tr("LOCATIONS: choose the layer of {} to centre chips on.").format(name))
            wkts, _crs, _values = geometries_in_crs(locations, raster.crs(), QgsProject.instance().transformContext())
            return location_sampler(name, wkts, raster_geotransform(raster), self.spacing.value(),
                                    (raster.height(), raster.width()))
        return sampler_from_name(name, step=self.step.value(), jitter=self.jitter.value(),
                                 min_distance=self.min_distance.value(), count=self.count.value(),
                                 seed=self.seed.value())

    def schedule_chip_preview(self, *_args) -> None:
        """Footprints are drawn only for a user who sees the panel on its Sample tab (a raster loaded while the
        panel is closed draws nothing)."""
        if self.live_preview.isChecked() and self.tabs.currentWidget() is self.sample_page and self.isVisible():
            self.preview_timer.start()
        else:
            self.footprints.clear()

    def preview_chips(self) -> int:
        """Draw the sampler's candidate chips on the canvas; returns how many."""
        layer = self.raster_combo.currentLayer()
        raster = file_source(layer)
        if raster is None:
            self.footprints.clear()
            return 0
        try:
            sampler = self.sampler()
            notes = []
            if getattr(sampler, "needs_labels", False):
                labels = self.sample_labels()
                if labels is None or layer.width() * layer.height() > MAX_PREVIEW_LABEL_PIXELS:
                    self.footprints.clear()
                    self.show_message(tr("The {} sampler chooses chips by the class of their centre pixel: {}").format(
                        self.sampler_combo.currentText(), tr("choose LABELS to see them.") if labels is None else
                        tr("the labels of a raster this large are read when the run starts (no preview).")))
                    return 0
                windows, notes = class_sampled_windows(raster, sampler, self.chip_size.value(),
                                                       self.boundary.currentText(), labels)
                windows = windows[:MAX_PREVIEW_CHIPS]
            else:
                windows = candidate_windows(raster, sampler, self.chip_size.value(), self.boundary.currentText())
        except PatchworkError as exc:
            self.footprints.clear()
            self.show_message(str(exc), error=True)
            return 0
        self.footprints.show(raster, windows, layer.crs())
        self.show_message(" ".join([tr("{} candidate chips shown (before the nodata filter)").format(len(windows)),
                                    *notes]))
        return len(windows)

    def run_sample(self) -> None:
        raster = file_source(self.raster_combo.currentLayer())
        if raster is None:
            self.show_message(tr("Choose a file raster first."), error=True)
            return
        folder = self.chip_folder.filePath() or temporary_output("chips")
        labels = self.labels_combo.currentLayer()
        polygons = isinstance(labels, QgsVectorLayer)
        parameters = {
            Sample.INPUT: raster, Sample.LABELS: labels if polygons else (file_source(labels) if labels else None),
            Sample.LABEL_FIELD: self.label_field.currentField() if polygons else None,
            Sample.ALL_TOUCHED: self.all_touched.isChecked() if polygons else None,
            Sample.BACKGROUND: self.background.value() if polygons and not unset(self.background) else None,
            Sample.AOI: self.aoi_combo.currentLayer(), Sample.SAMPLER: self.sampler_combo.currentIndex(),
            Sample.LOCATIONS: self.locations_combo.currentLayer(), Sample.SPACING: self.spacing.value(),
            Sample.CHIP_SIZE: self.chip_size.value(), Sample.STEP: self.step.value(),
            Sample.JITTER: self.jitter.value(), Sample.MIN_DISTANCE: self.min_distance.value(),
            Sample.COUNT: self.count.value(), Sample.SEED: self.seed.value(),
            Sample.BOUNDARY: self.boundary.currentIndex(), Sample.MAX_NODATA: self.max_nodata.value(),
            Sample.OUTPUT_DIR: folder, Sample.OUTPUT: os.path.join(folder, "index.gpkg"),
        }
        overwrite = self.may_replace_dataset(folder)
        if overwrite is None:
            return
        parameters[Sample.OVERWRITE] = overwrite
        self.start_run(Sample.ID, {k: v for k, v in parameters.items() if v is not None})

    def may_replace_dataset(self, folder: str) -> bool | None:
        """False for a new folder; True when the user agrees to replace the chip dataset in it; None: stop."""
        if not os.path.isfile(os.path.join(folder, MANIFEST)):
            return False
        answer = QMessageBox.question(
            self, tr("Replace the chip dataset?"),
            tr("'{}' already holds a chip dataset. Replace it as a whole with the new chips?").format(folder))
        return True if answer == QMessageBox.StandardButton.Yes else None

    # -- Augment ------------------------------------------------------------------------------

    def _augment_tab(self) -> QWidget:
        content = QWidget()
        layout = QVBoxLayout(content)
        presets = QHBoxLayout()
        self.preset_combo = combo_box(preset_names(), tr("Start from a shipped pipeline"))
        load_preset = QPushButton(tr("Use preset"))
        load_preset.setToolTip(tr("Replace the pipeline below with the chosen preset"))
        load_preset.clicked.connect(lambda: self.set_pipeline(load_pipeline(self.preset_combo.currentText())))
        presets.addWidget(self.preset_combo)
        presets.addWidget(load_preset)
        layout.addLayout(presets)
        self.op_list = QListWidget()
        self.op_list.setToolTip(tr("Double-click an op to add it to the pipeline with its default settings"))
        for op in AUGMENTATIONS:
            if op is not Compose:
                QListWidgetItem(op.__name__, self.op_list).setToolTip((op.__doc__ or "").strip().split("\n")[0])
        self.op_list.itemDoubleClicked.connect(self.add_op)
        self.op_list.setMaximumHeight(120)
        layout.addWidget(self.op_list)
        self.pipeline_edit = QPlainTextEdit()
        self.pipeline_edit.setToolTip(tr("The pipeline as JSON: edit the parameters of each op here"))
        self.pipeline_edit.setMinimumHeight(160)
        layout.addWidget(self.pipeline_edit)
        files = QHBoxLayout()
        for text, tip, slot in ((tr("Load…"), tr("Load a pipeline from a .json file"), self.load_pipeline_file),
                                (tr("Save…"), tr("Save this pipeline as a .json file"), self.save_pipeline_file)):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            files.addWidget(button)
        layout.addLayout(files)
        form = form_layout()
        self.draws = spin_box(1, 12, 4, tr("How many augmented draws to preview"))
        self.preview_seed = spin_box(0, 2**31 - 1, 1, tr("Seed of the first draw; Re-roll moves it on"))
        self.display_bands = QLineEdit()
        self.display_bands.setPlaceholderText(tr("the layer's, e.g. 3,2,1"))
        self.display_bands.setToolTip(tr("Bands shown as red, green, blue in the previews; empty: the bands the raster "
                                         "layer shows as red, green and blue"))
        self.copies = spin_for(Augment, Augment.COPIES)
        self.index_combo = QgsMapLayerComboBox()
        self.index_combo.setFilters(qgis_enums.POLYGON_LAYERS)
        self.index_combo.setToolTip(tip_of(Augment, Augment.INPUT))
        self.augment_folder = output_for(Augment, Augment.OUTPUT_DIR, tr("[Save to temporary folder]"))
        for label, widget in ((tr("Preview draws"), self.draws), (tr("Preview seed"), self.preview_seed),
                              (tr("Display bands"), self.display_bands),  # the preview's own settings
                              (label_of(Augment, Augment.INPUT), self.index_combo),
                              (label_of(Augment, Augment.COPIES), self.copies),
                              (label_of(Augment, Augment.OUTPUT_DIR), self.augment_folder)):
            form.addRow(label, widget)
        layout.addLayout(form)
        buttons = QHBoxLayout()
        self.preview_button = QPushButton(tr("Preview augmentation"))
        self.preview_button.setToolTip(tr("Augment the chip at the centre of the map view and show the draws on the "
                                          "map and in a gallery"))
        self.preview_button.clicked.connect(self.preview_augmentation)
        reroll = QPushButton(tr("Re-roll"))
        reroll.setToolTip(tr("New draws: move the preview seed on and preview again"))
        reroll.clicked.connect(self.reroll)
        self.augment_button = QPushButton(tr("Augment chips"))
        self.augment_button.setToolTip(tr("Run Patchwork ▸ Augment chips on the chip index"))
        self.augment_button.clicked.connect(self.run_augment)
        for button in (self.preview_button, reroll, self.augment_button):
            buttons.addWidget(button)
        pinned = QWidget()
        pinned.setLayout(buttons)
        self.set_pipeline(load_pipeline("default"))
        return scrolled(content, pinned)

    def set_pipeline(self, pipeline) -> None:
        self.pipeline_edit.setPlainText(json.dumps(pipeline.to_config(), indent=2))

    def pipeline(self):
        return load_pipeline(self.pipeline_edit.toPlainText())

    def add_op(self, item) -> None:
        try:
            pipeline = self.pipeline()
        except PatchworkError:
            pipeline = Compose([])
        op = {cls.__name__: cls for cls in AUGMENTATIONS}[item.text()]()
        ops = pipeline.ops if isinstance(pipeline, Compose) else [pipeline]
        self.set_pipeline(Compose(ops + [op]))

    def load_pipeline_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, tr("Load pipeline"), resource_path("augmentations"),
                                              tr("JSON (*.json)"))
        if path:
            self.guarded(lambda: self.set_pipeline(load_pipeline(path)))

    def save_pipeline_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, tr("Save pipeline"), "", tr("JSON (*.json)"))
        if path:
            self.guarded(lambda: open(path, "w", encoding="utf-8").write(json.dumps(self.pipeline().to_config(),
                                                                                     indent=2)))

    def bands_for_display(self, count: int, layer=None) -> tuple[int, int, int]:
        """The bands typed in Display bands, else those the layer's renderer shows as red, green and blue (a NAIP
        layer's 1,2,3 is not false colour), else 1,2,3 (one band: grey)."""
        try:
            bands = tuple(int(b) for b in self.display_bands.text().split(",")) if self.display_bands.text() else ()
        except ValueError:
            bands = ()
        renderer = layer.renderer() if layer is not None else None
        if len(bands) != 3 and renderer is not None and hasattr(renderer, "redBand"):
            bands = (renderer.redBand(), renderer.greenBand(), renderer.blueBand())
        if len(bands) != 3 or not all(1 <= b <= count for b in bands):
            bands = (1, 2, 3) if count >= 3 else (1, 1, 1)
        return bands

    def preview_augmentation(self) -> list:
        """Augment the chip under the map centre; returns the samples shown (original first)."""
        layer = self.raster_combo.currentLayer()
        raster = file_source(layer)
        if raster is None:
            self.show_message(tr("Choose a raster on the Sample tab first."), error=True)
            return []

        def show():
            pipeline = self.pipeline()
            if getattr(pipeline, "needs_pool", False):
                raise PatchworkError(tr("The preview has no donor chips: remove CutMix and MixUp to preview."))
            window = chip_at(raster, self.canvas, layer.crs(), self.chip_size.value())
            original = read_sample(raster, window)  # refuses a raster without CRS before anything is drawn
            self.preview_outline.show(raster, [window], layer.crs())
            bands = self.bands_for_display(original.image.shape[0], layer)
            samples = self.augmentation_preview.show(original, pipeline, self.draws.value(),
                                                     self.preview_seed.value(), bands)
            self.gallery = GalleryDialog(samples, bands, self.preview_seed.value(), self)
            self.gallery.finished.connect(lambda _result: self.augmentation_preview.clear())  # its layers go with it
            self.gallery.show()
            self.show_message(tr("{} draws of the chip at rows {}–{}, columns {}–{}").format(
                len(samples) - 1, window.row_off, window.row_end, window.col_off, window.col_end))
            return samples

        return self.guarded(show) or []

    def reroll(self) -> None:
        self.preview_seed.setValue(self.preview_seed.value() + self.draws.value())
        self.preview_augmentation()

    def run_augment(self) -> None:
        self.augmentation_preview.clear()  # the run's chips replace the preview's
        index = file_source(self.index_combo.currentLayer())
        if index is None:
            self.show_message(tr("Choose a chip index first."), error=True)
            return
        folder = self.augment_folder.filePath() or temporary_output("augmented_chips")
        overwrite = self.may_replace_dataset(folder)
        if overwrite is None:
            return
        self.start_run(Augment.ID, {
            Augment.INPUT: index, Augment.PIPELINE: self.pipeline_edit.toPlainText(),
            Augment.COPIES: self.copies.value(), Augment.SEED: self.seed.value(), Augment.OUTPUT_DIR: folder,
            Augment.OUTPUT: os.path.join(folder, "index.gpkg"), Augment.OVERWRITE: overwrite})

    # -- Train and Compare: QGIS's own widgets from the algorithms' definitions -----------------

    def _train_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        self.train_form = AlgorithmForm(Train.ID, self.canvas)
        self.set_new_model_path()  # kept: a model is not a temporary file, nor is its report
        self.train_button = QPushButton(tr("Train"))
        self.train_button.setToolTip(tr("Run Patchwork ▸ Train pixel classifier; the model then appears in Classify"))
        self.train_button.clicked.connect(lambda: self.start_run(Train.ID, self.train_form.values()))
        layout.addWidget(self.train_form)
        layout.addStretch()
        return scrolled(tab, self.train_button)

    def set_new_model_path(self) -> None:
        """A new model's file, and its training report beside it (a temporary report was lost with the session)."""
        model = new_model_path()
        self.train_form.set_value(Train.OUTPUT_MODEL, model)
        self.train_form.set_value(Train.OUTPUT_REPORT, os.path.splitext(model)[0] + "_report.html")

    def _compare_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        self.compare_form = AlgorithmForm(Compare.ID, self.canvas)
        self.compare_button = QPushButton(tr("Compare"))
        self.compare_button.setToolTip(tr("Run Patchwork ▸ Compare classifications"))
        self.compare_button.clicked.connect(lambda: self.start_run(Compare.ID, self.compare_form.values()))
        layout.addWidget(self.compare_form)
        layout.addStretch()
        return scrolled(tab, self.compare_button)

    # -- Stitch -------------------------------------------------------------------------------

    def _stitch_tab(self) -> QWidget:
        """Stitch chips: QGIS's own widgets from the algorithm's definitions, like Train and Compare."""
        tab = QWidget()
        layout = QVBoxLayout(tab)
        self.stitch_form = AlgorithmForm(Stitch.ID, self.canvas)
        self.stitch_button = QPushButton(tr("Stitch chips"))
        self.stitch_button.setToolTip(tr("Run Patchwork ▸ Stitch chips"))
        self.stitch_button.clicked.connect(self.run_stitch)
        layout.addWidget(self.stitch_form)
        layout.addStretch()
        return scrolled(tab, self.stitch_button)

    def run_stitch(self) -> None:
        parameters = self.stitch_form.values()
        if not parameters.get(Stitch.INPUT):
            self.show_message(tr("Choose a chip folder first."), error=True)
            return
        self.start_run(Stitch.ID, parameters)

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
        summary = self.run.summary()
        self.show_message(summary)
        self.hand_on(self.run.algorithm_id, results)
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
        return [self.sample_button, self.augment_button, self.train_button, self.classify.classify_button,
                self.compare_button, *self.report.run_buttons(), self.stitch_button]

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
                self.train_form.set_value(Train.INPUT, layer)
            if layer is not None and algorithm_id == Sample.ID:
                self.index_combo.setLayer(layer)  # and to Augment
        elif algorithm_id == Train.ID:
            self.classify.model_file.setFilePath(results[Train.OUTPUT_MODEL])
            self.set_new_model_path()  # the next training keeps this one
        elif algorithm_id == Classify.ID and self.run.layers:
            self.compare_form.set_value(Compare.INPUT, self.run.layers[0])
            self.report.set_map(self.run.layers[0])
            unsure = results.get(Classify.OUTPUT_UNCERTAINTY)
            self.report.set_uncertainty(unsure, results.get(Classify.OUTPUT))
        elif algorithm_id == AccuracySample.ID and self.run.layers:
            self.report.set_sample(self.run.layers[0], self.run.parameters.get(AccuracySample.INPUT))
        elif algorithm_id == Accuracy.ID:
            self.report.remember_assessment(results.get(Accuracy.OUTPUT_JSON))

    def start_labelling(self, layer) -> None:
        """The accuracy sample, ready to label: the active layer, in editing, its table open (a drop-down of the
        class names in 'reference')."""
        if layer is None or not layer.isValid():
            self.show_message(tr("Draw the points first (step 1)."), error=True)
            return
        self.iface.setActiveLayer(layer)
        if not layer.isEditable():
            layer.startEditing()
        self.iface.showAttributeTable(layer)
        self.show_message(tr("Label each point's 'reference', save the edits, then assess (step 3)."))

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #b00000" if error else "")

    def guarded(self, action):
        """Run `action`, showing a Patchwork error in the panel instead of raising it."""
        try:
            return action()
        except (PatchworkError, OSError) as exc:
            self.show_message(str(exc), error=True)
            return None

    def _settings(self) -> dict:
        """Widgets whose values are kept per project: name → (getter, setter)."""
        spins = {"chip_size": self.chip_size, "step": self.step, "count": self.count, "seed": self.seed,
                 "draws": self.draws, "copies": self.copies, "tile_size": self.classify.tile_size,
                 "overlap": self.classify.overlap}
        doubles = {"jitter": self.jitter, "min_distance": self.min_distance, "max_nodata": self.max_nodata,
                   "scale": self.classify.scale, "offset": self.classify.offset}
        combos = {"sampler": self.sampler_combo, "boundary": self.boundary, "window": self.classify.window_combo,
                  "aggregation": self.classify.aggregation_combo}
        texts = {"model": (self.classify.model_file.filePath, self.classify.model_file.setFilePath),
                 "pipeline": (self.pipeline_edit.toPlainText, self.pipeline_edit.setPlainText),
                 "bands": (self.classify.classify_bands.text, self.classify.classify_bands.setText),
                 "chip_folder": (self.chip_folder.filePath, self.chip_folder.setFilePath)}
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
        self.restoring = self.classify.restoring = True
        try:
            for name, (_getter, setter) in self._settings().items():
                text, found = project.readEntry(SETTINGS_SCOPE, name, "")
                if found and text:
                    try:
                        setter(json.loads(text))
                    except (ValueError, TypeError):
                        continue
        finally:
            self.restoring = self.classify.restoring = False

    def cleanup(self) -> None:
        """Everything the panel put on the canvas or in the project goes; a run in progress is cancelled."""
        self.preview_timer.stop()
        self.cancel_run()
        self.footprints.clear()
        self.preview_outline.clear()
        self.augmentation_preview.remove()
        try:
            QgsProject.instance().readProject.disconnect(self.restore_settings)
        except TypeError:
            pass



class GalleryDialog(QDialog):
    """Thumbnails of the original chip and its augmented draws, side by side."""

    def __init__(self, samples: list, bands: tuple[int, int, int], seed: int, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("PatchworkGallery")
        self.setWindowTitle(tr("Augmentation preview"))
        limits = stretch_limits(samples, bands)
        grid = QGridLayout(self)
        for i, sample in enumerate(samples):
            picture = QLabel()
            picture.setPixmap(thumbnail(sample, bands, limits))
            picture.setToolTip(tr("original chip") if i == 0 else tr("draw {} (seed {})").format(i, seed + i - 1))
            caption = QLabel(tr("original") if i == 0 else tr("draw {}").format(i))
            row, col = 2 * (i // 4), i % 4  # four per row, caption under each picture
            grid.addWidget(picture, row, col)
            grid.addWidget(caption, row + 1, col)
