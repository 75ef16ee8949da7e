"""The Report tab: what to label next, from the last classification's uncertainty; and a map's accuracy and area
with confidence intervals, in three steps — draw points to label, label them on the map, assess — each step handing
its result to the next."""
from __future__ import annotations

import os
import shutil

from qgis.core import QgsVectorLayer
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from ...plugin.algorithms.accuracy import AccuracyAlgorithm as Accuracy
from ...plugin.algorithms.accuracy import AccuracySampleAlgorithm as AccuracySample
from ...plugin.algorithms.suggest_labels import SuggestLabelsAlgorithm as SuggestLabels
from ..forms import AlgorithmForm
from ..runner import TEMPORARY, temporary_output
from ..widgets import WrappedLabel, scrolled, tr


def step_title(text: str) -> QLabel:
    label = QLabel(f"<b>{text}</b>")
    label.setWordWrap(True)
    return label


class ReportTab(QWidget):
    """Signals the panel to run an algorithm (`run_requested`), to show a message (`message_shown`), to open a layer
    for labelling (`labelling_requested`: the layer, and what to do) and to retrain with the places labelled
    (`retrain_requested`); it never imports the panel."""

    run_requested = pyqtSignal(str, dict)
    message_shown = pyqtSignal(str, bool)
    labelling_requested = pyqtSignal(object, str)
    retrain_requested = pyqtSignal(object)

    def __init__(self, canvas=None) -> None:
        super().__init__()
        self.sample_layer: QgsVectorLayer | None = None
        self.sample_map = None  # the class map the accuracy sample was drawn from
        self.suggestions: QgsVectorLayer | None = None  # the places suggested to label next
        self.unsure = self.classes = None  # the last classification's uncertainty and class maps
        self.runs_allowed = True  # the panel's: one run at a time
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addWidget(step_title(tr("What to label next")))
        self.suggest_button = QPushButton(tr("Suggest places to label"))
        self.suggest_button.setToolTip(tr("Run Patchwork ▸ Suggest what to label next on the last classification's "
                                          "uncertainty map (write one in Classify): 50 places drawn where it is "
                                          "unsure, 32 px apart, balanced across classes"))
        self.suggest_button.setEnabled(False)
        self.suggest_button.clicked.connect(self.suggest)
        self.label_places_button = QPushButton(tr("Label the places"))
        self.label_places_button.setToolTip(tr("Make the suggested places the active layer, start editing them and "
                                               "open their table: give each its class in 'label'"))
        self.label_places_button.setEnabled(False)
        self.label_places_button.clicked.connect(lambda: self.labelling_requested.emit(
            self.suggestions, tr("Give each place its class in 'label' (leave the unsure ones empty), save the edits, "
                                 "then retrain.")))
        self.retrain_button = QPushButton(tr("Retrain and classify with them"))
        self.retrain_button.setToolTip(tr("Add the labelled places to the Sample tab's label polygons (a new layer), "
                                          "then run Sample, Train and Classify again with their tabs' settings; the "
                                          "accuracy is assessed again when it was before"))
        self.retrain_button.setEnabled(False)
        self.retrain_button.clicked.connect(lambda: self.retrain_requested.emit(self.suggestions))
        for button in (self.suggest_button, self.label_places_button, self.retrain_button):
            layout.addWidget(button)
        layout.addWidget(step_title(tr("1. Points to label, drawn from the map")))
        self.sample_form = AlgorithmForm(AccuracySample.ID, canvas)
        layout.addWidget(self.sample_form)
        self.sample_button = QPushButton(tr("Draw points"))
        self.sample_button.setToolTip(tr("Run Patchwork ▸ Draw an accuracy sample"))
        self.sample_button.clicked.connect(
            lambda: self.run_requested.emit(AccuracySample.ID, self.sample_form.values()))
        layout.addWidget(self.sample_button)
        layout.addWidget(step_title(tr("2. Label them")))
        how = WrappedLabel()
        how.setText(tr("Give each point the class you see in the imagery: the 'reference' field is a list of the "
                       "map's classes. A point stays hollow until it has one."))
        layout.addWidget(how)
        self.label_button = QPushButton(tr("Label the points"))
        self.label_button.setToolTip(tr("Make the sample the active layer, start editing it and open its table"))
        self.label_button.setEnabled(False)
        self.label_button.clicked.connect(lambda: self.labelling_requested.emit(
            self.sample_layer, tr("Label each point's 'reference', save the edits, then assess (step 3).")))
        layout.addWidget(self.label_button)
        layout.addWidget(step_title(tr("3. Accuracy and area, with 95% intervals")))
        self.accuracy_form = AlgorithmForm(Accuracy.ID, canvas)
        layout.addWidget(self.accuracy_form)
        layout.addStretch()
        self.accuracy_button = QPushButton(tr("Assess accuracy and area"))
        self.accuracy_button.setToolTip(tr("Run Patchwork ▸ Accuracy and area (with confidence intervals)"))
        self.accuracy_button.clicked.connect(self.assess)
        self.page = scrolled(content, self.accuracy_button)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.page)

    def run_buttons(self) -> list[QPushButton]:
        """The buttons that start a run whenever no other runs (suggesting also needs an uncertainty map)."""
        return [self.sample_button, self.accuracy_button]

    def allow_runs(self, allowed: bool) -> None:
        """The panel allows runs (none going) or not: the buttons say so."""
        self.runs_allowed = allowed
        for button in self.run_buttons():
            button.setEnabled(allowed)
        self.suggest_button.setEnabled(allowed and self.unsure is not None)
        self.retrain_button.setEnabled(allowed and self.suggestions is not None)

    def set_suggestions(self, layer: QgsVectorLayer | None) -> None:
        """The places just suggested: to label, then to retrain with."""
        self.suggestions = layer
        self.label_places_button.setEnabled(layer is not None)
        self.retrain_button.setEnabled(layer is not None and self.runs_allowed)

    def assessed_before(self) -> bool:
        """Whether an assessment was made (the next one is compared with it)."""
        return bool(self.accuracy_form.values().get(Accuracy.PREVIOUS))

    def assess_new_map(self) -> None:
        """Assess the new map with the labelled sample drawn from the earlier one: the sample's strata stay that map's
        classes (Stehman's estimators with strata other than the map's classes)."""
        by_map_class = self.accuracy_form.values().get(Accuracy.DESIGN) in (0, "0", None, "map_classes")
        if by_map_class and self.sample_map is not None:
            self.accuracy_form.set_value(Accuracy.DESIGN, 1)
            self.accuracy_form.set_value(Accuracy.STRATA, self.sample_map)
        self.assess()

    def remember_assessment(self, figures: str | None) -> None:
        """An assessment's figures (JSON), kept to compare the next one with: the next report says what changed."""
        if not figures or not os.path.exists(figures):
            return
        kept = temporary_output("previous_accuracy.json")  # a copy: the next run may write over the file itself
        shutil.copyfile(figures, kept)
        self.accuracy_form.set_value(Accuracy.PREVIOUS, kept)

    def set_uncertainty(self, uncertainty, classes) -> None:
        """The last classification's uncertainty map (None: it wrote none) and class map, for the suggestions."""
        written = bool(uncertainty) and os.path.exists(str(uncertainty))  # (an output not asked for may come as "")
        self.unsure, self.classes = (uncertainty, classes) if written else (None, None)
        self.suggest_button.setEnabled(written and self.runs_allowed)

    def suggest(self) -> None:
        if self.unsure is None:
            self.message_shown.emit(tr("Classify with an uncertainty map first (Classify ▸ Uncertainty)."), True)
            return
        self.run_requested.emit(SuggestLabels.ID, {
            SuggestLabels.INPUT: self.unsure, SuggestLabels.CLASSES: self.classes, SuggestLabels.BALANCE: True,
            SuggestLabels.OUTPUT: TEMPORARY})

    def assess(self) -> None:
        parameters = self.accuracy_form.values()
        if not parameters.get(Accuracy.SAMPLES):
            self.message_shown.emit(tr("Choose the labelled points first (step 1 draws them)."), True)
            return
        self.run_requested.emit(Accuracy.ID, parameters)

    def set_map(self, layer) -> None:
        """A new class map: the one the sample is drawn from and assessed."""
        self.sample_form.set_value(AccuracySample.INPUT, layer)
        self.accuracy_form.set_value(Accuracy.INPUT, layer)

    def set_sample(self, layer: QgsVectorLayer, class_map) -> None:
        """The sample just drawn: to label, then to assess against the map it was drawn from."""
        self.sample_layer, self.sample_map = layer, class_map
        self.label_button.setEnabled(layer is not None)
        self.accuracy_form.set_value(Accuracy.SAMPLES, layer)
        if class_map:
            self.accuracy_form.set_value(Accuracy.INPUT, class_map)
        for name in (Accuracy.DESIGN, Accuracy.STRATA, Accuracy.AOI):  # assessed as it was drawn
            value = self.sample_form.values().get(name)
            if value is not None:
                self.accuracy_form.set_value(name, value)
