"""The Train, Compare and Stitch tabs: an algorithm's own form (QGIS's widgets from its definitions) and its run
button; Train offers two algorithms, a per-pixel classifier or a segmentation network."""
from __future__ import annotations

import os

from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QComboBox, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from ...plugin.algorithms.train_classifier import TrainClassifierAlgorithm as Train
from ...plugin.algorithms.train_segmentation import TrainSegmentationAlgorithm as TrainNetwork
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


class TrainTab(QWidget):
    """Train pixel classifier or Train segmentation network (one choice), each with its own form; signals the panel
    like the other tabs. `form` is the chosen one's."""

    run_requested = pyqtSignal(str, dict)
    message_shown = pyqtSignal(str, bool)

    def __init__(self, canvas) -> None:
        super().__init__()
        content = QWidget()
        layout = QVBoxLayout(content)
        self.kind = QComboBox()
        self.kind.setToolTip(tr("A per-pixel classifier (scikit-learn: quick, from few labels) or a segmentation "
                                "network (a U-Net in PyTorch: learns shapes and context, and takes the augmentations)"))
        self.forms = QStackedWidget()
        self.algorithm_ids = []
        for algorithm_id, title in ((Train.ID, tr("Per-pixel classifier (scikit-learn)")),
                                    (TrainNetwork.ID, tr("Segmentation network (PyTorch)"))):
            self.kind.addItem(title)
            self.algorithm_ids.append(algorithm_id)
            self.forms.addWidget(AlgorithmForm(algorithm_id, canvas))
        self.kind.currentIndexChanged.connect(self.forms.setCurrentIndex)
        layout.addWidget(self.kind)
        layout.addWidget(self.forms)
        layout.addStretch()
        self.button = QPushButton(tr("Train"))
        self.button.setToolTip(tr("Run Patchwork ▸ Train pixel classifier, or Train segmentation network; the model "
                                  "then appears in Classify"))
        self.button.clicked.connect(self.run)
        page = QVBoxLayout(self)
        page.setContentsMargins(0, 0, 0, 0)
        page.addWidget(scrolled(content, self.button))
        self.set_new_model_path()

    @property
    def form(self) -> AlgorithmForm:
        """The chosen kind's form."""
        return self.forms.currentWidget()

    def run(self) -> None:
        self.run_requested.emit(self.algorithm_ids[self.kind.currentIndex()], self.form.values())

    def set_chips(self, layer) -> None:
        """A chip index to train on, in both forms."""
        for i in range(self.forms.count()):
            self.forms.widget(i).set_value(Train.INPUT, layer)

    def set_new_model_path(self) -> None:
        """A new model's file and its training report beside it (a temporary report was lost with the session), in
        both forms."""
        model = new_model_path()
        for i in range(self.forms.count()):
            self.forms.widget(i).set_value(Train.OUTPUT_MODEL, model)
            self.forms.widget(i).set_value(Train.OUTPUT_REPORT, os.path.splitext(model)[0] + "_report.html")
