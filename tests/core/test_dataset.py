"""Chip datasets on the real rasters: georeferencing and pixels checked chip by chip."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from patchwork.core import (
    Aoi,
    Cancelled,
    JitteredSampler,
    PatchworkError,
    PoissonDiskSampler,
    RandomSampler,
    RasterSource,
    RegularSampler,
    Window,
    read_index,
    sample_chips,
    write_geotiff,
)
from patchwork.core.geometry import footprint
from patchwork.core.io.raster import same_crs
from tests.conftest import REPO, CancelAfter, files_under, read_all


def assert_chip_matches_source(record, source, gt, fill):
    """The chip's geotransform is the source's shifted to its window, and its pixels are the source window's."""
    chip = gdal.Open(record["image_path"])
    r0, c0, h, w = record["row_off"], record["col_off"], record["height"], record["width"]
    expected_gt = (gt[0] + c0 * gt[1], gt[1], 0.0, gt[3] + r0 * gt[5], 0.0, gt[5])
    np.testing.assert_allclose(chip.GetGeoTransform(), expected_gt, rtol=0, atol=1e-9 * abs(gt[1]))
    pixels = chip.ReadAsArray().reshape(source.shape[0], h, w)
    expected = np.full((source.shape[0], h, w), fill, dtype=source.dtype)
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(r0 + h, source.shape[1]), min(c0 + w, source.shape[2])
    expected[:, rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = source[:, rr0:rr1, cc0:cc1]
    np.testing.assert_array_equal(pixels, expected)
    # Every pixel centre maps to the world position of the source pixel it holds.
    rows, cols = np.mgrid[0:h, 0:w] + 0.5
    cgt = chip.GetGeoTransform()
    x, y = cgt[0] + cols * cgt[1], cgt[3] + rows * cgt[5]
    np.testing.assert_allclose((x - gt[0]) / gt[1] - 0.5, cols - 0.5 + c0, atol=1e-6)
    np.testing.assert_allclose((y - gt[3]) / gt[5] - 0.5, rows - 0.5 + r0, atol=1e-6)
    return chip


def assert_index_polygon_is_chip_footprint(record):
    chip = gdal.Open(record["image_path"])
    ring = footprint(chip.GetGeoTransform(), chip.RasterYSize, chip.RasterXSize)
    polygon = ogr.CreateGeometryFromWkt(record["footprint_wkt"])
    coords = polygon.GetGeometryRef(0).GetPoints()
    np.testing.assert_allclose(np.array(coords)[:, :2], np.array(ring), atol=1e-9)


@pytest.mark.parametrize("boundary", ["shift", "pad", "drop"])
def test_regular_chips_on_sentinel2_equal_the_source_pixel_by_pixel(tmp_path, s2_path, boundary):
    source, gt, wkt, _ = read_all(s2_path)
    result = sample_chips(s2_path, RegularSampler(48), 64, str(tmp_path / "chips"), boundary=boundary, max_nodata=1.0)
    records = read_index(result.index_path)
    assert len(records) == result.chip_count > 0
    fill = np.nan if boundary == "pad" else 0
    for rec in records:
        chip = assert_chip_matches_source(rec, source, gt, fill)
        assert same_crs(chip.GetProjection(), wkt)
        assert_index_polygon_is_chip_footprint(rec)
        assert json.loads(rec["sampler"]) == RegularSampler(48).to_config()
        assert rec["boundary"] == boundary and rec["source"] == os.path.abspath(s2_path)
    if boundary == "drop":
        assert (result.coverage.bottom_rows, result.coverage.right_cols) == ((206 - 64) % 48, (343 - 64) % 48)
    else:
        assert result.coverage.fraction == 1.0
    index = ogr.Open(result.index_path)
    assert index.GetLayer(0).GetName() == "chips"
    assert same_crs(wkt, index.GetLayer(0).GetSpatialRef().ExportToWkt())


def test_stochastic_chips_on_naip_and_their_nodata(tmp_path, naip_path):
    source, gt, _, nodata = read_all(naip_path)
    result = sample_chips(naip_path, PoissonDiskSampler(60, count=30, seed=4), 96, str(tmp_path / "c"),
                          max_nodata=0.0)
    records = read_index(result.index_path)
    assert result.chip_count == 30 == len(records)
    for rec in records:
        assert_chip_matches_source(rec, source, gt, 0)
        chip = gdal.Open(rec["image_path"])
        assert chip.GetRasterBand(1).GetNoDataValue() == nodata
        assert chip.GetRasterBand(1).DataType == gdal.GDT_Byte
        assert rec["seed"] == 4 and rec["nodata_fraction"] == 0.0


def test_same_seed_same_dataset_other_seed_other_chips(tmp_path, naip_path):
    def run(seed, name):
        res = sample_chips(naip_path, RandomSampler(15, seed=seed), 64, str(tmp_path / name))
        return [(r["row_off"], r["col_off"]) for r in read_index(res.index_path)]

    a, b, c = run(1, "a"), run(1, "b"), run(2, "c")
    assert a == b and a != c
    for name in ("a", "b"):
        assert files_under(str(tmp_path / name)) == files_under(str(tmp_path / "a"))
    np.testing.assert_array_equal(gdal.Open(str(tmp_path / "a/images/chip_000007.tif")).ReadAsArray(),
                                  gdal.Open(str(tmp_path / "b/images/chip_000007.tif")).ReadAsArray())


def test_alpha_mask_of_the_orthophoto_counts_as_nodata(tmp_path, ortho_path):
    src = RasterSource(ortho_path)
    alpha = src.dataset.GetRasterBand(4).ReadAsArray()
    data, valid = src.read(Window(-10, -10, 300, 300), bands=[1, 2, 3])
    np.testing.assert_array_equal(valid[10:, 10:], alpha[:290, :290] > 0)
    assert not valid[:10].any() and not valid[:, :10].any()
    assert data.shape == (3, 300, 300)
    result = sample_chips(ortho_path, RegularSampler(128), 128, str(tmp_path / "o"), max_nodata=0.0)
    for rec in read_index(result.index_path):
        r, c = rec["row_off"], rec["col_off"]
        assert (alpha[r : r + 128, c : c + 128] > 0).all()


def _labels_for(path, tmp_path, shift_x=0.0):
    src = RasterSource(path)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (src.height, src.width)).astype(np.uint8)
    gt = list(src.geotransform)
    gt[0] += shift_x
    out = str(tmp_path / f"labels{shift_x}.tif")
    write_geotiff(out, labels, tuple(gt), src.crs_wkt)
    return out, labels


