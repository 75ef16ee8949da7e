"""The panel's building blocks: fields made from the algorithms' definitions, forms with labels above their
fields, scroll areas and collapsed "Advanced" groups, as QGIS's Processing dialogs have."""
from __future__ import annotations

import os

from qgis.core import QgsApplication, QgsVectorLayer
from qgis.gui import QgsCollapsibleGroupBox, QgsFileWidget
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QLabel,
    QMessageBox,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.data.chips import MANIFEST


def tr(text: str) -> str:
    return QCoreApplication.translate("PatchworkDock", text)


def spin_box(low: int, high: int, value: int, tip: str, suffix: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setSuffix(suffix)
    box.setToolTip(tip)
    return box


def double_box(low: float, high: float, value: float, step: float, tip: str, decimals: int = 3) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setDecimals(decimals)
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setValue(value)
    box.setToolTip(tip)
    return box


def combo_box(items, tip: str) -> QComboBox:
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
    box = spin_box(low, int(min(d.maximum(), INT_LIMIT)), low if d.defaultValue() is None else int(d.defaultValue()),
                d.help(), suffix)
    if default_words:
        box.setSpecialValueText(default_words)
    return box


def double_for(algorithm, name: str, step: float, decimals: int = 3) -> QDoubleSpinBox:
    d = definition(algorithm, name)
    return double_box(max(d.minimum(), -1e9), min(d.maximum(), 1e9), float(d.defaultValue()), step, d.help(), decimals)


def combo_for(algorithm, name: str) -> QComboBox:
    d = definition(algorithm, name)
    box = combo_box(d.options(), d.help())
    box.setCurrentIndex(int(d.defaultValue() or 0))
    return box


class WrappedLabel(QLabel):
    """A word-wrapped label at least as tall as its lines at its width.

    In a QFormLayout of wrapped rows Qt 5 sizes such a label from its previous text: the model's description lost
    its last lines when it grew. The label asks for its own height (the text starts at the top of the space).
    """

    def __init__(self) -> None:
        super().__init__()
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)

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


def output_for(algorithm, name: str, placeholder: str, file_filter: str | None = None) -> QgsFileWidget:
    """A picker for output `name`, as QGIS's dialogs show one: a placeholder saying what an empty one does, a save
    dialog (a folder's without `file_filter`) and the parameter's help as its tooltip."""
    widget = QgsFileWidget()
    widget.lineEdit().setPlaceholderText(placeholder)
    if file_filter is None:
        widget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
    else:
        widget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        widget.setFilter(file_filter)
    widget.setToolTip(tip_of(algorithm, name))
    return widget


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


def file_source(layer) -> str | None:
    """The file behind a layer the core can read (GDAL/OGR file layers), else None."""
    if layer is None:
        return None
    return layer.source().split("|")[0] if layer.providerType() in ("gdal", "ogr") else None


def may_replace_dataset(parent: QWidget, folder: str) -> bool | None:
    """False for a new folder; True when the user agrees to replace the chip dataset in it; None: stop."""
    if not os.path.isfile(os.path.join(folder, MANIFEST)):
        return False
    answer = QMessageBox.question(
        parent, tr("Replace the chip dataset?"),
        tr("'{}' already holds a chip dataset. Replace it as a whole with the new chips?").format(folder))
    return True if answer == QMessageBox.StandardButton.Yes else None
