"""The Train, Compare and Stitch tabs: an algorithm's own form (QGIS's widgets from its definitions) and its run
button."""
from __future__ import annotations

import os

from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QPushButton, QVBoxLayout, QWidget

from ...plugin.algorithms.train_classifier import TrainClassifierAlgorithm as Train
from ..forms import AlgorithmForm
from ..runner import new_model_path
from ..widgets import scrolled, tr


class FormTab(QWidget):
    """Signals the panel to run the algorithm (`run_requested`) and to show a message (`message_shown`).

    `required`: (parameter, message) pairs: the run is not asked for while such a parameter is empty.
    """

    run_requested = pyqtSignal(str, dict)
    message_shown = pyqtSignal(str, bool)

    def __init__(self, algorithm_id: str, canvas, button_text: str, button_tip: str,
                 required: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__()
        self.algorithm_id, self.required = algorithm_id, required
        content = QWidget()
        layout = QVBoxLayout(content)
        self.form = AlgorithmForm(algorithm_id, canvas)
        layout.addWidget(self.form)
        layout.addStretch()
        self.button = QPushButton(button_text)
        self.button.setToolTip(button_tip)
        self.button.clicked.connect(self.run)
        page = QVBoxLayout(self)
        page.setContentsMargins(0, 0, 0, 0)
        page.addWidget(scrolled(content, self.button))

    def run(self) -> None:
        parameters = self.form.values()
        for name, message in self.required:
            if not parameters.get(name):
                self.message_shown.emit(message, True)
                return
        self.run_requested.emit(self.algorithm_id, parameters)


class TrainTab(FormTab):
    """Train pixel classifier, its model and report kept under a new name (a model is not a temporary file)."""

    def __init__(self, canvas) -> None:
        super().__init__(Train.ID, canvas, tr("Train"),
                         tr("Run Patchwork ▸ Train pixel classifier; the model then appears in Classify"))
        self.set_new_model_path()

    def set_new_model_path(self) -> None:
        """A new model's file, and its training report beside it (a temporary report was lost with the session)."""
        model = new_model_path()
        self.form.set_value(Train.OUTPUT_MODEL, model)
        self.form.set_value(Train.OUTPUT_REPORT, os.path.splitext(model)[0] + "_report.html")
