"""Vector layers: those the core reads itself, their CRS, and the styled GeoPackages it writes.

Read: AOIs and label polygons given as files. Written: points to label and detections, each all or none.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import contextmanager

from osgeo import ogr, osr

from ..errors import PatchworkError, one_line
from .gdal_errors import checked, open_vector, opened
from .partials import Log, remove_file, replace_file, temporary_sibling


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


def store_default_style(ds, layer_name: str, qml: str) -> None:
    """The GeoPackage's layer_styles table, as QGIS writes it, holding `qml` as `layer_name`'s default style."""
    styles = opened(ds.CreateLayer, "layer_styles", None, ogr.wkbNone)
    for name, kind in (("f_table_catalog", ogr.OFTString), ("f_table_schema", ogr.OFTString),
                       ("f_table_name", ogr.OFTString), ("f_geometry_column", ogr.OFTString),
                       ("styleName", ogr.OFTString), ("styleQML", ogr.OFTString), ("styleSLD", ogr.OFTString),
                       ("useAsDefault", ogr.OFTInteger), ("description", ogr.OFTString), ("owner", ogr.OFTString),
                       ("ui", ogr.OFTString), ("update_time", ogr.OFTDateTime)):
        field = ogr.FieldDefn(name, kind)
        if name == "useAsDefault":
            field.SetSubType(ogr.OFSTBoolean)
        checked(styles.CreateField, field)
    style = ogr.Feature(styles.GetLayerDefn())
    for name, value in (("f_table_catalog", ""), ("f_table_schema", ""), ("f_table_name", layer_name),
                        ("f_geometry_column", "geom"), ("styleName", layer_name), ("styleQML", qml),
                        ("styleSLD", ""), ("useAsDefault", 1), ("description", "Patchwork: classes and their colours"),
                        ("owner", ""), ("ui", "")):
        style.SetField(name, value)
    checked(styles.CreateFeature, style)


@contextmanager
def geopackage_layer(path: str, temporary: str, layer_name: str, srs: osr.SpatialReference | None,
                     geometry_type: int, fields: Sequence[tuple[str, int]], qml: str | None = None):
    """A new GeoPackage layer at `temporary`, yielded inside a transaction, then renamed onto `path`: all or none.

    At the end the transaction is committed, `qml` stored as the layer's default style, and the file renamed; on any
    error (or a cancel) the temporary file is removed.
    """
    ds = layer = None
    try:
        ds = opened(ogr.GetDriverByName("GPKG").CreateDataSource, temporary)
        layer = opened(ds.CreateLayer, layer_name, srs, geometry_type)
        for name, kind in fields:
            checked(layer.CreateField, ogr.FieldDefn(name, kind))
        checked(layer.StartTransaction)
        yield layer
        checked(layer.CommitTransaction)
        if qml:
            store_default_style(ds, layer_name, qml)
        layer = ds = None  # (closing writes the file)
        replace_file(temporary, path)
    except BaseException:
        layer = ds = None
        remove_file(temporary)
        raise


def write_styled_layer(path: str, layer_name: str, crs_wkt: str, geometry_type: int,
                       fields: Sequence[tuple[str, int]], features: Iterable[tuple[Sequence, ogr.Geometry]],
                       qml: str, log: Log | None = None) -> str:
    """A GeoPackage of one layer with its features and `qml` as its default style, all or none.

    `features` are (field values, None for NULL; geometry). The file is written under a temporary name and renamed
    when complete; what killed runs left for `path` is removed first (and logged).
    """
    srs = traditional_srs(crs_wkt) if crs_wkt else None
    with geopackage_layer(path, temporary_sibling(path, log), layer_name, srs, geometry_type, fields, qml) as layer:
        for values, geometry in features:
            feature = ogr.Feature(layer.GetLayerDefn())
            for index, value in enumerate(values):
                if value is None:
                    feature.SetFieldNull(index)
                else:
                    feature.SetField(index, value)
            feature.SetGeometry(geometry)
            checked(layer.CreateFeature, feature)
    return path
