"""A chip dataset as a training loop reads it: items by index, augmented on the fly, reproducible in any worker.

Duck-typed for PyTorch (`__len__`, `__getitem__`) without importing it: items are numpy arrays, which
`torch.utils.data.default_collate` turns into tensors.
"""
from __future__ import annotations

import numpy as np

from .augment import Augmentation, Compose, Mixing, chip_seed, load_pipeline
from .augmented import ChipPool, index_crs_wkt, read_chip, valid_pixels
from .dataset import read_index
from .errors import PatchworkError


class ChipDataset:
    """The chips of a chip index, each item augmented with a stream of its own.

    Item i of epoch e is augmented with the seed derived from (seed, chip id, e): the same in any worker
    process and in any order, so a DataLoader with several workers gives the same batches for the same seed and
    epoch, and new draws for the next epoch (call `set_epoch` before each, as with a DistributedSampler).
    """

    def __init__(self, index: str, pipeline: Augmentation | str | None = None, seed: int = 0) -> None:
        """Read the index (the chips themselves are read when asked for).

        Args:
            index: A chip index written by `sample_chips` or `augment_chips`.
            pipeline: An augmentation, or its JSON config, a .json path or a preset name; None: the chips as they
                are.
            seed: The seed every item's augmentation is derived from.

        Raises:
            PatchworkError: An index without chips, or a pipeline that cannot be read.
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

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Draw the augmentations of epoch `epoch` from now on."""
        self.epoch = int(epoch)

    def __getitem__(self, i: int) -> dict:
        """Chip `i`: image (C, H, W), label (H, W; with label chips), valid (H, W), geotransform, crs_wkt, chip_id."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"chip {i} of a dataset of {len(self)}")
        record = self.records[i]
        sample = read_chip(record)
        if self.pipeline is not None:
            sample = self.pipeline(sample, seed=chip_seed(self.seed, record["chip_id"], self.epoch))
        item = {"image": sample.image, "valid": valid_pixels(sample),
                "geotransform": np.asarray(sample.geotransform, np.float64), "crs_wkt": sample.crs_wkt,
                "chip_id": int(record["chip_id"])}
        if sample.label is not None:  # (a None would stop a DataLoader's default collate)
            item["label"] = sample.label
        return item
