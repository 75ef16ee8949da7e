"""A chip dataset as a training loop reads it: items by index, augmented on the fly, reproducible in any worker.

Duck-typed for PyTorch (`__len__`, `__getitem__`) without importing it: items are numpy arrays, which
`torch.utils.data.default_collate` turns into tensors.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from ..errors import PatchworkError
from .augment import Augmentation, Compose, Sample, chip_seed, load_pipeline
from .chips import (
    ChipPool,
    dataset_classes,
    index_crs_wkt,
    read_chip,
    read_chip_and_bands,
    read_index,
    read_manifest,
    valid_pixels,
)
from .mixing import Mixing
from .stats import pooled_statistics


class ChipDataset:
    """The chips of one chip index or several, each item augmented with a stream of its own.

    Item i of epoch e is augmented with the seed derived from (seed, chip id, e) — and the index's number after
    the first, so that chips of two indexes with the same id draw apart: the same in any worker process and in any
    order, so a DataLoader with several workers gives the same batches for the same seed and epoch, and new draws
    for the next epoch (call `set_epoch` before each, as with a DistributedSampler).
    """

    def __init__(self, index: str | Sequence[str], pipeline: Augmentation | str | None = None, seed: int = 0,
                 standardize: bool = False, cache_bytes: int = 0) -> None:
        """Read the indexes (the chips themselves are read when asked for).

        Args:
            index: A chip index written by `sample_chips` or `augment_chips`, or several: their chips must agree on
                bands (count, type, names) and their classes on names; each record's `index_number` says which.
            pipeline: An augmentation, or its JSON config, a .json path or a preset name; None: the chips as they
                are.
            seed: The seed every item's augmentation is derived from.
            standardize: Give images as float32 (value − mean) / std per band, with the dataset's band statistics
                (dataset.json), after augmentation; invalid pixels become 0.
            cache_bytes: Keep the chips read, up to this many bytes, so that later epochs do not read their files
                again (0: none). The cache stays in this process: a copy sent to a worker starts without it.

        Raises:
            PatchworkError: An index without chips, indexes that disagree, a pipeline that cannot be read, or
                `standardize` for a dataset without band statistics.
        """
        self.indexes = [index] if isinstance(index, str) else list(index)
        if not self.indexes:
            raise PatchworkError("INPUT: give a chip index.")
        self.records = []
        for number, path in enumerate(self.indexes):
            records = read_index(path)
            if not records:
                raise PatchworkError(f"INPUT: the chip index '{path}' has no chips.")
            self.records += [{**record, "index_number": number} for record in records]
        self.classes = _agreeing_classes(self.indexes, self.records)
        self.crs_wkts = [index_crs_wkt(path) for path in self.indexes]  # each index's chips' CRS (not read per chip)
        self.crs_wkt = self.crs_wkts[0]
        pipeline = load_pipeline(pipeline) if isinstance(pipeline, str) else pipeline
        if isinstance(pipeline, (Compose, Mixing)):
            pipeline = pipeline.with_pool(ChipPool(self.records))  # CutMix and MixUp donors: this dataset's chips
        self.pipeline = pipeline
        self.seed = int(seed)
        self.epoch = 0
        statistics = [read_manifest(path).get("band_statistics") or [] for path in self.indexes]
        self.band_statistics = pooled_statistics(statistics) if all(statistics) else []
        self.standardization = _standardization(self.band_statistics, self.indexes) if standardize else None
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
        record = self.records[i]
        sample = read_chip(record, self.crs_wkts[record["index_number"]] or None)
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
        """Chip `i`: image (C, H, W), valid (H, W), geotransform, crs_wkt, chip_id, index_number (of its index).

        With label chips also label (H, W) and label_valid (H, W: where the label is not its nodata).
        """
        if not -len(self) <= i < len(self):
            raise IndexError(f"chip {i} of a dataset of {len(self)}")
        record = self.records[i]
        sample = self._read(i % len(self))
        if self.pipeline is not None:
            seed = chip_seed(self.seed, record["chip_id"], self.epoch, record["index_number"])
            sample = self.pipeline(sample, seed=seed)
        valid = valid_pixels(sample)
        image = sample.image
        if self.standardization is not None:
            mean, std = self.standardization
            image = (image.astype(np.float32) - mean) / std
            np.copyto(image, 0.0, where=~valid)
        item = {"image": image, "valid": valid,
                "geotransform": np.asarray(sample.geotransform, np.float64), "crs_wkt": sample.crs_wkt,
                "chip_id": int(record["chip_id"]), "index_number": int(record["index_number"])}
        if sample.label is not None:  # (a None would stop a DataLoader's default collate)
            item["label"] = sample.label
            labelled = np.ones(sample.label.shape[-2:], bool)
            if sample.label_nodata is not None and sample.label.ndim == 2:
                labelled = sample.label != sample.label_nodata
            item["label_valid"] = labelled
        return item


def _agreeing_classes(indexes: list[str], records: list[dict]) -> dict[int, tuple[str, str | None]]:
    """The classes of several indexes taken together; refuses indexes whose chips or classes disagree.

    Chips must have the same bands (count, data type, names where both name them): a network or a classifier reads
    band k as the same thing in every chip. A class value must have one name; an index may lack some classes.
    """
    classes = dataset_classes(indexes[0])
    if len(indexes) == 1:
        return classes
    first = {}
    for record in records:
        first.setdefault(record["index_number"], record)
    reference, (names, _) = read_chip_and_bands(first[0])
    for number, path in enumerate(indexes[1:], 1):
        sample, (other_names, _) = read_chip_and_bands(first[number])
        problem = None
        if sample.image.shape[0] != reference.image.shape[0]:
            problem = f"{sample.image.shape[0]} bands, where '{indexes[0]}' has {reference.image.shape[0]}"
        elif sample.image.dtype != reference.image.dtype:
            problem = f"{sample.image.dtype} pixels, where '{indexes[0]}' has {reference.image.dtype}"
        elif all(names) and all(other_names) and list(names) != list(other_names):
            problem = f"the bands {', '.join(other_names)}, where '{indexes[0]}' has {', '.join(names)}"
        if problem:
            raise PatchworkError(f"INPUT: the chip indexes disagree: '{path}' has {problem}. Give indexes sampled "
                                 "from rasters with the same bands, in the same order.")
        for value, (name, colour) in dataset_classes(path).items():
            known = classes.setdefault(value, (name, colour))[0]
            if known.casefold() != name.casefold():
                raise PatchworkError(f"INPUT: the chip indexes disagree on class {value}: '{known}' in one, "
                                     f"'{name}' in '{path}'. Sample them with the same class values "
                                     "(LABEL_FIELD and its classes).")
    return classes


def _standardization(statistics: list[dict], indexes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std shaped (C, 1, 1) as float32; a constant band keeps std 1."""
    if not statistics or not all(band.get("count") for band in statistics):
        lacking = "' or '".join(indexes)
        raise PatchworkError(f"INPUT: '{lacking}' has no band statistics in its dataset.json to standardise with; "
                             "sample (or augment) the chips again with this version of Patchwork.")
    mean = np.array([band["mean"] for band in statistics], np.float32).reshape(-1, 1, 1)
    std = np.array([band["std"] or 1.0 for band in statistics], np.float32).reshape(-1, 1, 1)
    return mean, std
