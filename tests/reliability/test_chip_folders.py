"""A chip folder holds one dataset: reuse is refused, OVERWRITE replaces it whole, one run at a time writes it."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from osgeo import gdal

from patchwork.core import PatchworkError, RandomSampler, RegularSampler, read_index, sample_chips
from tests.cli.test_qgis_process import qgis_env, qgis_process  # noqa: F401 - fixture
from tests.conftest import files_under
from tests.hostile import start_qgis_process, wait_for_entry


def test_reusing_a_dataset_folder_is_refused_and_overwrite_leaves_no_stale_chip(tmp_path, naip_path):
    out = tmp_path / "chips"
    first = sample_chips(naip_path, RegularSampler(64), 64, str(out))
    before = {f: (out / f).read_bytes() for f in files_under(str(out))}
    with pytest.raises(PatchworkError, match="already holds a chip dataset.*OVERWRITE"):
        sample_chips(naip_path, RandomSampler(5, seed=2), 128, str(out))
    assert {f: (out / f).read_bytes() for f in files_under(str(out))} == before

    second = sample_chips(naip_path, RandomSampler(5, seed=2), 128, str(out), overwrite=True)
    records = read_index(second.index_path)
    assert first.chip_count > 5 and second.chip_count == len(records) == 5
    on_disk = sorted(f for f in files_under(str(out)) if f.startswith("images/"))
    assert on_disk == sorted(os.path.relpath(r["image_path"], out) for r in records)  # no stale chip
    assert {gdal.Open(str(out / f)).RasterXSize for f in on_disk} == {128}
    assert json.loads((out / "dataset.json").read_text())["chip_count"] == 5
    assert [e for e in os.listdir(tmp_path) if e.startswith(".")] == []


def test_folders_that_are_not_a_dataset_are_never_emptied(tmp_path, naip_path):
    other = tmp_path / "documents"
    other.mkdir()
    (other / "thesis.docx").write_text("years of work")
    for overwrite in (False, True):
        with pytest.raises(PatchworkError, match="holds no chip dataset"):
            sample_chips(naip_path, RandomSampler(2), 64, str(other), overwrite=overwrite)
    mixed = tmp_path / "mixed"
    sample_chips(naip_path, RandomSampler(2), 64, str(mixed))
    (mixed / "notes.txt").write_text("mine")
    with pytest.raises(PatchworkError, match="holds notes.txt, which Patchwork.s chip dataset there does not list"):
        sample_chips(naip_path, RandomSampler(2), 64, str(mixed), overwrite=True)
    assert (other / "thesis.docx").read_text() == "years of work" and (mixed / "notes.txt").read_text() == "mine"


def test_two_concurrent_runs_into_one_folder_one_is_refused(tmp_path, naip_path, qgis_env):  # noqa: F811
    out = tmp_path / "chips"
    slow = start_qgis_process(qgis_env, "patchwork:samplechips", f"INPUT={naip_path}", "SAMPLER=3", "CHIP_SIZE=16",
                              "COUNT=10000", f"OUTPUT_DIR={out}", f"OUTPUT={tmp_path / 'a.gpkg'}")
    wait_for_entry(str(tmp_path), ".chips.partial-", slow)
    second = qgis_process(qgis_env, "run", "patchwork:samplechips", "--", f"INPUT={naip_path}", "SAMPLER=3",
                          "CHIP_SIZE=16", "COUNT=10", f"OUTPUT_DIR={out}", f"OUTPUT={tmp_path / 'b.gpkg'}")
    assert slow.wait(timeout=600) == 0, slow.stdout.read()
    assert second.returncode != 0 and "another Patchwork run (pid" in second.stdout + second.stderr
    assert len(read_index(str(tmp_path / "a.gpkg"))) == 10000 and not (tmp_path / "b.gpkg").exists()
    assert len(os.listdir(out / "images")) == 10000


def test_a_stale_lock_is_reported_and_taken_over_a_foreign_one_explained(tmp_path, naip_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / ".chips.lock"
    host = socket.gethostname()
    lock.write_text(json.dumps({"host": host, "pid": dead.pid, "started": "yesterday"}))
    log = []
    feedback = type("Log", (), {"set_progress": lambda s, p: None, "is_cancelled": lambda s: False,
                                "info": lambda s, m: log.append(m)})()
    result = sample_chips(naip_path, RandomSampler(2), 64, str(tmp_path / "chips"), feedback=feedback)
    assert result.chip_count == 2 and not lock.exists()
    assert any(f"left by a run that died (pid {dead.pid})" in m for m in log)
    lock.write_text(json.dumps({"host": "another-machine", "pid": 12, "started": "now"}))
    with pytest.raises(PatchworkError, match="locked by a Patchwork run on the machine 'another-machine'.*delete"):
        sample_chips(naip_path, RandomSampler(2), 64, str(tmp_path / "chips"), overwrite=True)
    lock.unlink()


def _coco_like(folder) -> dict:
    """A dataset Patchwork did not write, laid out like one: dataset.json, images/, labels/."""
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    (folder / "images" / "IMG_0001.jpg").write_bytes(b"a photo")
    (folder / "labels" / "IMG_0001.json").write_text("{}")
    (folder / "dataset.json").write_text(json.dumps({"info": {"description": "COCO"}, "images": [],
                                                     "annotations": []}))
    return {f: (folder / f).read_bytes() for f in files_under(str(folder))}


def test_overwrite_never_deletes_a_folder_patchwork_did_not_write(tmp_path, naip_path):
    """#29 item 4: a COCO-style folder, a manifest naming a sibling as its index, a note inside images/."""
    coco = tmp_path / "coco"
    before = _coco_like(coco)
    with pytest.raises(PatchworkError, match="not the manifest of a Patchwork chip dataset.*Nothing was deleted"):
        sample_chips(naip_path, RandomSampler(2), 64, str(coco), overwrite=True)
    assert {f: (coco / f).read_bytes() for f in files_under(str(coco))} == before

    documents = tmp_path / "Documents"
    documents.mkdir()
    (documents / "letter.txt").write_text("keep me")
    pointing = tmp_path / "pointing"
    pointing.mkdir()
    (pointing / "dataset.json").write_text(json.dumps({"config": {}, "chip_count": 0, "index": "Documents"}))
    os.symlink(documents, pointing / "Documents")
    with pytest.raises(PatchworkError, match="is not a chip index file"):
        sample_chips(naip_path, RandomSampler(2), 64, str(pointing), overwrite=True)
    (pointing / "dataset.json").write_text(json.dumps({"config": {}, "chip_count": 0, "index": str(documents)}))
    with pytest.raises(PatchworkError, match="is not a chip index file"):
        sample_chips(naip_path, RandomSampler(2), 64, str(pointing), overwrite=True)
    assert (documents / "letter.txt").read_text() == "keep me"

    real = tmp_path / "real"
    sample_chips(naip_path, RandomSampler(3, seed=1), 64, str(real))
    (real / "images" / "notes.txt").write_text("field notes")
    with pytest.raises(PatchworkError, match="holds images/notes.txt"):
        sample_chips(naip_path, RandomSampler(2), 64, str(real), overwrite=True)
    assert (real / "images" / "notes.txt").read_text() == "field notes"
    (real / "images" / "notes.txt").unlink()
    assert sample_chips(naip_path, RandomSampler(2), 64, str(real), overwrite=True).chip_count == 2


def test_an_index_that_cannot_be_renamed_keeps_the_earlier_dataset_and_index(tmp_path, naip_path, monkeypatch):
    """#29 item 5: with the index outside the chip folder, the earlier dataset was deleted before the index was
    renamed; a failure there lost both. Now the folder swap waits for the index."""
    from patchwork.core.data import chips

    out, index = tmp_path / "chips", tmp_path / "index.gpkg"
    sample_chips(naip_path, RandomSampler(6, seed=1), 64, str(out), str(index))
    before = {f: (tmp_path / f).read_bytes() for f in files_under(str(tmp_path))}

    def fail(src, dst):
        raise PatchworkError(f"OUTPUT: cannot rename onto '{dst}' (simulated)")
    monkeypatch.setattr(chips, "replace_file", fail)
    with pytest.raises(PatchworkError, match="simulated"):
        sample_chips(naip_path, RandomSampler(2, seed=2), 64, str(out), str(index), overwrite=True)
    assert {f: (tmp_path / f).read_bytes() for f in files_under(str(tmp_path))} == before
