"""Vector layers the core reads itself (AOIs and label polygons given as files) and the CRS they come in."""
from __future__ import annotations

from osgeo import osr

from ..errors import PatchworkError, one_line
from .gdal_errors import checked, open_vector


def traditional_srs(wkt: str) -> osr.SpatialReference:
    """The CRS of `wkt` with x before y whatever its authority says (as GDAL's rasters and geotransforms are)."""
    srs = osr.SpatialReference()
    checked(srs.ImportFromWkt, wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def read_features(path: str, role: str, layer: str | None = None,
                  field: str | None = None) -> tuple[list[str], str, list]:
    """The features of a vector file's layer (its first, or `layer`).

    Returns:
        Their geometries as WKT, the layer's CRS as WKT ('' when it has none), and each one's `field` value.

    Raises:
        PatchworkError: A file, layer or field that cannot be read, named with `role`.
    """
    try:
        source = open_vector(path)
    except RuntimeError as exc:
        raise PatchworkError(f"{role}: cannot open '{path}' as a vector layer ({one_line(exc)}).") from exc
    lyr = source.GetLayerByName(layer) if layer else source.GetLayer(0)
    if lyr is None:
        raise PatchworkError(f"{role}: '{path}' has no layer {layer or 'at all'}. Check the file and layer name.")
    if field is not None:
        definition = lyr.GetLayerDefn()
        fields = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
        if field not in fields:
            raise PatchworkError(f"LABEL_FIELD: '{path}' has no field '{field}'; it has {', '.join(fields)}.")
    srs = lyr.GetSpatialRef()
    wkts, values = [], []
    for feature in lyr:
        geometry = feature.GetGeometryRef()
        if geometry is not None:
            wkts.append(geometry.ExportToWkt())
            values.append(feature.GetField(field) if field is not None else None)
    return wkts, srs.ExportToWkt() if srs else "", values
