"""A chip dataset as a training loop reads it: items by index, augmented on the fly, reproducible in any worker.

Duck-typed for PyTorch (`__len__`, `__getitem__`) without importing it: items are numpy arrays, which
`torch.utils.data.default_collate` turns into tensors.
"""
from __future__ import annotations

import threading

import numpy as np

from ..errors import PatchworkError
from .augment import Augmentation, Compose, Sample, chip_seed, load_pipeline
from .chips import ChipPool, index_crs_wkt, read_chip, read_index, read_manifest, valid_pixels
from .mixing import Mixing


class ChipDataset:
    """The chips of a chip index, each item augmented with a stream of its own.

    Item i of epoch e is augmented with the seed derived from (seed, chip id, e): the same in any worker
    process and in any order, so a DataLoader with several workers gives the same batches for the same seed and
    epoch, and new draws for the next epoch (call `set_epoch` before each, as with a DistributedSampler).
    """

    def __init__(self, index: str, pipeline: Augmentation | str | None = None, seed: int = 0,
                 standardize: bool = False, cache_bytes: int = 0) -> None:
        """Read the index (the chips themselves are read when asked for).

        Args:
            index: A chip index written by `sample_chips` or `augment_chips`.
            pipeline: An augmentation, or its JSON config, a .json path or a preset name; None: the chips as they
                are.
            seed: The seed every item's augmentation is derived from.
            standardize: Give images as float32 (value − mean) / std per band, with the dataset's band statistics
                (dataset.json), after augmentation; invalid pixels become 0.
            cache_bytes: Keep the chips read, up to this many bytes, so that later epochs do not read their files
                again (0: none). The cache stays in this process: a copy sent to a worker starts without it.

        Raises:
            PatchworkError: An index without chips, a pipeline that cannot be read, or `standardize` for a dataset
                without band statistics.
        """
        self.records = read_index(index)
        if not self.records:
            raise PatchworkError(f"INPUT: the chip index '{index}' has no chips.")
        self.crs_wkt = index_crs_wkt(index)
        pipeline = load_pipeline(pipeline) if isinstance(pipeline, str) else pipeline
        if isinstance(pipeline, (Compose, Mixing)):
            pipeline = pipeline.with_pool(ChipPool(self.records))  # CutMix and MixUp donors: this dataset's chips
        self.pipeline = pipeline
        self.seed = int(seed)
        self.epoch = 0
        self.band_statistics = read_manifest(index).get("band_statistics") or []
        self.standardization = _standardization(self.band_statistics, index) if standardize else None
        self.cache_bytes = int(cache_bytes)
        self._kept: dict[int, Sample] = {}  # chips read, by number (never changed: augmentations make new arrays)
        self._kept_bytes = 0
        self._kept_lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_kept": {}, "_kept_bytes": 0, "_kept_lock": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._kept_lock = threading.Lock()

    def _read(self, i: int) -> Sample:
        """Chip `i` as read from its files, or from the cache; the cache's copy is never handed out."""
        kept = self._kept.get(i)
        if kept is not None:
            return kept.replace(image=kept.image.copy(), label=None if kept.label is None else kept.label.copy())
        sample = read_chip(self.records[i])
        size = sample.image.nbytes + (sample.label.nbytes if sample.label is not None else 0)
        with self._kept_lock:
            if self._kept_bytes + size <= self.cache_bytes and i not in self._kept:
                self._kept[i] = sample.replace(image=sample.image.copy(),
                                               label=None if sample.label is None else sample.label.copy())
                self._kept_bytes += size
        return sample

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Draw the augmentations of epoch `epoch` from now on."""
        self.epoch = int(epoch)

    def __getitem__(self, i: int) -> dict:
        """Chip `i`: image (C, H, W), valid (H, W), geotransform, crs_wkt, chip_id.

        With label chips also label (H, W) and label_valid (H, W: where the label is not its nodata).
        """
        if not -len(self) <= i < len(self):
            raise IndexError(f"chip {i} of a dataset of {len(self)}")
        record = self.records[i]
        sample = self._read(i % len(self))
        if self.pipeline is not None:
            sample = self.pipeline(sample, seed=chip_seed(self.seed, record["chip_id"], self.epoch))
        valid = valid_pixels(sample)
        image = sample.image
        if self.standardization is not None:
            mean, std = self.standardization
            image = (image.astype(np.float32) - mean) / std
            np.copyto(image, 0.0, where=~valid)
        item = {"image": image, "valid": valid,
                "geotransform": np.asarray(sample.geotransform, np.float64), "crs_wkt": sample.crs_wkt,
                "chip_id": int(record["chip_id"])}
        if sample.label is not None:  # (a None would stop a DataLoader's default collate)
            item["label"] = sample.label
            labelled = np.ones(sample.label.shape[-2:], bool)
            if sample.label_nodata is not None and sample.label.ndim == 2:
                labelled = sample.label != sample.label_nodata
            item["label_valid"] = labelled
        return item


def _standardization(statistics: list[dict], index: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std shaped (C, 1, 1) as float32; a constant band keeps std 1."""
    if not statistics or not all(band.get("count") for band in statistics):
        raise PatchworkError(f"INPUT: '{index}' has no band statistics in its dataset.json to standardise with; "
                             "sample (or augment) the chips again with this version of Patchwork.")
    mean = np.array([band["mean"] for band in statistics], np.float32).reshape(-1, 1, 1)
    std = np.array([band["std"] or 1.0 for band in statistics], np.float32).reshape(-1, 1, 1)
    return mean, std
