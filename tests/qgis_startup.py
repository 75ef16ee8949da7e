"""PYQGIS_STARTUP for the QGIS processes the tests start (qgis_process, the QGIS window).

A warning raised from Patchwork's own code is an error there, as it is in the test process (pyproject.toml's
filterwarnings). qgis.utils calls warnings.simplefilter("default") when it is first imported, which would put
its filter in front of any given earlier (PYTHONWARNINGS included): importing it here first keeps this one in front.
"""
import warnings

import qgis.utils  # noqa: F401

warnings.filterwarnings("error", module=r"patchwork(\.|$)")
