"""Label chips burnt from polygons in another CRS equal gdal.Rasterize of the same polygons on each chip's grid."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from patchwork.core import PatchworkError, RasterSource, RegularSampler, VectorLabels, read_index, sample_chips

CATEGORIES = ["water", "crop", "forest"]


def polygons_in_wgs84(naip_path: str, path: str) -> str:
    """Overlapping polygons over the NAIP scene (UTM 14N), written in EPSG:4326 with an integer and a text class."""
    with RasterSource(naip_path) as src:
        x0, px, _, y0, _, py = src.geotransform
        utm = osr.SpatialReference()
        utm.ImportFromWkt(src.crs_wkt)
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    for srs in (utm, wgs84):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_wgs84 = osr.CoordinateTransformation(utm, wgs84)
    rng = np.random.default_rng(7)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    layer = ds.CreateLayer("labels", wgs84, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("code", ogr.OFTInteger))
    layer.CreateField(ogr.FieldDefn("landcover", ogr.OFTString))
    for i in range(40):  # irregular pentagons, some overlapping, some across the raster's edge
        cx, cy = x0 + px * rng.uniform(-50, 984), y0 + py * rng.uniform(-50, 773)
        r = rng.uniform(60, 500)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 5))
        ring = ogr.Geometry(ogr.wkbLinearRing)
        for a in [*angles, angles[0]]:
            ring.AddPoint_2D(cx + r * np.cos(a), cy + r * np.sin(a))
        polygon = ogr.Geometry(ogr.wkbPolygon)
        polygon.AddGeometry(ring)
        polygon.Transform(to_wgs84)
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(polygon)
        feature.SetField("code", int(i % 3))
        feature.SetField("landcover", CATEGORIES[i % 3])
        layer.CreateFeature(feature)
    ds = None
    return path


def rasterized(path: str, field: str, chip: str, all_touched: bool) -> np.ndarray:
    """gdal.Rasterize of the layer's `field` onto the chip's grid (GDAL reprojects the polygons itself)."""
    reference = gdal.Open(chip)
    mem = gdal.GetDriverByName("MEM").Create("", reference.RasterXSize, reference.RasterYSize, 1, gdal.GDT_Byte)
    mem.SetGeoTransform(reference.GetGeoTransform())
    mem.SetProjection(reference.GetProjection())
    mem.GetRasterBand(1).Fill(255)
    gdal.Rasterize(mem, path, attribute=field, allTouched=all_touched)
    return mem.ReadAsArray()


@pytest.mark.parametrize("all_touched", [False, True])
def test_label_chips_equal_gdal_rasterize_pixel_by_pixel(tmp_path, naip_path, all_touched):
    gpkg = polygons_in_wgs84(naip_path, str(tmp_path / "labels.gpkg"))
    labels = VectorLabels.from_file(gpkg, "code", all_touched=all_touched)
    result = sample_chips(naip_path, RegularSampler(step=96), 96, str(tmp_path / "chips"), labels=labels)
    records = read_index(result.index_path)
    assert len(records) == 80
    labelled = 0
    for record in records:
        chip = gdal.Open(record["label_path"])
        found = chip.ReadAsArray()
        np.testing.assert_array_equal(found, rasterized(gpkg, "code", record["label_path"], all_touched))
        assert chip.GetRasterBand(1).GetNoDataValue() == 255
        labelled += int((found != 255).sum())
    assert labelled > 0.1 * 80 * 96 * 96  # the test covers real labels, not empty chips


def test_text_categories_become_ids_with_names_kept_in_the_chips_and_the_dataset(tmp_path, naip_path):
    gpkg = polygons_in_wgs84(naip_path, str(tmp_path / "labels.gpkg"))
    labels = VectorLabels.from_file(gpkg, "landcover", colours={"water": "#2c7bb6"})
    result = sample_chips(naip_path, RegularSampler(step=200), 64, str(tmp_path / "chips"), labels=labels)
    classes = json.load(open(os.path.join(result.out_dir, "dataset.json")))["classes"]
    assert [(c["id"], c["name"]) for c in classes] == [(0, "crop"), (1, "forest"), (2, "water")]  # sorted names
    record = read_index(result.index_path)[0]
    by_code = rasterized(gpkg, "code", record["label_path"], False)  # code 0 water, 1 crop, 2 forest
    expected = np.choose(np.minimum(by_code, 3), [2, 0, 1, 255]).astype(np.uint8)
    chip = gdal.Open(record["label_path"])
    np.testing.assert_array_equal(chip.ReadAsArray(), expected)
    assert chip.GetRasterBand(1).GetMetadataItem("CLASS_2") == "water"  # names inside the label chips


def test_a_background_class_and_bad_fields_are_handled(tmp_path, naip_path):
    gpkg = polygons_in_wgs84(naip_path, str(tmp_path / "labels.gpkg"))
    labels = VectorLabels.from_file(gpkg, "code", background=9)
    result = sample_chips(naip_path, RegularSampler(step=300), 64, str(tmp_path / "chips"), labels=labels)
    values = np.unique(np.concatenate([gdal.Open(r["label_path"]).ReadAsArray().ravel()
                                       for r in read_index(result.index_path)]))
    assert 9 in values and 255 not in values  # unlabelled pixels are the background class
    with pytest.raises(PatchworkError, match="has no field 'kind'; it has code, landcover"):
        VectorLabels.from_file(gpkg, "kind")
    with pytest.raises(PatchworkError, match="label polygons are needed, got a POINT"):
        VectorLabels(["POINT (1 2)"], [1], "")


@pytest.mark.parametrize("index_elsewhere", [False, True])
def test_a_model_trained_on_polygon_labels_names_its_classes_after_them(tmp_path, naip_path, index_elsewhere):
    """The class table goes from the polygons through (augmented) chips into the trained model, also when the
    indexes are written outside their chip folders (Processing's temporary OUTPUT: the shipped workflow model
    trained "class 0, class 1, class 2" from named polygons)."""
    from patchwork.core import augment_chips, load_model, train_classifier

    gpkg = polygons_in_wgs84(naip_path, str(tmp_path / "labels.gpkg"))
    labels = VectorLabels.from_file(gpkg, "landcover", colours={"water": "#2c7bb6"})
    elsewhere = tmp_path / "indexes"
    elsewhere.mkdir()
    chips = sample_chips(naip_path, RegularSampler(step=96), 96, str(tmp_path / "chips"), labels=labels,
                         index_path=str(elsewhere / "chips.gpkg") if index_elsewhere else None)
    augmented = augment_chips(chips.index_path, "geometric", str(tmp_path / "augmented"), copies=1,
                              index_path=str(elsewhere / "augmented.gpkg") if index_elsewhere else None)
    assert (os.path.dirname(augmented.index_path) == str(elsewhere)) == index_elsewhere
    model = str(tmp_path / "model.onnx")
    train_classifier(augmented.index_path, model, parameters={"n_estimators": 10})
    info = load_model(model).info
    assert info.class_names == ["crop", "forest", "water"]
    assert info.class_colors[2] == "#2c7bb6"


def test_each_run_counts_chips_and_label_pixels_per_class(tmp_path, naip_path):
    gpkg = polygons_in_wgs84(naip_path, str(tmp_path / "labels.gpkg"))
    result = sample_chips(naip_path, RegularSampler(step=96), 96, str(tmp_path / "chips"),
                          labels=VectorLabels.from_file(gpkg, "code"))
    chips = [gdal.Open(r["label_path"]).ReadAsArray() for r in read_index(result.index_path)]
    values, counts = np.unique(np.concatenate([c.ravel() for c in chips]), return_counts=True)
    expected_pixels = {str(v): int(n) for v, n in zip(values, counts) if v != 255}
    centres = [int(c[48, 48]) for c in chips if c[48, 48] != 255]
    expected_chips = {str(v): centres.count(v) for v in sorted(set(centres))}
    assert result.class_counts == {"chips_per_class": expected_chips, "label_pixels": expected_pixels}
    manifest = json.load(open(os.path.join(result.out_dir, "dataset.json")))
    assert manifest["label_pixels"] == expected_pixels and manifest["chips_per_class"] == expected_chips


def test_an_index_elsewhere_takes_only_the_manifest_that_names_it(tmp_path, naip_path):
    """The chip folder's dataset.json belongs to an index written elsewhere only when it names that index: a copy
    of the index (whose chips are the same files) gets no classes rather than another dataset's."""
    import shutil

    from patchwork.core.data.chips import read_manifest

    gpkg = polygons_in_wgs84(naip_path, str(tmp_path / "labels.gpkg"))
    index = str(tmp_path / "chips.gpkg")
    sample_chips(naip_path, RegularSampler(step=192), 96, str(tmp_path / "chips"), index_path=index,
                 labels=VectorLabels.from_file(gpkg, "landcover"))
    assert [c["name"] for c in read_manifest(index)["classes"]] == sorted(CATEGORIES) and \
        not os.path.exists(tmp_path / "dataset.json")
    shutil.copy(index, tmp_path / "copy.gpkg")
    assert read_manifest(str(tmp_path / "copy.gpkg")) == {}
