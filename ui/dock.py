"""The Patchwork dock panel: Sample, Augment, Train, Classify, Compare and Stitch, with previews on the map canvas.

Every run goes through the same Processing algorithms as the toolbox and `qgis_process`, in a
background task with a progress bar and Cancel; outputs are added to the project styled.
"""
from __future__ import annotations

import json
import os

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.gui import QgsCollapsibleGroupBox, QgsDockWidget, QgsFieldComboBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import QCoreApplication, Qt, QTimer
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
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
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.data.augment import AUGMENTATIONS, Compose, load_pipeline, preset_names
from ..core.data.chips import MANIFEST
from ..core.data.sampling import sampler_from_name
from ..core.errors import PatchworkError
from ..core.tasks.sample_chips import class_sampled_windows
from ..plugin import qgis_enums
from ..plugin.algorithms.augment_chips import AugmentChipsAlgorithm as Augment
from ..plugin.algorithms.classify import ClassifyAlgorithm as Classify
from ..plugin.algorithms.compare import CompareAlgorithm as Compare
from ..plugin.algorithms.detect import DetectAlgorithm as Detect
from ..plugin.algorithms.recognize import RecognizeAlgorithm as Recognize
from ..plugin.algorithms.sample_chips import SampleChipsAlgorithm as Sample
from ..plugin.algorithms.stitch_chips import StitchChipsAlgorithm as Stitch
from ..plugin.algorithms.superresolve import SuperResolveAlgorithm as SuperResolve
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
from .runner import TEMPORARY, AlgorithmRun, announce, announce_failure, new_model_path, readable, temporary_output

SETTINGS_SCOPE = "Patchwork"


def tr(text: str) -> str:
    return QCoreApplication.translate("PatchworkDock", text)


def _spin(low: int, high: int, value: int, tip: str, suffix: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setSuffix(suffix)
    box.setToolTip(tip)
    return box


def _double(low: float, high: float, value: float, step: float, tip: str, decimals: int = 3) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setDecimals(decimals)
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setValue(value)
    box.setToolTip(tip)
    return box


def _combo(items, tip: str) -> QComboBox:
    box = QComboBox()
    box.addItems(list(items))
    box.setToolTip(tip)
    return box


# Fields of an algorithm's parameters: range, default, choices and tooltip come from its definition, never retyped.
INT_LIMIT = 2**31 - 1


def definition(algorithm, name: str):
    """The definition of parameter `name` of an algorithm class, as registered."""
    return QgsApplication.processingRegistry().algorithmById(algorithm.ID).parameterDefinition(name)


def tip_of(algorithm, name: str) -> str:
    return definition(algorithm, name).help()


def label_of(algorithm, name: str) -> QLabel:
    """The parameter's description as the field's label."""
    label = QLabel(definition(algorithm, name).description())
    label.setToolTip(tip_of(algorithm, name))
    label.setWordWrap(True)  # a long label wraps in a narrow panel instead of widening it
    return label


def form_layout() -> QFormLayout:
    """A form with each label above its field, as in QGIS's Processing dialogs (the panel is narrow)."""
    form = QFormLayout()
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)
    return form


def spin_for(algorithm, name: str, suffix: str = "", default_words: str | None = None) -> QSpinBox:
    """A whole-number field; with `default_words`, one below the lowest value means "not set" and says so."""
    d = definition(algorithm, name)
    low = int(max(d.minimum(), -INT_LIMIT))
    low = low - 1 if default_words else low
    box = _spin(low, int(min(d.maximum(), INT_LIMIT)), low if d.defaultValue() is None else int(d.defaultValue()),
                d.help(), suffix)
    if default_words:
        box.setSpecialValueText(default_words)
    return box


def double_for(algorithm, name: str, step: float, decimals: int = 3) -> QDoubleSpinBox:
    d = definition(algorithm, name)
    return _double(max(d.minimum(), -1e9), min(d.maximum(), 1e9), float(d.defaultValue()), step, d.help(), decimals)


def combo_for(algorithm, name: str) -> QComboBox:
    d = definition(algorithm, name)
    box = _combo(d.options(), d.help())
    box.setCurrentIndex(int(d.defaultValue() or 0))
    return box


