"""Panel forms built from an algorithm's own parameter definitions, with QGIS's own parameter widgets.

The labels, defaults, ranges, choices, tooltips and output pickers ("Save to a temporary file" included) are those
of the Toolbox dialog, because they come from the same definitions through QGIS's widget registry: nothing is
typed twice.
"""
from __future__ import annotations

from qgis.core import QgsApplication, QgsProcessingContext, QgsProject
from qgis.gui import (
    QgsCollapsibleGroupBox,
    QgsGui,
    QgsProcessingContextGenerator,
    QgsProcessingParameterWidgetContext,
)
from qgis.PyQt.QtWidgets import QCheckBox, QFormLayout, QVBoxLayout, QWidget

from ..plugin import qgis_enums


class _ContextOf(QgsProcessingContextGenerator):
    """Gives the widgets the form's context (with the project): without it a field list cannot find the layer its
    parent parameter names, and stays empty, as it did for patchwork:accuracy's reference field."""

    def __init__(self, context: QgsProcessingContext) -> None:
        super().__init__()
        self.context = context

    def processingContext(self):  # noqa: N802 - QGIS API name
        return self.context


class AlgorithmForm(QWidget):
    """The parameters of `algorithm_id` as QGIS's dialog shows them; advanced ones in a collapsed group."""

    def __init__(self, algorithm_id: str, canvas=None, parent=None) -> None:
        super().__init__(parent)
        self.algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
        if self.algorithm is None:
            raise RuntimeError(f"{algorithm_id} is not registered; is the Patchwork provider loaded?")
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        widget_context = QgsProcessingParameterWidgetContext()
        widget_context.setProject(QgsProject.instance())
        if canvas is not None:
            widget_context.setMapCanvas(canvas)
        self.context_generator = _ContextOf(self.context)  # (held: the wrappers keep only a pointer)
        self.wrappers = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        main, advanced = QFormLayout(), QFormLayout()
        for form in (main, advanced):  # each label above its field: the panel is narrow (fields beside were cut off)
            form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)
        layout.addLayout(main)
        self.advanced_group = QgsCollapsibleGroupBox(self.tr("Advanced parameters"))
        self.advanced_group.setLayout(advanced)
        self.advanced_group.setCollapsed(True)
        self.advanced_group.setToolTip(self.tr("Settings most runs leave at their defaults"))
        registry = QgsGui.processingGuiRegistry()
        for definition in self.algorithm.parameterDefinitions():
            if definition.flags() & qgis_enums.PARAMETER_HIDDEN:
                continue
            wrapper = registry.createParameterWidgetWrapper(definition, qgis_enums.processing_standard_widgets())
            wrapper.setWidgetContext(widget_context)
            wrapper.registerProcessingContextGenerator(self.context_generator)
            widget = wrapper.createWrappedWidget(self.context)
            label = wrapper.createWrappedLabel()
            if label is not None:
                label.setWordWrap(True)
            if definition.isDestination():  # the panel adds every output to the project: no "open it" box
                for box in widget.findChildren(QCheckBox):
                    box.hide()
            form = advanced if definition.flags() & qgis_enums.PARAMETER_ADVANCED else main
            if label is not None:
                form.addRow(label, widget)
            else:  # a check box carries its own label
                form.addRow(widget)
            self.wrappers[definition.name()] = wrapper
        if advanced.rowCount():
            layout.addWidget(self.advanced_group)
        for wrapper in self.wrappers.values():  # e.g. a band list follows its raster
            wrapper.postInitialize(list(self.wrappers.values()))

    def values(self) -> dict:
        """The parameters as Processing takes them (outputs included: a path, or TEMPORARY_OUTPUT)."""
        return {name: wrapper.parameterValue() for name, wrapper in self.wrappers.items()}

    def set_value(self, name: str, value) -> None:
        self.wrappers[name].setParameterValue(value, self.context)

    def widget(self, name: str) -> QWidget:
        return self.wrappers[name].wrappedWidget()
