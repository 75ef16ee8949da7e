"""The plugin object QGIS creates through classFactory: it registers the Processing provider (also for
qgis_process), and in the QGIS window adds the panel, its toolbar button and the package installer."""
from __future__ import annotations

from qgis.core import QgsApplication

from ..plugin.provider import PatchworkProvider


class PatchworkPlugin:
    def __init__(self, iface) -> None:
        # qgis_process passes iface=None: nothing here may touch the GUI.
        self.iface = iface
        self.provider: PatchworkProvider | None = None
        self.action = None
        self.installer_action = None
        self.dock = None
        from .installer import activate

        activate()  # packages the installer put in the profile become importable (also for qgis_process)

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API name
        """Called by QGIS (also headless, by qgis_process) to register the Processing provider."""
        if self.provider is None:
            provider = PatchworkProvider()
            # False when a provider "patchwork" is registered already (QGIS then deletes this one).
            if QgsApplication.processingRegistry().addProvider(provider):
                self.provider = provider

    def initGui(self) -> None:  # noqa: N802 - QGIS API name
        from qgis.PyQt.QtCore import QCoreApplication, Qt
        from qgis.PyQt.QtGui import QIcon
        from qgis.PyQt.QtWidgets import QAction

        from ..plugin.resources import resource_path
        from .dock import PatchworkDock

        self.initProcessing()
        self.dock = PatchworkDock(self.iface, self.iface.mainWindow())
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.hide()
        self.action = QAction(QIcon(resource_path("icons", "patchwork.svg")),
                              QCoreApplication.translate("PatchworkPlugin", "Patchwork panel"), self.iface.mainWindow())
        self.action.setObjectName("PatchworkPanelAction")
        self.action.setCheckable(True)
        self.action.setToolTip(QCoreApplication.translate(
            "PatchworkPlugin", "Sample chips, preview augmentations, train, classify, compare and stitch"))
        self.action.toggled.connect(self.dock.setUserVisible)
        self.dock.visibilityChanged.connect(self.action.setChecked)
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToRasterMenu(self.menu_name(), self.action)
        self.installer_action = QAction(QCoreApplication.translate("PatchworkPlugin", "Install Python dependencies…"),
                                        self.iface.mainWindow())
        self.installer_action.setObjectName("PatchworkInstallerAction")
        self.installer_action.setToolTip(QCoreApplication.translate(
            "PatchworkPlugin", "scikit-learn, onnxruntime, skops, skl2onnx: see what is there and install the rest"))
        self.installer_action.triggered.connect(self.open_installer)
        self.iface.addPluginToRasterMenu(self.menu_name(), self.installer_action)

    def open_installer(self) -> None:
        from .installer import InstallerDialog

        self.installer = InstallerDialog(self.iface.mainWindow())
        self.installer.show()

    @staticmethod
    def menu_name() -> str:
        from qgis.PyQt.QtCore import QCoreApplication

        return QCoreApplication.translate("PatchworkPlugin", "&Patchwork")

    def unload(self) -> None:
        """Removes everything initGui and initProcessing added (Plugin Reloader leaves nothing behind)."""
        if self.action is not None:
            self.iface.removePluginRasterMenu(self.menu_name(), self.action)
            self.iface.removeToolBarIcon(self.action)
            self.action.deleteLater()
            self.action = None
        if self.installer_action is not None:
            self.iface.removePluginRasterMenu(self.menu_name(), self.installer_action)
            self.installer_action.deleteLater()
            self.installer_action = None
        if self.dock is not None:
            self.dock.cleanup()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
