"""The QGIS enums that moved to `Qgis.*` between 3.30 and 3.36, spelled once for every supported QGIS.

QGIS 3.22 has only the old spellings (`QgsProcessing.TypeVectorPolygon`); 3.36 and later keep them only as
monkey-patched aliases of the new ones (`Qgis.ProcessingSourceType.VectorPolygon`), and QGIS 4 drops the aliases.
Each constant is the new member where this QGIS has it, the old one before. Plugin code uses these constants and
never the old spellings (tests/test_qt6_readiness.py checks).
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    Qgis,
    QgsMapLayerProxyModel,
    QgsProcessing,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsWkbTypes,
)


def _member(new_enum: str, new_name: str, old_enum: Any, old_name: str) -> Any:
    enum = getattr(Qgis, new_enum, None)
    return getattr(enum, new_name) if enum is not None else getattr(old_enum, old_name)


# Qgis.ProcessingSourceType: QGIS 3.36
SOURCE_RASTER = _member("ProcessingSourceType", "Raster", QgsProcessing, "TypeRaster")
SOURCE_VECTOR_POLYGON = _member("ProcessingSourceType", "VectorPolygon", QgsProcessing, "TypeVectorPolygon")
SOURCE_VECTOR_POINT = _member("ProcessingSourceType", "VectorPoint", QgsProcessing, "TypeVectorPoint")
SOURCE_VECTOR_LINE = _member("ProcessingSourceType", "VectorLine", QgsProcessing, "TypeVectorLine")
# Qgis.ProcessingParameterFlag: QGIS 3.36
PARAMETER_ADVANCED = _member("ProcessingParameterFlag", "Advanced", QgsProcessingParameterDefinition, "FlagAdvanced")
PARAMETER_HIDDEN = _member("ProcessingParameterFlag", "Hidden", QgsProcessingParameterDefinition, "FlagHidden")
# Qgis.ProcessingFileParameterBehavior: QGIS 3.36
FILE = _member("ProcessingFileParameterBehavior", "File", QgsProcessingParameterFile, "File")
FOLDER = _member("ProcessingFileParameterBehavior", "Folder", QgsProcessingParameterFile, "Folder")
# Qgis.ProcessingNumberParameterType: QGIS 3.36
INTEGER = _member("ProcessingNumberParameterType", "Integer", QgsProcessingParameterNumber, "Integer")
DOUBLE = _member("ProcessingNumberParameterType", "Double", QgsProcessingParameterNumber, "Double")
# Qgis.GeometryType: QGIS 3.30
POLYGON_GEOMETRY = _member("GeometryType", "Polygon", QgsWkbTypes, "PolygonGeometry")
# Qgis.LayerFilter: QGIS 3.34
RASTER_LAYERS = _member("LayerFilter", "RasterLayer", QgsMapLayerProxyModel, "RasterLayer")
POLYGON_LAYERS = _member("LayerFilter", "PolygonLayer", QgsMapLayerProxyModel, "PolygonLayer")
POINT_LAYERS = _member("LayerFilter", "PointLayer", QgsMapLayerProxyModel, "PointLayer")
LINE_LAYERS = _member("LayerFilter", "LineLayer", QgsMapLayerProxyModel, "LineLayer")


def layer_filters(*members: Any) -> Any:
    """Several layer filters as one value a layer combo box takes.

    From QGIS 3.34, `|` of two Qgis.LayerFilter members is a plain int, which setFilters takes only through its
    deprecated overload: the flags type has to be built. Before, the old members combine by themselves.
    """
    combined = members[0]
    for member in members[1:]:
        combined = combined | member
    flags, member_type = getattr(Qgis, "LayerFilters", None), getattr(Qgis, "LayerFilter", None)
    return flags(combined) if flags is not None and isinstance(members[0], member_type) else combined


def processing_standard_widgets() -> Any:
    """The Toolbox dialog's kind of parameter widget (Qgis.ProcessingMode from QGIS 3.44, QgsProcessingGui before)."""
    from qgis.gui import QgsProcessingGui

    return _member("ProcessingMode", "Standard", QgsProcessingGui, "Standard")
