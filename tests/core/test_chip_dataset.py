"""ChipDataset: what a PyTorch DataLoader reads, reproducible across worker processes and new every epoch."""
from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from multiprocessing import get_context

import numpy as np
import pytest

from patchwork.core import ChipDataset, PatchworkError, RegularSampler, classify, sample_chips
from tests.conftest import REPO

RULES = os.path.join(REPO, "resources", "models", "ndvi_ndwi_rules.json")


def load(dataset: ChipDataset, epoch: int, i: int) -> dict:
    """What a DataLoader worker does: its own copy of the dataset, told the epoch, asked for an item."""
    dataset.set_epoch(epoch)
    return dataset[i]


@pytest.fixture(scope="module")
def index(tmp_path_factory, s2_path):
    folder = tmp_path_factory.mktemp("chip_dataset")
    labels = classify(s2_path, RULES, str(folder / "labels.tif"), scale=1e-4).output
    return sample_chips(s2_path, RegularSampler(step=48), 48, str(folder / "chips"), labels=labels).index_path


def test_items_are_the_same_in_any_worker_and_order_and_new_each_epoch(index):
    dataset = ChipDataset(index, "default", seed=5)
    n = len(dataset)
    assert n == 5 * 8  # 206 x 343 px in 48 px chips, the last row and column shifted
    imported = subprocess.run([sys.executable, "-c", "import sys; from patchwork.core import ChipDataset, "
                               "train_segmentation; print('torch' in sys.modules)"], capture_output=True, text=True,
                              env=os.environ)
    assert imported.stdout.strip() == "False", imported.stderr  # torch only when a network is trained
    with get_context("spawn").Pool(2) as pool:  # fresh processes, as DataLoader workers on every platform
        forward = pool.starmap(load, [(dataset, 0, i) for i in range(n)])
        backward = pool.starmap(load, [(dataset, 0, i) for i in reversed(range(n))])[::-1]
        next_epoch = pool.starmap(load, [(dataset, 1, i) for i in range(n)])
    here = [load(dataset, 0, i) for i in range(n)]
    for a, b, c in zip(forward, backward, here):
        for key in ("image", "label", "valid", "geotransform"):
            np.testing.assert_array_equal(a[key], b[key])
            np.testing.assert_array_equal(a[key], c[key])
    changed = sum(not np.array_equal(a["image"], b["image"]) for a, b in zip(forward, next_epoch))
    assert changed >= n - 2  # another epoch, other draws (the default pipeline's noise alone changes them)


def test_items_are_arrays_a_default_collate_stacks(index):
    dataset = ChipDataset(index, "geometric", seed=1)
    item = dataset[3]
    assert item["image"].shape == (4, 48, 48) and item["image"].dtype == np.float64  # the scene's own type
    assert item["label"].shape == (48, 48) and item["valid"].shape == (48, 48) and item["valid"].dtype == bool
    assert item["geotransform"].shape == (6,) and item["crs_wkt"] and item["chip_id"] == 3
    batch = {key: np.stack([dataset[i][key] for i in range(4)]) for key in ("image", "label", "valid")}
    assert batch["image"].shape == (4, 4, 48, 48)
    # labels move with the image: every label pixel is still the rules' class of its image pixel
    from patchwork.core import load_model

    rules = load_model(RULES)
    pixels = (item["image"].reshape(4, -1).T * 1e-4).astype(np.float64)
    expected = rules.predict_pixels(pixels).reshape(48, 48)
    np.testing.assert_array_equal(item["label"][item["valid"]], expected[item["valid"]])
    assert pickle.loads(pickle.dumps(dataset))[3]["chip_id"] == 3
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_standardised_items_use_the_datasets_band_statistics(index, tmp_path):
    dataset = ChipDataset(index, standardize=True)
    stats = dataset.band_statistics
    assert len(stats) == 4 and all(band["count"] > 0 for band in stats)
    images = np.stack([dataset[i]["image"] for i in range(len(dataset))])
    valid = np.stack([dataset[i]["valid"] for i in range(len(dataset))])
    assert images.dtype == np.float32
    for band in range(4):  # the chips' own statistics: mean 0 and std 1 over their valid pixels
        values = images[:, band][valid].astype(np.float64)
        assert abs(values.mean()) < 1e-4 and abs(values.std() - 1) < 1e-4
    raw = ChipDataset(index)[0]["image"]
    np.testing.assert_allclose(dataset[0]["image"][0], (raw[0] - stats[0]["mean"]) / stats[0]["std"], rtol=1e-5,
                               atol=1e-5)
    (tmp_path / "copy").mkdir()
    bare = tmp_path / "copy" / "index.gpkg"  # an index without its dataset.json
    shutil.copy(index, bare)
    with pytest.raises(PatchworkError, match="no band statistics"):
        ChipDataset(str(bare), standardize=True)


def test_a_cached_dataset_gives_the_same_items_and_its_cache_is_never_changed(index):
    plain, cached = ChipDataset(index, "default", seed=2), ChipDataset(index, "default", seed=2, cache_bytes=10**8)
    for epoch in (0, 1, 0):  # epoch 0 again after epoch 1's draws: the kept chips were not changed by them
        for dataset in (plain, cached):
            dataset.set_epoch(epoch)
        for i in range(len(plain)):
            a, b = plain[i], cached[i]
            np.testing.assert_array_equal(a["image"], b["image"])
            np.testing.assert_array_equal(a["label"], b["label"])
            b["image"][...] = 0  # a caller that writes into its item leaves the cache as it was
    assert len(cached._kept) == len(cached) and cached._kept_bytes <= 10**8
    assert pickle.loads(pickle.dumps(cached))._kept == {}  # a worker's copy starts empty
    small = ChipDataset(index, None, cache_bytes=1)
    small[0]
    assert small._kept == {}  # over the budget: read each time


def test_one_index_read_twice_draws_apart_and_chips_keep_their_source(index):
    once, twice = ChipDataset(index, "geometric", seed=4), ChipDataset([index, index], "geometric", seed=4)
    n = len(once)
    assert len(twice) == 2 * n and [twice[i]["index_number"] for i in (0, n - 1, n, 2 * n - 1)] == [0, 0, 1, 1]
    for i in range(n):  # the first index's chips draw as they do alone
        np.testing.assert_array_equal(twice[i]["image"], once[i]["image"])
    differ = sum(not np.array_equal(twice[i]["image"], twice[n + i]["image"]) for i in range(n))
    assert differ >= n // 2  # the same chip id in the second index: its own draws (7 of 8 geometric draws move it)
    assert twice.band_statistics == [{k: pytest.approx(v) for k, v in band.items() if k in (
        "count", "mean", "std", "min", "max")} | {"count": 2 * band["count"]} for band in once.band_statistics]
