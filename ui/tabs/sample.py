"""The Sample tab: a raster, its labels and a sampler, the candidate chips drawn on the map as settings change, and a
run of Sample chips."""
from __future__ import annotations

import os

from qgis.core import QgsProject, QgsVectorLayer
from qgis.gui import QgsFieldComboBox, QgsMapLayerComboBox
from qgis.PyQt.QtCore import QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import QCheckBox, QPushButton, QVBoxLayout, QWidget

from ...core.data.sampling import sampler_from_name
from ...core.errors import PatchworkError
from ...core.tasks.sample_chips import class_sampled_windows
from ...plugin import qgis_enums
from ...plugin.algorithms.sample_chips import SampleChipsAlgorithm as Sample
from ...plugin.layers import geometries_in_crs, location_sampler, raster_geotransform, vector_labels
from ..preview import MAX_PREVIEW_CHIPS, MAX_PREVIEW_LABEL_PIXELS, ChipFootprints, candidate_windows
from ..runner import temporary_output
from ..widgets import (
    advanced_group,
    combo_for,
    default_class_field,
    definition,
    double_for,
    file_source,
    form_layout,
    label_of,
    may_replace_dataset,
    output_for,
    scrolled,
    spin_for,
    tip_of,
    tr,
    unset,
)


class SampleTab(QWidget):
    """Signals the panel to run an algorithm (`run_requested`) and to show a message (`message_shown`)."""

    run_requested = pyqtSignal(str, dict)
    message_shown = pyqtSignal(str, bool)

    def __init__(self, canvas) -> None:
        super().__init__()
        self.restoring = False  # the panel is reading its settings back: COUNT keeps its remembered value
        self.footprints = ChipFootprints(canvas)
        self.preview_timer = QTimer(self)
        self.preview_timer.setSingleShot(True)
        self.preview_timer.setInterval(250)  # redraw once the user stops changing values
        self.preview_timer.timeout.connect(self.preview_chips)
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
        page = QVBoxLayout(self)
        page.setContentsMargins(0, 0, 0, 0)
        page.addWidget(scrolled(content, self.sample_button))

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
        if self.live_preview.isChecked() and self.isVisible():  # (a tab is visible when it is the panel's shown one)
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
        overwrite = may_replace_dataset(self, folder)
        if overwrite is None:
            return
        parameters[Sample.OVERWRITE] = overwrite
        self.run_requested.emit(Sample.ID, {k: v for k, v in parameters.items() if v is not None})

    def show_message(self, text: str, error: bool = False) -> None:
        """In the panel's status line."""
        self.message_shown.emit(text, error)

    def leave(self) -> None:
        """The tab is no longer seen (another tab, or the panel closed): its footprints leave the map."""
        self.preview_timer.stop()
        self.footprints.clear()