def test_label_chips_follow_the_image_windows(tmp_path, naip_path):
    label_path, labels = _labels_for(naip_path, tmp_path)
    result = sample_chips(naip_path, JitteredSampler(100, 0.5, seed=1), 80, str(tmp_path / "c"),
                          labels=label_path, boundary="pad", max_nodata=1.0)
    for rec in read_index(result.index_path):
        lab = gdal.Open(rec["label_path"])
        img = gdal.Open(rec["image_path"])
        assert lab.GetGeoTransform() == img.GetGeoTransform()
        r, c = rec["row_off"], rec["col_off"]
        expected = np.full((80, 80), 255, np.uint8)  # labels without nodata are padded with 255
        rr0, cc0, rr1, cc1 = max(r, 0), max(c, 0), min(r + 80, labels.shape[0]), min(c + 80, labels.shape[1])
        expected[rr0 - r : rr1 - r, cc0 - c : cc1 - c] = labels[rr0:rr1, cc0:cc1]
        np.testing.assert_array_equal(lab.ReadAsArray(), expected)


def test_aoi_in_another_crs_restricts_chips(tmp_path, naip_path):
    src = RasterSource(naip_path)
    gt = src.geotransform
    # A polygon over the raster's upper-left quarter, given in WGS 84 lon/lat.
    x0, y0 = gt[0] + 50 * gt[1], gt[3] + 40 * gt[5]
    x1, y1 = gt[0] + 450 * gt[1], gt[3] + 360 * gt[5]
    utm = osr.SpatialReference(src.crs_wkt)
    wgs = osr.SpatialReference()
    wgs.ImportFromEPSG(4326)
    for s in (utm, wgs):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    poly = ogr.CreateGeometryFromWkt(f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))")
    poly.Transform(osr.CoordinateTransformation(utm, wgs))
    aoi = Aoi([poly.ExportToWkt()], wgs.ExportToWkt())
    result = sample_chips(naip_path, RandomSampler(20, seed=3), 64, str(tmp_path / "c"), aoi=aoi, max_nodata=0.0)
    assert result.chip_count == 20
    inside = aoi.transformed(src.crs_wkt)
    for rec in read_index(result.index_path):
        window = Window(rec["row_off"], rec["col_off"], 64, 64)
        assert inside.inside_mask(gt, window).all()
        assert 35 <= window.row_off and window.row_end <= 365 and 45 <= window.col_off and window.col_end <= 455


