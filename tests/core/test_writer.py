"""The streaming GeoTIFF writer and the staged folder: complete files or nothing."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from patchwork.core import GeoTiffWriter
from patchwork.core.io.writer import StagedFolder
from tests.conftest import files_under

GT = (500000.0, 10.0, 0.0, 4800000.0, 0.0, -10.0)


def test_streamed_windows_make_a_tiled_compressed_geotiff(tmp_path):
    path = str(tmp_path / "out.tif")
    full = np.random.default_rng(0).random((2, 700, 900)).astype(np.float32)
    with GeoTiffWriter(path, 900, 700, 2, np.float32, GT, "", nodata=-1) as writer:
        for row in range(0, 700, 256):  # tile rows, as a streaming classifier writes them
            writer.write(full[:, row : row + 256], row_off=row)
        during = files_under(str(tmp_path))  # still under its temporary name
        assert len(during) == 1 and during[0].startswith(".out.partial-") and during[0].endswith(".tif")
    ds = gdal.Open(path)
    np.testing.assert_array_equal(ds.ReadAsArray(), full)
    assert ds.GetGeoTransform() == GT and ds.GetRasterBand(2).GetNoDataValue() == -1
    assert ds.GetRasterBand(1).GetBlockSize() == [512, 512]
    assert ds.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
    assert files_under(str(tmp_path)) == ["out.tif"]


def test_a_failed_write_leaves_the_earlier_file(tmp_path):
    path = tmp_path / "out.tif"
    path.write_bytes(b"earlier result")
    with pytest.raises(RuntimeError, match="model crashed"):
        with GeoTiffWriter(str(path), 64, 64, 1, np.uint8, GT, "") as writer:
            writer.write(np.ones((1, 32, 64), np.uint8))
            raise RuntimeError("model crashed")
    assert path.read_bytes() == b"earlier result"
    assert files_under(str(tmp_path)) == ["out.tif"]


def test_staged_folder_moves_in_whole_on_commit_and_replaces_only_when_asked(tmp_path):
    target = tmp_path / "chips"
    staged = StagedFolder(str(target))
    assert files_under(str(tmp_path)) == [".chips.lock"]  # one run at a time writes this folder
    with open(staged.staged_path("a.txt"), "w") as fh:
        fh.write("new a")
    with open(staged.staged_path("sub/b.txt"), "w") as fh:
        fh.write("b")
    assert not target.exists()
    staged.commit()
    assert files_under(str(tmp_path)) == ["chips/a.txt", "chips/sub/b.txt"]

    aborted = StagedFolder(str(target), replace=True)
    with open(aborted.staged_path("a.txt"), "w") as fh:
        fh.write("never")
    aborted.abort()
    assert files_under(str(tmp_path)) == ["chips/a.txt", "chips/sub/b.txt"]
    assert (target / "a.txt").read_text() == "new a"

    replacing = StagedFolder(str(target), replace=True)
    with open(replacing.staged_path("c.txt"), "w") as fh:
        fh.write("c")
    replacing.commit()
    assert files_under(str(tmp_path)) == ["chips/c.txt"]  # replaced as a whole: nothing stale survives
