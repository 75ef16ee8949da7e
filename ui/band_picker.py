"""Which raster band feeds each of a model's inputs: one band list per input, named as the model names them."""
from __future__ import annotations

from qgis.core import QgsRasterLayer
from qgis.gui import QgsRasterBandComboBox
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QVBoxLayout


def tr(text: str) -> str:
    return QCoreApplication.translate("BandPicker", text)


def band_description(layer: QgsRasterLayer, band: int) -> str:
    """What the raster says a band holds ('' when it says nothing): QGIS names a band "Band 2: Green"."""
    name = layer.bandName(band) or ""
    return name.split(": ", 1)[1].strip() if ": " in name else ""


def guess_bands(layer: QgsRasterLayer, expected: list[str]) -> list[int]:
    """For each input the model names (blue, green, red, nir…), the raster band whose description names it; else the
    band in the same place (band 1 for the first input, …), kept within the raster's bands."""
    descriptions = [band_description(layer, b).lower() for b in range(1, layer.bandCount() + 1)]
    bands = []
    for i, name in enumerate(expected):
        wanted = name.strip().lower()
        found = [b for b, text in enumerate(descriptions, 1) if wanted and (text == wanted or wanted in text.split())]
        bands.append(found[0] if found else min(i + 1, layer.bandCount()))
    return bands


class BandPickerDialog(QDialog):
    """One band list per model input, each labelled with what the model expects there."""

    def __init__(self, layer: QgsRasterLayer, expected: list[str], current: list[int] | None = None,
                 parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(tr("Bands fed to the model"))
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(tr("The model takes {} inputs. Pick the band of '{}' for each:").format(
            len(expected), layer.name())))
        form = QFormLayout()
        start = current if current and len(current) == len(expected) else guess_bands(layer, expected)
        self.boxes = []
        for i, (name, band) in enumerate(zip(expected, start), 1):
            box = QgsRasterBandComboBox()
            box.setLayer(layer)
            box.setBand(band)
            box.setToolTip(tr("The raster band the model's input {} ({}) gets").format(i, name or tr("unnamed")))
            form.addRow(tr("Input {}: {}").format(i, name) if name else tr("Input {}").format(i), box)
            self.boxes.append(box)
        layout.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def bands(self) -> list[int]:
        """The bands picked, in the model's input order."""
        return [box.currentBand() for box in self.boxes]