class WrappedLabel(QLabel):
    """A word-wrapped label that always has the height of its lines at its width.

    In a QFormLayout of wrapped rows Qt 5 sizes such a label from its previous text (the model's description lost its
    last lines whenever it grew); the label asks for its height itself.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setWordWrap(True)

    def _fit(self) -> None:
        needed = self.heightForWidth(self.width())
        if needed > 0 and needed != self.minimumHeight():
            self.setMinimumHeight(needed)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt API name
        super().setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API name
        super().resizeEvent(event)
        self._fit()


def scrolled(content: QWidget, *pinned: QWidget) -> QWidget:
    """A tab: its form in a scroll area (so the panel fits a laptop screen) and `pinned` (the run button) below it,
    always in view."""
    page = QWidget()
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 0, 0, 0)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # the form follows the panel's width
    scroll.setWidget(content)
    layout.addWidget(scroll, 1)
    for widget in pinned:
        layout.addWidget(widget)
    return page


def advanced_group(tip: str) -> tuple[QgsCollapsibleGroupBox, QFormLayout]:
    """A collapsed "Advanced" group, as QGIS's Processing dialogs have, for settings most runs leave alone."""
    group = QgsCollapsibleGroupBox(tr("Advanced"))
    group.setToolTip(tip)
    form = form_layout()
    group.setLayout(form)
    group.setCollapsed(True)
    return group, form


CLASS_FIELD_WORDS = ("class", "label", "type", "category", "landcover", "land_cover", "lc", "code")


def default_class_field(layer: QgsVectorLayer) -> str:
    """The field most likely to hold label polygons' class: the categorized style's, else one named like a class,
    else the first that is not the layer's key (a GeoPackage's fid gives every polygon its own "class")."""
    names = layer.fields().names()
    renderer = layer.renderer()
    if renderer is not None and renderer.type() == "categorizedSymbol" and renderer.classAttribute() in names:
        return renderer.classAttribute()
    for word in CLASS_FIELD_WORDS:
        for name in names:
            if name.lower() == word or name.lower().startswith(word + "_") or name.lower().endswith("_" + word):
                return name
    keys = {names[i] for i in layer.primaryKeyAttributes()} | {"fid", "id", "ogc_fid", "objectid", "gid"}
    others = [name for name in names if name.lower() not in keys and name not in keys]
    return (others or names or [""])[0]


def unset(box: QSpinBox) -> bool:
    """True when a spin box made with `default_words` shows them (the parameter is left to its default)."""
    return box.value() == box.minimum() and bool(box.specialValueText())


