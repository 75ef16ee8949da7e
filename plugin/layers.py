"""QGIS layers -> the plain values the core takes: geometries in a CRS, label polygons with their classes, point and
line samplers, a raster layer's grid. Used by the algorithms and the panel alike."""
from __future__ import annotations

from qgis.core import NULL, QgsCoordinateTransform, QgsVectorLayer


def geometries_in_crs(source, target, transform_context, field: str | None = None):
    """A layer's or feature source's geometries as WKT in CRS `target` (when valid), that CRS as WKT, and each
    feature's `field` value."""
    source_crs = source.crs() if isinstance(source, QgsVectorLayer) else source.sourceCrs()
    transform = None
    if target.isValid() and source_crs.isValid() and source_crs != target:
        transform = QgsCoordinateTransform(source_crs, target, transform_context)
    wkts, values = [], []
    for feature in source.getFeatures():
        geom = feature.geometry()
        if geom.isNull():
            continue
        if transform is not None:
            geom.transform(transform)
        wkts.append(geom.asWkt(17))
        if field:
            value = feature[field]
            values.append(None if value is None or value == NULL else value)
    crs = target if target.isValid() else source_crs
    return wkts, crs.toWkt(), values


def location_sampler(name: str, wkts: list[str], geotransform, spacing: float, raster_size: tuple[int, int]):
    """The points sampler on point WKTs, or the lines sampler on line WKTs every `spacing` px (on the raster)."""
    from ..core.data.sampling import PointSampler, points_along_lines

    if name == "points":
        return PointSampler.from_map_wkt(wkts, geotransform)
    return PointSampler(points_along_lines(wkts, spacing, geotransform, raster_size))


def raster_geotransform(layer) -> tuple:
    """A north-up raster layer's GDAL geotransform, from its extent and size."""
    extent = layer.extent()
    return (extent.xMinimum(), layer.rasterUnitsPerPixelX(), 0.0, extent.yMaximum(), 0.0,
            -layer.rasterUnitsPerPixelY())


def vector_labels(layer, field: str, raster_crs, transform_context, all_touched: bool = False,
                  background: int | None = None):
    """VectorLabels of a polygon layer's `field`, in the raster's CRS, with its categorized style's names and
    colours (the Sample algorithm's and the panel's)."""
    from ..core.io.labels import VectorLabels

    wkts, crs_wkt, values = geometries_in_crs(layer, raster_crs, transform_context, field)
    colours, names = categories(layer, field)
    return VectorLabels(wkts, values, crs_wkt, all_touched=all_touched, background=background, colours=colours,
                        names=names)


def categories(layer, field: str) -> tuple[dict, dict]:
    """Colours and legend names by class value, when the layer has a categorized style on `field`."""
    renderer = layer.renderer()
    if renderer is None or renderer.type() != "categorizedSymbol" or renderer.classAttribute() != field:
        return {}, {}
    colours, names = {}, {}
    for category in renderer.categories():
        value = category.value()
        if category.symbol() is not None:
            colours[value] = category.symbol().color().name()
        if category.label():
            names[value] = category.label()
    return colours, names


def labels_with_places(labels: QgsVectorLayer, field: str, places: QgsVectorLayer, place_field: str,
                       pixel: tuple[float, float], names: dict[int, str], path: str, transform_context) -> int:
    """The label polygons and each labelled place's pixel, as one GeoPackage of label polygons (layer "labels").

    `places` are points at pixel centres (Suggest what to label next) whose `place_field` holds a class value; each
    labelled one becomes the square of its pixel (`pixel`: its width and height in the places' CRS) with that class,
    in the labels' CRS. A text class field takes the class's name (`names`), a number field the value. The labels
    are copied as they are. Returns how many places were added.
    """
    from osgeo import ogr
    from qgis.core import QgsGeometry, QgsRectangle

    from ..core.io.vectors import write_styled_layer

    index = labels.fields().indexOf(field)
    as_text = not labels.fields().at(index).isNumeric()
    to_labels = QgsCoordinateTransform(places.crs(), labels.crs(), transform_context)
    half_x, half_y = abs(pixel[0]) / 2, abs(pixel[1]) / 2

    def as_multipolygon(geometry) -> ogr.Geometry:
        return ogr.ForceToMultiPolygon(ogr.CreateGeometryFromWkt(geometry.asWkt(17)))

    rows = [((None if feature[field] in (None, NULL) else feature[field],), as_multipolygon(feature.geometry()))
            for feature in labels.getFeatures() if not feature.geometry().isNull()]
    added = 0
    for feature in places.getFeatures():
        value = feature[place_field]
        if value in (None, NULL) or feature.geometry().isNull():
            continue
        centre = feature.geometry().asPoint()
        square = QgsGeometry.fromRect(QgsRectangle(centre.x() - half_x, centre.y() - half_y, centre.x() + half_x,
                                                   centre.y() + half_y))
        square.transform(to_labels)
        rows.append(((names.get(int(value), str(value)) if as_text else int(value),), as_multipolygon(square)))
        added += 1
    write_styled_layer(path, "labels", labels.crs().toWkt(), ogr.wkbMultiPolygon,
                       ((field, ogr.OFTString if as_text else ogr.OFTInteger),), rows, "")
    return added
