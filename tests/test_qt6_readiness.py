"""Static checks that the plugin's Qt code reads the same under PyQt5 and PyQt6 (QGIS 4)."""
from __future__ import annotations

import os
import re

from tests.conftest import REPO

QT_CODE = ["plugin", "ui", "__init__.py", os.path.join("scripts", "qgis_gui_session.py"),
           os.path.join("scripts", "build_workflow_model.py")]
# A Qt enum value must be spelled with its enum's name (Qt.AlignmentFlag.AlignLeft): PyQt6 has no short form.
SHORT_ENUM = re.compile(r"\b(Qt|QEvent|QImage|QProcess|QDialogButtonBox|QMessageBox|QSizePolicy)\.([A-Z]\w*)\b(?!\.)")
ENUM_CLASSES = {"Qt": {"AlignmentFlag", "AspectRatioMode", "TransformationMode", "DockWidgetArea"},
                "QEvent": {"Type"}, "QImage": {"Format"}, "QProcess": {"ProcessChannelMode", "ProcessState"}}


def sources():
    for item in QT_CODE:
        path = os.path.join(REPO, item)
        if os.path.isfile(path):
            yield path
            continue
        for root, _dirs, files in os.walk(path):
            yield from (os.path.join(root, f) for f in files if f.endswith(".py"))


def test_no_pyqt5_only_spellings():
    problems = []
    for path in sources():
        text = open(path, encoding="utf-8").read()
        for pattern, why in ((r"\bexec_\(", "exec_() is gone in PyQt6: use exec()"),
                             (r"\bQRegExp\b", "QRegExp is gone in Qt 6: use QRegularExpression"),
                             (r"^\s*(from|import) PyQt5", "import Qt through qgis.PyQt"),
                             (r"\bpyrcc|resources_rc\b", "PyQt6 has no pyrcc: load icons from files")):
            problems += [f"{path}: {why}" for _ in re.finditer(pattern, text, re.MULTILINE)]
        for match in SHORT_ENUM.finditer(text):
            owner, name = match.groups()
            if name not in ENUM_CLASSES.get(owner, set()) and not name.startswith("translate"):
                problems.append(f"{path}: {match.group(0)} needs its enum's name (PyQt6)")
    assert not problems, "\n".join(problems)


# Enums QGIS moved to Qgis.* (3.30-3.36) keep their old spellings only as aliases that QGIS 4 drops.
MOVED_ENUM = re.compile(r"\bQgsProcessing\.(SourceType|Type[A-Z]\w*)\b"
                        r"|\bQgsProcessingParameter(Number|File|Definition)\.(Type|Behavior|Flag\w*|Integer|Double|File|Folder)\b"
                        r"|\bQgsWkbTypes\.(GeometryType|\w+Geometry)\b|\bQgsMapLayerProxyModel\.(Filter|\w+Layer)\b")


def test_moved_qgis_enums_are_spelled_only_in_qgis_enums():
    problems = []
    for path in sources():
        if os.path.basename(path) == "qgis_enums.py":
            continue
        text = open(path, encoding="utf-8").read()
        problems += [f"{path}: {found.group(0)} is gone in QGIS 4: use plugin/qgis_enums.py"
                     for found in MOVED_ENUM.finditer(text)]
    assert not problems, "\n".join(problems)


def test_qgis_enums_take_the_qgis_spelling_where_this_qgis_has_it():
    from qgis.core import Qgis

    from patchwork.plugin import qgis_enums

    qgis_enum_types = {value for name in dir(Qgis) if isinstance(value := getattr(Qgis, name), type)}
    constants = {name: value for name, value in vars(qgis_enums).items() if name.isupper()}
    assert len(constants) == 15
    for name, value in constants.items():
        # 3.36 has moved them all; 3.22 has none of them in Qgis.
        assert (type(value) in qgis_enum_types) == (Qgis.QGIS_VERSION_INT >= 33600), (name, type(value))


def test_metadata_declares_qgis_4_and_qt6():
    metadata = open(os.path.join(REPO, "metadata.txt"), encoding="utf-8").read()
    assert "qgisMinimumVersion=3.22" in metadata and "qgisMaximumVersion=4.99" in metadata
    assert "supportsQt6=True" in metadata and "hasProcessingProvider=yes" in metadata


def test_the_panels_widget_kind_is_the_one_this_qgis_names():
    """Qgis.ProcessingMode where QGIS has it (3.44 here), QgsProcessingGui.WidgetType before."""
    from qgis.core import Qgis
    from qgis.gui import QgsProcessingGui

    from patchwork.plugin import qgis_enums

    kind = type(qgis_enums.processing_standard_widgets())
    assert kind in {getattr(Qgis, "ProcessingMode", None), QgsProcessingGui.WidgetType}
