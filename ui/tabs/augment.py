"""The Augment tab: an augmentation pipeline (presets, ops, JSON), its draws previewed on the chip at the map's centre
and in a gallery, and a run of Augment chips."""
from __future__ import annotations

import json
import os
from collections.abc import Callable

from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import (
    QDialog,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ... import core
from ...core.data.augment import Compose, load_pipeline, preset_names
from ...core.errors import PatchworkError
from ...plugin import qgis_enums
from ...plugin.algorithms.augment_chips import AugmentChipsAlgorithm as Augment
from ...plugin.resources import resource_path
from ..preview import AugmentationPreview, ChipFootprints, chip_at, read_sample, stretch_limits, thumbnail
from ..runner import temporary_output
from ..widgets import (
    combo_box,
    file_source,
    form_layout,
    label_of,
    may_replace_dataset,
    output_for,
    scrolled,
    spin_box,
    spin_for,
    tip_of,
    tr,
)

# The ops the tab offers, in its list's order.
AUGMENTATIONS = (core.RandomFlip, core.RandomRotate90, core.RandomCrop, core.RandomShift, core.BrightnessJitter,
                 core.ContrastJitter, core.GaussianNoise, core.SpeckleNoise, core.BandDropout, core.BandJitter,
                 core.SunAngleJitter, core.AtmosphericHaze, core.SimulatedClouds, core.CutMix, core.MixUp, core.Compose)


class AugmentTab(QWidget):
    """Signals the panel to run an algorithm (`run_requested`) and to show a message (`message_shown`)."""

    run_requested = pyqtSignal(str, dict)
    message_shown = pyqtSignal(str, bool)

    def __init__(self, canvas, chip_source: Callable[[], tuple]) -> None:
        super().__init__()
        self.canvas = canvas
        self.chip_source = chip_source  # () → the Sample tab's raster layer, chip size and seed
        self.preview_outline = ChipFootprints(canvas, QColor(0, 200, 255))  # the chip being augmented
        self.augmentation_preview = AugmentationPreview()
        self.gallery: GalleryDialog | None = None
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
        page = QVBoxLayout(self)
        page.setContentsMargins(0, 0, 0, 0)
        page.addWidget(scrolled(content, pinned))

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
        layer, chip_size, _seed = self.chip_source()
        raster = file_source(layer)
        if raster is None:
            self.show_message(tr("Choose a raster on the Sample tab first."), error=True)
            return []

        def show():
            pipeline = self.pipeline()
            if getattr(pipeline, "needs_pool", False):
                raise PatchworkError(tr("The preview has no donor chips: remove CutMix and MixUp to preview."))
            window = chip_at(raster, self.canvas, layer.crs(), chip_size)
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
        overwrite = may_replace_dataset(self, folder)
        if overwrite is None:
            return
        self.run_requested.emit(Augment.ID, {
            Augment.INPUT: index, Augment.PIPELINE: self.pipeline_edit.toPlainText(),
            Augment.COPIES: self.copies.value(), Augment.SEED: self.chip_source()[2], Augment.OUTPUT_DIR: folder,
            Augment.OUTPUT: os.path.join(folder, "index.gpkg"), Augment.OVERWRITE: overwrite})

    def show_message(self, text: str, error: bool = False) -> None:
        """In the panel's status line."""
        self.message_shown.emit(text, error)

    def guarded(self, action):
        """Run `action`, showing a Patchwork error in the status line instead of raising it."""
        try:
            return action()
        except (PatchworkError, OSError) as exc:
            self.show_message(str(exc), error=True)
            return None

    def leave(self) -> None:
        """The tab is no longer seen: the outline of the augmented chip leaves the map (the gallery keeps its own)."""
        self.preview_outline.clear()

    def clear_previews(self) -> None:
        """The panel closes: the preview's layers and outline go (they are the panel's, not the project's)."""
        self.preview_outline.clear()
        self.augmentation_preview.clear()


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