def _assert_nothing_written(tmp_path, before):
    assert files_under(str(tmp_path)) == before


def test_errors_are_clear_and_write_nothing(tmp_path, naip_path, s2_path, example_path):
    out = str(tmp_path / "out")
    sample_chips(naip_path, RandomSampler(3, seed=1), 64, out)  # an earlier dataset the errors must not touch
    before = files_under(str(tmp_path))
    earlier = {f: (tmp_path / f).read_bytes() for f in before}

    src = RasterSource(naip_path)
    nocrs = str(tmp_path / "nocrs.tif")
    write_geotiff(nocrs, src.read(Window(0, 0, 50, 50))[0], src.geotransform, "")
    before_nocrs = files_under(str(tmp_path))
    with pytest.raises(PatchworkError, match="has no CRS.*Assign"):
        sample_chips(nocrs, RegularSampler(16), 16, out)
    _assert_nothing_written(tmp_path, before_nocrs)
    os.remove(nocrs)

    for boundary in ("shift", "drop"):
        with pytest.raises(PatchworkError, match="larger than the raster.*BOUNDARY=pad"):
            sample_chips(s2_path, RegularSampler(256), 256, out, boundary=boundary)
    _assert_nothing_written(tmp_path, before)

    far = Aoi(["POLYGON((0 0,1 0,1 1,0 1,0 0))"], src.crs_wkt)
    with pytest.raises(PatchworkError, match="do not overlap the raster"):
        sample_chips(naip_path, RegularSampler(64), 64, out, aoi=far)
    _assert_nothing_written(tmp_path, before)

    label_path, _ = _labels_for(naip_path, tmp_path, shift_x=5.0)
    before_labels = files_under(str(tmp_path))
    with pytest.raises(PatchworkError, match="not on the grid.*Align rasters"):
        sample_chips(naip_path, RegularSampler(64), 64, out, labels=label_path)
    _assert_nothing_written(tmp_path, before_labels)
    os.remove(label_path)

    with pytest.raises(PatchworkError, match="permission denied|cannot write|has 0 bytes free"):
        sample_chips(naip_path, RegularSampler(64), 64, "/proc/patchwork-chips")
    (tmp_path / "afile").write_text("x")
    before_file = files_under(str(tmp_path))
    with pytest.raises(PatchworkError, match="is a file"):
        sample_chips(naip_path, RegularSampler(64), 64, str(tmp_path / "afile"))
    _assert_nothing_written(tmp_path, before_file)
    os.remove(tmp_path / "afile")

    with pytest.raises(PatchworkError, match="no chip passed the filters.*Raise MAX_NODATA"):
        sample_chips(example_path, RegularSampler(100), 600, out, max_nodata=0.0, overwrite=True)
    _assert_nothing_written(tmp_path, before)
    assert {f: (tmp_path / f).read_bytes() for f in before} == earlier