def _file_source(layer) -> str | None:
    """The file behind a layer the core can read (GDAL/OGR file layers), else None."""
    if layer is None:
        return None
    return layer.source().split("|")[0] if layer.providerType() in ("gdal", "ogr") else None


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
        self.loaded_model_key = self.loaded_model_info = None  # the model's info, loaded once (chosen_model_info)
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
        self.classify_page = self._classify_tab()
        self.compare_page = self._compare_tab()
        self.stitch_page = self._stitch_tab()
        for page, title in ((self.sample_page, tr("Sample")), (self.augment_page, tr("Augment")),
                            (self.train_page, tr("Train")), (self.classify_page, tr("Classify")),
                            (self.compare_page, tr("Compare")), (self.stitch_page, tr("Stitch"))):
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
        self.chip_folder = QgsFileWidget()
        self.chip_folder.lineEdit().setPlaceholderText(tr("[Save to temporary folder]"))  # as QGIS's dialogs say
        self.chip_folder.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.chip_folder.setToolTip(tip_of(Sample, Sample.OUTPUT_DIR))
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
            return _file_source(layer) if layer else None
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
            self.classify_raster.setLayer(active)

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
        raster = _file_source(layer)
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
        raster = _file_source(self.raster_combo.currentLayer())
        if raster is None:
            self.show_message(tr("Choose a file raster first."), error=True)
            return
        folder = self.chip_folder.filePath() or temporary_output("chips")
        labels = self.labels_combo.currentLayer()
        polygons = isinstance(labels, QgsVectorLayer)
        parameters = {
            Sample.INPUT: raster, Sample.LABELS: labels if polygons else (_file_source(labels) if labels else None),
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
        self.preset_combo = _combo(preset_names(), tr("Start from a shipped pipeline"))
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
        self.draws = _spin(1, 12, 4, tr("How many augmented draws to preview"))
        self.preview_seed = _spin(0, 2**31 - 1, 1, tr("Seed of the first draw; Re-roll moves it on"))
        self.display_bands = QLineEdit()
        self.display_bands.setPlaceholderText(tr("the layer's, e.g. 3,2,1"))
        self.display_bands.setToolTip(tr("Bands shown as red, green, blue in the previews; empty: the bands the raster "
                                         "layer shows as red, green and blue"))
        self.copies = spin_for(Augment, Augment.COPIES)
        self.index_combo = QgsMapLayerComboBox()
        self.index_combo.setFilters(qgis_enums.POLYGON_LAYERS)
        self.index_combo.setToolTip(tip_of(Augment, Augment.INPUT))
        self.augment_folder = QgsFileWidget()
        self.augment_folder.lineEdit().setPlaceholderText(tr("[Save to temporary folder]"))  # as QGIS's dialogs say
        self.augment_folder.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.augment_folder.setToolTip(tip_of(Augment, Augment.OUTPUT_DIR))
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
        raster = _file_source(layer)
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
        index = _file_source(self.index_combo.currentLayer())
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

    # -- Classify -----------------------------------------------------------------------------

    def _classify_tab(self) -> QWidget:
        content, form = QWidget(), form_layout()
        content.setLayout(form)
        self.classify_advanced, advanced = advanced_group(tr("Tiles, blending, the output grid and small segments: "
                                                             "the model's own values unless you set them"))
        self.classify_raster = QgsMapLayerComboBox()
        self.classify_raster.setFilters(qgis_enums.RASTER_LAYERS)
        self.classify_raster.setToolTip(tip_of(Classify, Classify.INPUT))
        self.model_file = QgsFileWidget()
        self.model_file.setFilter(tr("Models (*.onnx *.skops *.json *.joblib *.pkl *.pickle)"))
        self.model_file.setFilePath(definition(Classify, Classify.MODEL).defaultValue())
        self.model_file.setToolTip(tip_of(Classify, Classify.MODEL))
        self.model_info = WrappedLabel()
        self.model_info.setToolTip(tr("What the model says about itself, and any problem found"))
        # The box says the short part; the reason is in its tooltip (a long box text would widen the narrow panel).
        self.trust_model = QCheckBox(definition(Classify, Classify.TRUST_MODEL).description().split(" (")[0])
        self.trust_model.setToolTip(tip_of(Classify, Classify.TRUST_MODEL))
        self.classify_bands = QLineEdit()
        self.classify_bands.setPlaceholderText(tr("all, or e.g. 1,2,3"))
        self.classify_bands.setToolTip(tip_of(Classify, Classify.BANDS))
        self.pick_bands_button = QPushButton(tr("Pick…"))
        self.pick_bands_button.setToolTip(tr("Choose the raster band for each of the model's inputs, by name"))
        self.pick_bands_button.clicked.connect(self.pick_bands)
        bands_row = QWidget()
        bands_layout = QHBoxLayout(bands_row)
        bands_layout.setContentsMargins(0, 0, 0, 0)
        bands_layout.addWidget(self.classify_bands, 1)
        bands_layout.addWidget(self.pick_bands_button)
        self.query_file = QgsFileWidget()  # what a recognition model looks for
        self.query_file.setToolTip(tip_of(Recognize, Recognize.QUERY))
        self.confidence = QLineEdit()  # a detector's own fields
        self.confidence.setPlaceholderText(tr("the model's"))
        self.confidence.setToolTip(tip_of(Detect, Detect.CONFIDENCE))
        self.iou = QLineEdit()
        self.iou.setPlaceholderText(tr("the model's"))
        self.iou.setToolTip(tip_of(Detect, Detect.IOU))
        self.classify_mask = QgsMapLayerComboBox()
        self.classify_mask.setFilters(qgis_enums.POLYGON_LAYERS)
        self.classify_mask.setAllowEmptyLayer(True)
        self.classify_mask.setLayer(None)
        self.classify_mask.setToolTip(tip_of(Classify, Classify.MASK))
        self.resolution = QLineEdit()
        self.resolution.setPlaceholderText(tr("the model's, else the raster's"))
        self.resolution.setToolTip(tip_of(Classify, Classify.RESOLUTION))
        self.output_grid = combo_for(Classify, Classify.OUTPUT_GRID)
        self.scale = double_for(Classify, Classify.SCALE, 0.1, 8)
        self.offset = double_for(Classify, Classify.OFFSET, 0.1, 6)
        # Left empty, these take the model's value: the field shows the words, not a number that means it.
        self.tile_size = spin_for(Classify, Classify.TILE_SIZE, " px", tr("the model's"))
        self.overlap = spin_for(Classify, Classify.OVERLAP, " px", tr("the model's"))
        self.window_combo = combo_for(Classify, Classify.WINDOW)
        self.aggregation_combo = combo_for(Classify, Classify.AGGREGATION)
        self.classified_file = QgsFileWidget()
        self.classified_file.lineEdit().setPlaceholderText(tr("[Save to temporary file]"))  # as QGIS's dialogs say
        self.classified_file.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.classified_file.setFilter(tr("GeoTIFF (*.tif)"))
        self.classified_file.setToolTip(tip_of(Classify, Classify.OUTPUT))
        self.min_segment = spin_for(Classify, Classify.MIN_SEGMENT, " px", tr("the model's"))
        self.polygons_file = QgsFileWidget()
        self.polygons_file.lineEdit().setPlaceholderText(tr("[Skip output]"))
        self.polygons_file.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.polygons_file.setFilter(tr("GeoPackage (*.gpkg)"))
        self.polygons_file.setToolTip(tip_of(Classify, Classify.OUTPUT_VECTOR))
        self.areas_file = QgsFileWidget()
        self.areas_file.lineEdit().setPlaceholderText(tr("[Skip output]"))
        self.areas_file.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.areas_file.setFilter(tr("CSV (*.csv)"))
        self.areas_file.setToolTip(tip_of(Classify, Classify.OUTPUT_AREAS))
        self.classify_button = QPushButton(tr("Classify"))
        self.classify_button.setToolTip(tr("Run Patchwork ▸ Classify raster (tiled)"))
        self.classify_button.clicked.connect(self.run_classify)
        # Each form's rows in order, (label, field): show_task_fields shows only the rows of the model's task
        self.task_forms: dict = {form: [], advanced: []}
        for name, widget in ((Classify.INPUT, self.classify_raster), (Classify.MODEL, self.model_file),
                             ("", self.model_info), ("", self.trust_model), (Classify.BANDS, bands_row),
                             (Recognize.QUERY, self.query_file), (Detect.CONFIDENCE, self.confidence),
                             (Detect.IOU, self.iou),
                             (Classify.MASK, self.classify_mask), (Classify.RESOLUTION, self.resolution),
                             (Classify.OUTPUT_GRID, self.output_grid),
                             (Classify.SCALE, self.scale), (Classify.OFFSET, self.offset),
                             (Classify.TILE_SIZE, self.tile_size), (Classify.OVERLAP, self.overlap),
                             (Classify.WINDOW, self.window_combo), (Classify.AGGREGATION, self.aggregation_combo),
                             (Classify.MIN_SEGMENT, self.min_segment), (Classify.OUTPUT, self.classified_file),
                             (Classify.OUTPUT_VECTOR, self.polygons_file), (Classify.OUTPUT_AREAS, self.areas_file)):
            algorithm = {self.query_file: Recognize, self.confidence: Detect, self.iou: Detect}.get(widget, Classify)
            rare = widget in (self.output_grid, self.tile_size, self.overlap, self.window_combo,
                              self.aggregation_combo, self.min_segment)
            in_form = advanced if rare else form
            in_form.addRow(label_of(algorithm, name) if name else "", widget)
            self.task_forms[in_form].append((in_form.labelForField(widget), widget))
        form.addRow(self.classify_advanced)
        self.task_forms[form].append((None, self.classify_advanced))
        self.model_file.fileChanged.connect(self._model_changed)
        self.trust_model.toggled.connect(self.check_model)
        self.classify_raster.layerChanged.connect(self.check_model)
        self.classify_bands.editingFinished.connect(self.check_model)
        self.check_model()
        return scrolled(content, self.classify_button)

    def band_list(self) -> list[int] | None:
        text = self.classify_bands.text().strip()
        return [int(b) for b in text.replace(";", ",").split(",") if b.strip()] if text else None

    def pick_bands(self, *_args) -> list[int] | None:
        """A band list per model input (named as the model names them), written into Bands; returns the bands."""
        from .band_picker import BandPickerDialog

        layer = self.classify_raster.currentLayer()
        try:
            info = self.chosen_model_info()
        except (PatchworkError, ValueError) as exc:
            self.show_message(str(exc), error=True)
            return None
        if layer is None or not info.n_bands:
            self.show_message(tr("Choose a raster and a model that says how many bands it takes first."), error=True)
            return None
        names = list(info.band_names or []) if len(info.band_names or []) == info.n_bands else [""] * info.n_bands
        try:
            current = self.band_list()
        except ValueError:
            current = None
        self.band_picker = BandPickerDialog(layer, names, current, self)
        if not self.band_picker.exec():
            return None
        bands = self.band_picker.bands()
        self.classify_bands.setText(",".join(map(str, bands)))
        self.check_model()
        return bands

    def _model_changed(self, *_args) -> None:
        """A new model brings its own input settings: the last model's SCALE, OFFSET and bands do not carry over
        (1/255 left from a Deepness model turned a 0–255 forest's map into one class)."""
        try:
            info = self.chosen_model_info()
        except (PatchworkError, ValueError):
            info = None
        if info is not None and not self.restoring:
            scale, offset = info.suggested_input()
            self.scale.setValue(scale)
            self.offset.setValue(offset)
            self.classify_bands.clear()
        self.check_model()

    def chosen_model_info(self):
        """What the chosen model says about itself, loaded once per file, trust and file version (every check of the
        tab asks: picking a model, a raster, bands, running)."""
        from ..core.models import load_model

        path, trust = self.model_file.filePath(), self.trust_model.isChecked()
        try:
            stat = os.stat(path)
            key = (path, trust, stat.st_mtime_ns, stat.st_size)
        except OSError:
            key = None  # load_model says what is wrong with the path
        if key is None or key != self.loaded_model_key:
            self.loaded_model_info = load_model(path, trust).info
            self.loaded_model_key = key
        return self.loaded_model_info

    def check_model(self, *_args) -> bool:
        """Load the model now and say what it is, or what is wrong with it, before any run."""
        try:
            info = self.chosen_model_info()
            layer = self.classify_raster.currentLayer()
            try:
                bands = self.band_list()
            except ValueError:
                raise PatchworkError(tr("Bands: '{}' is not a list of band numbers like 1,2,3.").format(
                    self.classify_bands.text())) from None
            missing = [b for b in bands or [] if layer is not None and not 1 <= b <= layer.bandCount()]
            if missing:
                raise PatchworkError(tr("Bands: '{}' has {} bands; there is no band {}.").format(
                    layer.name(), layer.bandCount(), ", ".join(map(str, missing))))
            count = len(bands) if bands else (layer.bandCount() if layer is not None else None)
            lines = [tr("{}: {}, {} inputs").format(info.name, info.task, info.n_bands or tr("any number of")),
                     tr("classes: {}").format(", ".join(info.class_names)) if info.class_names else "",
                     tr("tile {} px (fixed)").format(info.tile_size) if info.tile_size else
                     tr("tile: any size (default {} px)").format(info.default_tile_size)]
            if any(info.band_names or []):
                lines.append(tr("expects bands: {} (in this order; set Bands to the raster's bands that hold them)")
                             .format(", ".join(info.band_names)))
            expects = tr("; the model expects 0–1") if info.unit_range_input else ""
            lines.append(tr("input: raster values × {:g} + {:g}{}").format(self.scale.value(), self.offset.value(),
                                                                           expects))
            if info.task == "detection":
                lines.append(tr("a detector: Classify runs Detect objects and writes its boxes to the polygons file"))
            if info.task == "recognition":
                lines.append(tr("a recognition model: Classify runs Recognize, which maps the similarity to the "
                                "query image"))
            self.show_task_fields(info.task)
            if info.task == "superresolution":
                lines.append(tr("x{} super-resolution: Classify runs Super-resolve raster into the output file").format(
                    info.scale_factor))
            ok = not (info.n_bands and count and count != info.n_bands)
            if not ok:
                lines.append(tr("⚠ the model takes {} bands but would get {}: set Bands").format(info.n_bands, count))
            self.model_info.setText("\n".join(line for line in lines if line))
            self.model_info.setStyleSheet("" if ok else "color: #b00000")
            return ok
        except (PatchworkError, ValueError) as exc:
            self.model_info.setText(str(exc))
            self.model_info.setStyleSheet("color: #b00000")
            self.show_task_fields(None)
            return False

    # The Classify tab's rows each task hides (the rest it uses); a detector's and a recognition model's own rows are
    # hidden for the others.
    TASK_HIDES = {
        "classification": ("query_file", "confidence", "iou"),
        "regression": ("query_file", "confidence", "iou", "min_segment", "polygons_file", "areas_file"),
        "detection": ("query_file", "window_combo", "aggregation_combo", "min_segment", "areas_file",
                      "classified_file", "output_grid"),
        "recognition": ("confidence", "iou", "aggregation_combo", "min_segment", "polygons_file", "areas_file"),
        "superresolution": ("query_file", "confidence", "iou", "aggregation_combo", "min_segment", "polygons_file",
                            "areas_file", "classify_mask", "resolution", "output_grid", "tile_size"),
    }

    def show_task_fields(self, task: str | None) -> None:
        """Each model's task shows its own fields: a detector its score and overlap thresholds and no class-map
        settings, a recognition model its query image; with no model yet, the classification form."""
        hidden = {getattr(self, name) for name in self.TASK_HIDES.get(task or "classification", ())}
        if hidden == getattr(self, "_hidden_rows", None):
            return
        self._hidden_rows = hidden
        # Rows are taken out of the form, not only hidden: Qt 5's QFormLayout keeps the spacing of hidden rows,
        # which left a gap in the middle of the form.
        for form, rows in self.task_forms.items():
            while form.rowCount():
                form.takeRow(0)
            for label, widget in rows:
                shown = widget not in hidden
                widget.setVisible(shown)
                if label is not None:
                    label.setVisible(shown)
                if shown:
                    form.addRow(label, widget) if label is not None else form.addRow(widget)
            form.invalidate()

    def run_classify(self) -> None:
        raster = _file_source(self.classify_raster.currentLayer())
        if raster is None:
            self.show_message(tr("Choose a file raster first."), error=True)
            return
        task = self._model_task()
        if task == "detection":  # boxes, not a map: the same tab runs Detect objects
            self.run_detect(raster)
            return
        if task == "recognition":  # a similarity map to a query image: the same tab runs Recognize
            parameters = {Recognize.INPUT: raster, Recognize.MODEL: self.model_file.filePath(),
                          Recognize.QUERY: self.query_file.filePath(), Recognize.SCALE: self.scale.value(),
                          Recognize.OFFSET: self.offset.value(), Recognize.WINDOW: self.window_combo.currentIndex(),
                          Recognize.OUTPUT: self.classified_file.filePath() or TEMPORARY}
            if self.band_list():
                parameters[Recognize.BANDS] = ",".join(map(str, self.band_list()))
            for name, box in ((Recognize.TILE_SIZE, self.tile_size), (Recognize.OVERLAP, self.overlap)):
                if not unset(box):
                    parameters[name] = box.value()
            if self.classify_mask.currentLayer() is not None:
                parameters[Recognize.MASK] = self.classify_mask.currentLayer()
            if self.resolution.text().strip():
                parameters[Recognize.RESOLUTION] = self.resolution.text().replace(",", ".")
            self.start_run(Recognize.ID, parameters)
            return
        if task == "superresolution":  # a finer grid: the same tab runs Super-resolve raster
            parameters = {SuperResolve.INPUT: raster, SuperResolve.MODEL: self.model_file.filePath(),
                          SuperResolve.SCALE: self.scale.value(), SuperResolve.OFFSET: self.offset.value(),
                          SuperResolve.WINDOW: self.window_combo.currentIndex(),
                          SuperResolve.OUTPUT: self.classified_file.filePath() or TEMPORARY}
            if self.band_list():
                parameters[SuperResolve.BANDS] = ",".join(map(str, self.band_list()))
            if not unset(self.overlap):
                parameters[SuperResolve.OVERLAP] = self.overlap.value()
            self.start_run(SuperResolve.ID, parameters)
            return
        output = self.classified_file.filePath() or TEMPORARY
        parameters = {Classify.INPUT: raster, Classify.MODEL: self.model_file.filePath(),
                      Classify.SCALE: self.scale.value(), Classify.OFFSET: self.offset.value(),
                      Classify.WINDOW: self.window_combo.currentIndex(),
                      Classify.AGGREGATION: self.aggregation_combo.currentIndex(),
                      Classify.TRUST_MODEL: self.trust_model.isChecked(), Classify.OUTPUT: output}
        if self.band_list():
            parameters[Classify.BANDS] = ",".join(map(str, self.band_list()))
        if not unset(self.tile_size):
            parameters[Classify.TILE_SIZE] = self.tile_size.value()
        if not unset(self.overlap):
            parameters[Classify.OVERLAP] = self.overlap.value()
        if not unset(self.min_segment):
            parameters[Classify.MIN_SEGMENT] = self.min_segment.value()
        if self.classify_mask.currentLayer() is not None:
            parameters[Classify.MASK] = self.classify_mask.currentLayer()
        if self.resolution.text().strip():
            try:
                parameters[Classify.RESOLUTION] = float(self.resolution.text().replace(",", "."))
            except ValueError:
                self.show_message(tr("RESOLUTION: '{}' is not a number; leave it empty for the model's.").format(
                    self.resolution.text()), error=True)
                return
            parameters[Classify.OUTPUT_GRID] = self.output_grid.currentIndex()
        for name, widget in ((Classify.OUTPUT_VECTOR, self.polygons_file), (Classify.OUTPUT_AREAS, self.areas_file)):
            if widget.filePath():
                parameters[name] = widget.filePath()
        self.start_run(Classify.ID, parameters)

    def _model_task(self) -> str | None:
        try:
            return self.chosen_model_info().task
        except (PatchworkError, ValueError):
            return None  # the run itself says what is wrong

    def run_detect(self, raster: str) -> None:
        """The Classify tab's settings as a Detect objects run; the boxes go to the polygons file."""
        parameters = {Detect.INPUT: raster, Detect.MODEL: self.model_file.filePath(),
                      Detect.SCALE: self.scale.value(), Detect.OFFSET: self.offset.value(),
                      Detect.OUTPUT: self.polygons_file.filePath() or TEMPORARY}
        if self.band_list():
            parameters[Detect.BANDS] = ",".join(map(str, self.band_list()))
        for name, box in ((Detect.TILE_SIZE, self.tile_size), (Detect.OVERLAP, self.overlap)):
            if not unset(box):
                parameters[name] = box.value()
        for name, field in ((Detect.CONFIDENCE, self.confidence), (Detect.IOU, self.iou)):
            if field.text().strip():
                parameters[name] = field.text().strip().replace(",", ".")
        if self.classify_mask.currentLayer() is not None:
            parameters[Detect.MASK] = self.classify_mask.currentLayer()
        self.start_run(Detect.ID, parameters)

    # -- Stitch -------------------------------------------------------------------------------

    def _stitch_tab(self) -> QWidget:
        content, form = QWidget(), form_layout()
        content.setLayout(form)
        self.stitch_folder = QgsFileWidget()
        self.stitch_folder.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.stitch_folder.setToolTip(tip_of(Stitch, Stitch.INPUT))
        self.stitch_window = combo_for(Stitch, Stitch.WINDOW)
        self.stitch_aggregation = combo_for(Stitch, Stitch.AGGREGATION)
        self.n_classes = spin_for(Stitch, Stitch.N_CLASSES)
        self.reference = QgsMapLayerComboBox()
        self.reference.setFilters(qgis_enums.RASTER_LAYERS)
        self.reference.setAllowEmptyLayer(True)
        self.reference.setLayer(None)
        self.reference.setToolTip(tip_of(Stitch, Stitch.REFERENCE))
        self.mosaic_file = QgsFileWidget()
        self.mosaic_file.lineEdit().setPlaceholderText(tr("[Save to temporary file]"))  # as QGIS's dialogs say
        self.mosaic_file.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.mosaic_file.setFilter(tr("GeoTIFF (*.tif)"))
        self.mosaic_file.setToolTip(tip_of(Stitch, Stitch.OUTPUT))
        self.stitch_button = QPushButton(tr("Stitch chips"))
        self.stitch_button.setToolTip(tr("Run Patchwork ▸ Stitch chips"))
        self.stitch_button.clicked.connect(self.run_stitch)
        for name, widget in ((Stitch.INPUT, self.stitch_folder), (Stitch.WINDOW, self.stitch_window),
                             (Stitch.AGGREGATION, self.stitch_aggregation), (Stitch.N_CLASSES, self.n_classes),
                             (Stitch.REFERENCE, self.reference), (Stitch.OUTPUT, self.mosaic_file)):
            form.addRow(label_of(Stitch, name), widget)
        return scrolled(content, self.stitch_button)

    def run_stitch(self) -> None:
        folder, output = self.stitch_folder.filePath(), self.mosaic_file.filePath() or TEMPORARY
        if not folder:
            self.show_message(tr("Choose a chip folder first."), error=True)
            return
        parameters = {Stitch.INPUT: folder, Stitch.WINDOW: self.stitch_window.currentIndex(),
                      Stitch.AGGREGATION: self.stitch_aggregation.currentIndex(),
                      Stitch.N_CLASSES: self.n_classes.value(), Stitch.OUTPUT: output}
        reference = _file_source(self.reference.currentLayer())
        if reference:
            parameters[Stitch.REFERENCE] = reference
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
        report = results.get(Train.OUTPUT_REPORT) or results.get(Compare.OUTPUT_HTML)
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
        return [self.sample_button, self.augment_button, self.train_button, self.classify_button,
                self.compare_button, self.stitch_button]

    def set_run_buttons_enabled(self, enabled: bool) -> None:
        for button in self.run_buttons():
            button.setEnabled(enabled)

    def hand_on(self, algorithm_id: str, results: dict) -> None:
        """Each tab's output becomes the next tab's input: chips → Train, model → Classify, map → Compare."""
        if algorithm_id in (Sample.ID, Augment.ID):
            layer = next(iter(self.run.layers), None)
            if layer is not None:
                self.train_form.set_value(Train.INPUT, layer)
            if layer is not None and algorithm_id == Sample.ID:
                self.index_combo.setLayer(layer)  # and to Augment
        elif algorithm_id == Train.ID:
            self.model_file.setFilePath(results[Train.OUTPUT_MODEL])
            self.set_new_model_path()  # the next training keeps this one
        elif algorithm_id == Classify.ID and self.run.layers:
            self.compare_form.set_value(Compare.INPUT, self.run.layers[0])

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
                 "draws": self.draws, "copies": self.copies, "tile_size": self.tile_size, "overlap": self.overlap,
                 "n_classes": self.n_classes}
        doubles = {"jitter": self.jitter, "min_distance": self.min_distance, "max_nodata": self.max_nodata,
                   "scale": self.scale, "offset": self.offset}
        combos = {"sampler": self.sampler_combo, "boundary": self.boundary, "window": self.window_combo,
                  "aggregation": self.aggregation_combo}
        texts = {"model": (self.model_file.filePath, self.model_file.setFilePath),
                 "pipeline": (self.pipeline_edit.toPlainText, self.pipeline_edit.setPlainText),
                 "bands": (self.classify_bands.text, self.classify_bands.setText),
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
        self.restoring = True  # the remembered model comes with its remembered SCALE, OFFSET and bands
        try:
            for name, (_getter, setter) in self._settings().items():
                text, found = project.readEntry(SETTINGS_SCOPE, name, "")
                if found and text:
                    try:
                        setter(json.loads(text))
                    except (ValueError, TypeError):
                        continue
        finally:
            self.restoring = False

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
