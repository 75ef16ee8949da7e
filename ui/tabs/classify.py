"""The Classify tab: a raster and a model, the model's own fields (a detector's thresholds, a recognition model's
query), and a run of Classify, Detect, Super-resolve or Recognize for it."""
from __future__ import annotations

import os

from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...core.errors import PatchworkError
from ...plugin import qgis_enums
from ...plugin.algorithms.classify import ClassifyAlgorithm as Classify
from ...plugin.algorithms.detect import DetectAlgorithm as Detect
from ...plugin.algorithms.recognize import RecognizeAlgorithm as Recognize
from ...plugin.algorithms.superresolve import SuperResolveAlgorithm as SuperResolve
from ..runner import TEMPORARY
from ..widgets import (
    WrappedLabel,
    advanced_group,
    combo_for,
    definition,
    double_for,
    file_source,
    form_layout,
    label_of,
    output_for,
    scrolled,
    spin_for,
    tip_of,
    tr,
    unset,
)


class ClassifyTab(QWidget):
    """Signals the panel to run an algorithm (`run_requested`) and to show a message (`message_shown`)."""

    run_requested = pyqtSignal(str, dict)
    message_shown = pyqtSignal(str, bool)

    def __init__(self) -> None:
        super().__init__()
        self.restoring = False  # the panel is reading its settings back: a model chosen keeps the remembered input
        self.loaded_model_key = self.loaded_model_info = None  # the model's info, loaded once (chosen_model_info)
        self.hidden_rows: set | None = None  # the rows show_task_fields took out of the form last
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
        self.classified_file = output_for(Classify, Classify.OUTPUT, tr("[Save to temporary file]"),  # as QGIS says
                                          tr("GeoTIFF (*.tif)"))
        self.min_segment = spin_for(Classify, Classify.MIN_SEGMENT, " px", tr("the model's"))
        self.polygons_file = output_for(Classify, Classify.OUTPUT_VECTOR, tr("[Skip output]"),
                                        tr("GeoPackage (*.gpkg)"))
        self.areas_file = output_for(Classify, Classify.OUTPUT_AREAS, tr("[Skip output]"), tr("CSV (*.csv)"))
        self.uncertainty_file = output_for(Classify, Classify.OUTPUT_UNCERTAINTY, tr("[Skip output]"),
                                           tr("GeoTIFF (*.tif)"))
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
                             (Classify.OUTPUT_VECTOR, self.polygons_file), (Classify.OUTPUT_AREAS, self.areas_file),
                             (Classify.OUTPUT_UNCERTAINTY, self.uncertainty_file)):
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
        page = QVBoxLayout(self)
        page.setContentsMargins(0, 0, 0, 0)
        page.addWidget(scrolled(content, self.classify_button))

    def band_list(self) -> list[int] | None:
        text = self.classify_bands.text().strip()
        return [int(b) for b in text.replace(";", ",").split(",") if b.strip()] if text else None

    def pick_bands(self, *_args) -> list[int] | None:
        """A band list per model input (named as the model names them), written into Bands; returns the bands."""
        from ..band_picker import BandPickerDialog

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
        from ...core.models import load_model

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
                      "classified_file", "output_grid", "uncertainty_file"),
        "recognition": ("confidence", "iou", "aggregation_combo", "min_segment", "polygons_file", "areas_file",
                        "uncertainty_file"),
        "superresolution": ("query_file", "confidence", "iou", "aggregation_combo", "min_segment", "polygons_file",
                            "areas_file", "classify_mask", "resolution", "output_grid", "tile_size",
                            "uncertainty_file"),
    }

    def show_task_fields(self, task: str | None) -> None:
        """Each model's task shows its own fields: a detector its score and overlap thresholds and no class-map
        settings, a recognition model its query image; with no model yet, the classification form."""
        hidden = {getattr(self, name) for name in self.TASK_HIDES.get(task or "classification", ())}
        if hidden == self.hidden_rows:
            return
        self.hidden_rows = hidden
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
        raster = file_source(self.classify_raster.currentLayer())
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
        for name, widget in ((Classify.OUTPUT_VECTOR, self.polygons_file), (Classify.OUTPUT_AREAS, self.areas_file),
                             (Classify.OUTPUT_UNCERTAINTY, self.uncertainty_file)):
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

    def start_run(self, algorithm_id: str, parameters: dict) -> None:
        self.run_requested.emit(algorithm_id, parameters)

    def show_message(self, text: str, error: bool = False) -> None:
        self.message_shown.emit(text, error)