def test_cancel_mid_run_leaves_earlier_files_untouched(tmp_path, naip_path):
    out = tmp_path / "chips"
    first = sample_chips(naip_path, RegularSampler(64), 64, str(out), max_nodata=1.0)
    snapshot = {f: (out / f).read_bytes() for f in files_under(str(out))}
    feedback = CancelAfter(5)
    with pytest.raises(Cancelled):
        sample_chips(naip_path, RegularSampler(32), 64, str(out), max_nodata=1.0, overwrite=True, feedback=feedback)
    assert len(feedback.progress) == 5 and feedback.progress[-1] < 100
    assert files_under(str(out)) == sorted(snapshot)
    assert {f: (out / f).read_bytes() for f in files_under(str(out))} == snapshot
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []
    assert first.chip_count == len(read_index(first.index_path))


def test_index_elsewhere_and_dataset_manifest(tmp_path, s2_path):
    index = str(tmp_path / "sub" / "index.gpkg")
    result = sample_chips(s2_path, PoissonDiskSampler(40, seed=2), 32, str(tmp_path / "chips"), index)
    assert result.index_path == index and os.path.exists(index)
    manifest = json.loads((tmp_path / "chips" / "dataset.json").read_text())
    assert manifest["chip_count"] == result.chip_count
    assert manifest["config"]["sampler"] == PoissonDiskSampler(40, seed=2).to_config()
    assert manifest["index"] == index
    with pytest.raises(PatchworkError, match="GeoPackage"):
        sample_chips(s2_path, RegularSampler(32), 32, str(tmp_path / "x"), str(tmp_path / "x.shp"))


def test_core_imports_without_qt_or_qgis():
    code = ("import sys, patchwork.core, patchwork.core.io.example, patchwork.core.io.quicklook; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('qgis', 'PyQt5', 'PyQt6', 'sip')]; "
            "assert not bad, bad; print('ok')")
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, ".build", "pkgroot"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_unwritable_index_folder_leaves_no_staging_behind(tmp_path, s2_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(PatchworkError, match="is a file, not a folder"):
        sample_chips(s2_path, RegularSampler(32), 32, str(tmp_path / "chips"), str(tmp_path / "afile" / "i.gpkg"))
    assert files_under(str(tmp_path)) == ["afile"]


def test_four_band_byte_chips_are_not_tagged_alpha_unless_the_source_band_was(tmp_path, naip_path, ortho_path):
    """GDAL makes any 4 byte bands RGB + alpha by default: NAIP's near-infrared band would read as transparency."""
    from patchwork.core import augment_chips

    def tags(path):
        ds = gdal.Open(path)
        names = [gdal.GetColorInterpretationName(ds.GetRasterBand(b).GetColorInterpretation())
                 for b in range(1, ds.RasterCount + 1)]
        return names, ds.GetRasterBand(1).GetMaskFlags()

    naip = sample_chips(naip_path, RegularSampler(step=200), 64, str(tmp_path / "naip"))
    chip = read_index(naip.index_path)[0]["image_path"]
    names, mask = tags(chip)
    assert "Alpha" not in names and names[0] == "Gray"
    assert mask == gdal.GMF_NODATA  # the source's nodata (0) only, as in the source
    augmented = augment_chips(naip.index_path, "geometric", str(tmp_path / "naip_aug"), copies=1)
    assert "Alpha" not in tags(read_index(augmented.index_path)[0]["image_path"])[0]
    ortho = sample_chips(ortho_path, RegularSampler(step=400), 64, str(tmp_path / "ortho"))
    assert tags(read_index(ortho.index_path)[0]["image_path"])[0] == ["Red", "Green", "Blue", "Alpha"]  # as source


def test_writing_chips_does_not_list_their_folder_per_chip(tmp_path, naip_path, monkeypatch):
    """A sweep for dead runs' debris lists a folder: once per output, not once per chip (n chips cost n² names)."""
    from patchwork.core.io import partials

    listed = []
    real_listdir = os.listdir
    monkeypatch.setattr(partials.os, "listdir", lambda path: listed.append(path) or real_listdir(path))
    result = sample_chips(naip_path, RegularSampler(step=40), 16, str(tmp_path / "chips"))
    assert result.chip_count > 300 and len(listed) <= 4
