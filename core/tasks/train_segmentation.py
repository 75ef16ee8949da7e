"""Train a segmentation network from a chip index (patchwork:trainsegmentation), augmented while it learns.

A compact U-Net written here in plain PyTorch (no weights downloaded) learns per-pixel classes from image and label
chips. Every batch is drawn through `ChipDataset`, so an augmentation pipeline gives new draws each epoch,
reproducible per (SEED, epoch, chip). Validation chips are held out by space: chips in blocks of four chip sides,
and chips that overlap, go to one side together, so neighbours do not leak. Pixels that are nodata in the image or
the label never count in the loss; classes are weighted by the inverse of their pixel counts. The best epoch (least
validation loss) is kept, and training stops when the validation loss has not improved for PATIENCE epochs.

The network is exported as ONNX (dynamic batch, the chips' tile, opset 17) with Deepness's metadata (model_type
Segmentor, class_names, resolution, tiles_size, tiles_overlap, standardization_mean/std) and Patchwork's (band
count, input scale, class values and colours, provenance), so that Deepness and patchwork:classify run it alike.
8-bit chips are fed as Deepness feeds 8-bit rasters (values / 255, then the standardisation); other chips as their
values, standardised. torch is imported only here, when a run starts.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from osgeo import osr

from ..data.augment import load_pipeline
from ..data.chip_dataset import ChipDataset
from ..data.chips import index_crs_wkt, read_chip
from ..dependencies import require
from ..errors import PatchworkError, reports_errors
from ..io.partials import write_file_atomically
from ..io.paths import check_outputs
from ..progress import Feedback, SilentFeedback, check_cancelled
from .segmentation_report import segmentation_report

DEVICES = ("auto", "cpu", "cuda")
ARCHITECTURES = ("unet",)
IGNORE = -1  # the loss's ignore index: nodata pixels, in the image or the label
BLOCK_CHIPS = 4  # validation is held out in square blocks of this many chip sides
CHIP_CACHE_BYTES = 512 * 1024**2  # chips kept in memory after the first epoch reads them (a dataset's first 512 MB)


@dataclass
class SegmentationResult:
    """What a training run made and measured."""

    output: str
    device: str
    class_values: list[int]
    class_names: list[str]
    epochs_run: int
    best_epoch: int
    history: list[dict] = field(default_factory=list)  # per epoch: train_loss, val_loss, val_accuracy, val_miou
    val_accuracy: float = float("nan")
    val_miou: float = float("nan")
    iou: list[float] = field(default_factory=list)  # per class, at the best epoch
    f1: list[float] = field(default_factory=list)
    confusion: np.ndarray | None = None  # rows: reference, columns: predicted, at the best epoch
    seconds: float = 0.0
    input_scale: float = 1.0  # what the chips' values were multiplied by (1/255 for 8-bit): Classify's SCALE


def spatial_split(records: list[dict], validation_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Chip numbers for training and validation, apart on the ground.

    Each scene (the raster a chip was cut from, its record's `source`) is cut into square blocks of BLOCK_CHIPS chip
    sides; each chip belongs to the block of its centre (augmented copies of a chip with it). Whole blocks are held
    out, in a random order (SEED), until about `validation_fraction` of the chips are; training chips that overlap a
    validation chip of their scene are left out, so that no validation pixel is also a training pixel.
    """
    n = len(records)
    if validation_fraction <= 0:
        return list(range(n)), []
    boxes = np.array([[r["row_off"], r["col_off"], r["row_off"] + r["height"], r["col_off"] + r["width"]]
                      for r in records], float)
    side = BLOCK_CHIPS * float(np.median(boxes[:, 2] - boxes[:, 0]))
    scene = np.array([r["source"] for r in records])
    block_of = [(s, int((r0 + r1) / 2 // side), int((c0 + c1) / 2 // side))
                for s, (r0, c0, r1, c1) in zip(scene, boxes)]
    blocks = sorted(set(block_of))
    if len(blocks) < 2:
        raise PatchworkError("INPUT: all chips lie in one block of the scene, so none can be held out for validation "
                             "apart from the rest. Sample chips over a larger area, or set VALIDATION_FRACTION to 0.")
    held_blocks: set = set()
    held = 0
    for b in np.random.default_rng(seed).permutation(len(blocks)).tolist():
        if held >= validation_fraction * n or len(held_blocks) == len(blocks) - 1:
            break
        held_blocks.add(blocks[b])
        held += sum(1 for k in block_of if k == blocks[b])
    validation = [i for i in range(n) if block_of[i] in held_blocks]
    v, v_scene = boxes[validation], scene[validation]
    training = [i for i in range(n) if block_of[i] not in held_blocks and not np.any(
        (v_scene == scene[i]) & (v[:, 0] < boxes[i, 2]) & (v[:, 2] > boxes[i, 0]) & (v[:, 1] < boxes[i, 3])
        & (v[:, 3] > boxes[i, 1]))]
    if not training:
        raise PatchworkError("INPUT: every training chip overlaps a validation chip; sample chips that overlap less "
                             "(a larger STEP), or set VALIDATION_FRACTION to 0.")
    return training, validation


def build_unet(torch, in_channels: int, n_classes: int, width: int = 16):
    """A compact U-Net: two poolings (tiles a multiple of 4 px), batch norm, skip connections, class scores."""
    nn = torch.nn

    def block(i: int, o: int):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                             nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w = width
            self.enc1, self.enc2, self.enc3 = block(in_channels, w), block(w, 2 * w), block(2 * w, 4 * w)
            self.pool = nn.MaxPool2d(2)
            self.up2, self.dec2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2), block(4 * w, 2 * w)
            self.up1, self.dec1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2), block(2 * w, w)
            self.head = nn.Conv2d(w, n_classes, 1)

        def forward(self, x):
            e1 = self.enc1(x)
            e2 = self.enc2(self.pool(e1))
            e3 = self.enc3(self.pool(e2))
            d2 = self.dec2(torch.cat([self.up2(e3), e2], 1))
            return self.head(self.dec1(torch.cat([self.up1(d2), e1], 1)))

    return UNet()


@dataclass
class _Data:
    """The chips as the network sees them: class values → indices, input scaling and standardisation."""

    dataset: ChipDataset
    lut: dict[int, int]
    scale: float
    mean: np.ndarray
    std: np.ndarray
    tile: int

    def batch(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(N, C, t, t) float32 network input and (N, t, t) int64 targets (IGNORE where not labelled)."""
        images, targets = [], []
        for i in indices:
            item = self.dataset[i]
            x = (item["image"].astype(np.float32) * np.float32(self.scale) - self.mean) / self.std
            np.copyto(x, 0.0, where=~item["valid"])
            target = np.full(item["label"].shape, IGNORE, np.int64)
            for value, index in self.lut.items():
                target[item["label"] == value] = index
            target[~item["valid"] | ~item["label_valid"]] = IGNORE
            images.append(x)
            targets.append(target)
        return np.stack(images), np.stack(targets)


def _chip_classes(records: list[dict], feedback: Feedback) -> tuple[dict[int, int], int, np.dtype]:
    """Each class value's labelled pixels over the label chips, the chips' side and image type; refuses mixed chips."""
    counts: dict[int, int] = {}
    sides, dtypes = set(), set()
    for number, record in enumerate(records):
        if number % 50 == 0:
            check_cancelled(feedback)
        chip = read_chip(record)
        if chip.label is None or chip.label.ndim != 2:
            raise PatchworkError("INPUT: a segmentation network learns from label chips; this chip index has "
                                 f"{'none' if chip.label is None else 'soft labels'} (chip {record['chip_id']}). "
                                 "Sample chips with LABELS.")
        sides.add(chip.image.shape[1:])
        dtypes.add(chip.image.dtype)
        labelled = chip.label if chip.label_nodata is None else chip.label[chip.label != chip.label_nodata]
        values, n = np.unique(labelled, return_counts=True)
        for v, c in zip(values.tolist(), n.tolist()):
            counts[int(v)] = counts.get(int(v), 0) + int(c)
    if len(sides) > 1:
        raise PatchworkError(f"INPUT: the chips have several sizes ({sorted(sides)}); a network is trained on one "
                             "tile size. Sample the chips with one CHIP_SIZE.")
    side = next(iter(sides))
    if side[0] != side[1] or side[0] % 4:
        raise PatchworkError(f"INPUT: the chips are {side[1]} x {side[0]} px; the U-Net needs square chips whose side "
                             "is a multiple of 4 px (e.g. 64).")
    if len(counts) < 2:
        raise PatchworkError(f"INPUT: the label chips hold {len(counts)} class; a segmentation network needs two or "
                             "more.")
    return counts, side[0], next(iter(dtypes)) if len(dtypes) == 1 else np.dtype(np.float32)


def _scores(confusion: np.ndarray) -> tuple[float, float, list[float], list[float]]:
    """Overall accuracy, mean IoU, per-class IoU and F1 from a confusion matrix (classes never seen: NaN)."""
    tp = np.diag(confusion).astype(float)
    fp, fn = confusion.sum(0) - tp, confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (tp + fp + fn)
        f1 = 2 * tp / (2 * tp + fp + fn)
    total = confusion.sum()
    return (float(tp.sum() / total) if total else float("nan"), float(np.nanmean(iou)) if np.isfinite(iou).any()
            else float("nan"), iou.tolist(), f1.tolist())


def _pick_device(torch, device: str) -> str:
    if device not in DEVICES:
        raise PatchworkError(f"DEVICE: '{device}' — use one of {', '.join(DEVICES)}.")
    if device == "cuda" and not torch.cuda.is_available():
        raise PatchworkError("DEVICE: this PyTorch sees no CUDA GPU. Use auto or cpu, or install a CUDA build of "
                             "PyTorch (see the README).")
    return "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)


@reports_errors
def train_segmentation(index: str | Sequence[str], output_model: str, *, pipeline: str | None = None, epochs: int = 30,
                       batch_size: int = 8, learning_rate: float = 0.003, validation_fraction: float = 0.2,
                       patience: int = 6, seed: int = 0, device: str = "auto", architecture: str = "unet",
                       report: str | None = None, feedback: Feedback | None = None,
                       check_only: bool = False) -> SegmentationResult | None:
    """Train a U-Net on the image and label chips of `index` and write it to `output_model` (ONNX).

    Args:
        index: A chip index with label chips (Sample chips with LABELS, or Augment chips of one), or several that
            agree on bands and classes (e.g. chips of several scenes).
        output_model: The ONNX model to write (replaced only when the run completes).
        pipeline: An augmentation pipeline (JSON, a .json file or a preset name) drawn on every batch; None: none.
        epochs: The most passes over the training chips.
        batch_size: Chips per step.
        learning_rate: Adam's step size.
        validation_fraction: The share of chips held out, by blocks of the scene, to measure the network.
        patience: Stop when the validation loss has not improved for this many epochs (the best epoch is kept).
        seed: The same seed gives the same network on the CPU.
        device: "auto" (CUDA when PyTorch sees it, else the CPU), "cpu" or "cuda".
        architecture: "unet" (the compact U-Net above).
        report: An HTML report to write too: curves, confusion matrix, per-class IoU and F1, settings, examples.
        feedback: Progress per batch, losses per epoch, cancel.
        check_only: Make the checks a run makes before it trains, then return None.

    Returns:
        The model written, the device, the classes, each epoch's losses and scores, and the best epoch's.

    Raises:
        PatchworkError: Bad input or settings, or PyTorch missing (with how to install it); nothing is written.
        Cancelled: `feedback` asked to stop; nothing is written.
    """
    feedback = feedback or SilentFeedback()
    started = time.perf_counter()
    for name, value, low in (("EPOCHS", epochs, 1), ("BATCH_SIZE", batch_size, 1), ("PATIENCE", patience, 1)):
        if not isinstance(value, int) or value < low:
            raise PatchworkError(f"{name}: give a whole number of at least {low}, not {value!r}.")
    if not 0 <= validation_fraction < 1 or not learning_rate > 0:
        raise PatchworkError("VALIDATION_FRACTION, LEARNING_RATE: a fraction from 0 to below 1, and a step above 0.")
    if architecture not in ARCHITECTURES:
        raise PatchworkError(f"ARCHITECTURE: '{architecture}' — Patchwork trains {', '.join(ARCHITECTURES)}.")
    if not output_model.lower().endswith(".onnx"):
        raise PatchworkError("OUTPUT_MODEL: the network is written as ONNX: give it a .onnx name.")
    indexes = [index] if isinstance(index, str) else list(index)
    if len({os.path.realpath(path) for path in indexes}) < len(indexes):
        raise PatchworkError("INPUT: a chip index is given twice, which would count its chips twice; give each once.")
    check_outputs({"OUTPUT_MODEL": output_model, "OUTPUT_REPORT": report}, {"INPUT": indexes})
    augmentation = load_pipeline(pipeline) if pipeline else None
    if augmentation is not None and "MixUp" in json.dumps(augmentation.to_config()):
        raise PatchworkError("PIPELINE: MixUp blends labels into class weights, which this trainer does not take; "
                             "remove MixUp (CutMix keeps whole labels).")
    torch = require("torch", "Training a segmentation network")
    chips = ChipDataset(indexes, None, seed, cache_bytes=CHIP_CACHE_BYTES)  # (refuses indexes that disagree)
    records = chips.records
    counts, tile, dtype = _chip_classes(records, feedback)
    training, validation = spatial_split(records, validation_fraction, seed)
    run_on = _pick_device(torch, device)
    if check_only:
        return None
    values = sorted(counts)
    names_colours = chips.classes
    names = [names_colours.get(v, (f"class {v}", None))[0] for v in values]
    scale = 1 / 255 if dtype == np.uint8 else 1.0
    statistics = chips.band_statistics
    mean = np.array([b.get("mean", 0.0) * scale for b in statistics] or [0.0], np.float32).reshape(-1, 1, 1)
    # (a constant band, e.g. an alpha band, keeps std 1: its standardised value is 0)
    std = np.array([(b.get("std") or 0.0) * scale or 1.0 for b in statistics] or [1.0], np.float32).reshape(-1, 1, 1)
    data = _Data(ChipDataset(indexes, augmentation, seed, cache_bytes=CHIP_CACHE_BYTES),
                 {v: i for i, v in enumerate(values)}, scale, mean, std, tile)
    plain = _Data(chips, data.lut, scale, mean, std, tile)
    n_bands = read_chip(records[0]).image.shape[0]
    weights = np.array([counts[v] for v in values], float)
    weights = weights.sum() / (len(weights) * weights)  # inverse frequency, mean 1 over the classes
    if len(indexes) > 1:
        feedback.info(f"{len(indexes)} chip indexes: " + ", ".join(
            f"{os.path.basename(path)} ({sum(r['index_number'] == k for r in records)} chips)"
            for k, path in enumerate(indexes)))
    feedback.info(f"Training a U-Net on {run_on}: {len(training)} chips of {tile} px ({n_bands} bands), "
                  f"{len(validation)} held out by blocks of the scene ({len(records) - len(training) - len(validation)}"
                  " left out for overlapping them); classes "
                  + ", ".join(f"{n} ({counts[v]:,} px)" for v, n in zip(values, names)))
    deterministic = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):  # the caller's random state and settings stay as they were
        try:
            torch.manual_seed(seed)
            torch.use_deterministic_algorithms(True, warn_only=True)
            result, best = _fit(torch, data, plain, training, validation, weights, n_bands, len(values), run_on,
                                epochs, batch_size, learning_rate, patience, seed, feedback)
        finally:
            torch.use_deterministic_algorithms(deterministic)
        result.output, result.class_values, result.class_names = output_model, values, names
        result.input_scale = scale
        metadata = _metadata(indexes, records, tile, values, names, names_colours, n_bands, scale, mean, std, seed,
                             result)
        write_file_atomically(output_model, _onnx(torch, best, n_bands, tile, metadata))
    result.seconds = time.perf_counter() - started
    if report:
        settings = {"chip index" if len(indexes) == 1 else "chip indexes": ", ".join(indexes),
                    "chips (training / validation)": f"{len(training)} / {len(validation)}",
                    "tile": f"{tile} px, {n_bands} bands", "pipeline": pipeline or "none", "epochs (at most)": epochs,
                    "batch size": batch_size, "learning rate": learning_rate, "patience": patience, "seed": seed,
                    "input": f"values × {scale:.6g}, standardised per band"}
        colours = [names_colours.get(v, ("", None))[1] for v in values]
        write_file_atomically(report, segmentation_report(result, settings, _examples(torch, best, plain, validation),
                                                          colours).encode("utf-8"))
    feedback.info(f"Best epoch {result.best_epoch} of {result.epochs_run}: validation accuracy "
                  f"{result.val_accuracy:.3f}, mean IoU {result.val_miou:.3f}; model written to '{output_model}'.")
    return result


def _fit(torch, data: _Data, plain: _Data, training: list[int], validation: list[int], weights: np.ndarray,
         n_bands: int, n_classes: int, device: str, epochs: int, batch_size: int, learning_rate: float,
         patience: int, seed: int, feedback: Feedback):
    """The training loop; the network of the best epoch (least validation loss, else the last) and the scores."""
    net = build_unet(torch, n_bands, n_classes).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate)
    loss_of = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=device),
                                        ignore_index=IGNORE)
    result = SegmentationResult("", device, [], [], 0, 0)
    best_loss, best_state, stale = float("inf"), None, 0
    steps = -(-len(training) // batch_size)
    for epoch in range(epochs):
        data.dataset.set_epoch(epoch)
        order = np.random.default_rng([seed, epoch]).permutation(training).tolist()
        net.train()
        total, began = 0.0, time.perf_counter()
        for step, (x, y) in enumerate(_read_ahead(data, order, batch_size, feedback)):
            optimiser.zero_grad()
            loss = loss_of(net(torch.from_numpy(x).to(device)), torch.from_numpy(y).to(device))
            if torch.isfinite(loss):  # (a batch with no labelled pixel has no loss)
                loss.backward()
                optimiser.step()
                total += loss.item()
            feedback.set_progress(100.0 * (epoch * steps + step + 1) / (epochs * steps))
        seconds = time.perf_counter() - began
        val_loss, confusion = _validate(torch, net, plain, validation or training, loss_of, n_classes, batch_size,
                                        device)
        accuracy, miou, iou, f1 = _scores(confusion)
        result.history.append({"epoch": epoch + 1, "train_loss": total / steps, "val_loss": val_loss,
                               "val_accuracy": accuracy, "val_miou": miou, "train_seconds": seconds})
        feedback.info(f"Epoch {epoch + 1}: training loss {total / steps:.4f}, validation loss {val_loss:.4f}, "
                      f"accuracy {accuracy:.3f}, mean IoU {miou:.3f} ({len(training) / seconds:.0f} chips/s)")
        result.epochs_run = epoch + 1
        if val_loss < best_loss:
            best_loss, stale = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            result.best_epoch, result.val_accuracy, result.val_miou = epoch + 1, accuracy, miou
            result.iou, result.f1, result.confusion = iou, f1, confusion
        else:
            stale += 1
            if stale >= patience:
                feedback.info(f"Stopped after epoch {epoch + 1}: no better validation loss for {patience} epochs.")
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    return result, net.to("cpu").eval()


def _read_ahead(data: _Data, order: list[int], batch_size: int, feedback: Feedback):
    """The batches of `order`, each read and prepared on a thread while the network learns from the one before.

    PyTorch computes without the GIL, so reading overlaps learning; a cancel is heard before each batch.
    """
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    with ThreadPoolExecutor(1, thread_name_prefix="patchwork-chips") as reader:
        pending = reader.submit(data.batch, batches[0])
        for following in [*batches[1:], None]:
            check_cancelled(feedback)
            ready = pending.result()
            if following is not None:
                pending = reader.submit(data.batch, following)
            yield ready


def _validate(torch, net, data: _Data, chips: list[int], loss_of, n_classes: int, batch_size: int, device: str):
    """The mean validation loss and the confusion matrix over the held-out chips (as they are, not augmented)."""
    net.eval()
    confusion = np.zeros((n_classes, n_classes), np.int64)
    losses, pixels = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(chips), batch_size):
            x, y = data.batch(chips[start : start + batch_size])
            scores = net(torch.from_numpy(x).to(device))
            target = torch.from_numpy(y).to(device)
            labelled = int((target != IGNORE).sum())
            if labelled:
                losses += float(loss_of(scores, target)) * labelled
                pixels += labelled
            predicted = scores.argmax(1).cpu().numpy()
            keep = y != IGNORE
            confusion += np.bincount(y[keep] * n_classes + predicted[keep],
                                     minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    return (losses / pixels if pixels else float("nan")), confusion


def _examples(torch, net, data: _Data, chips: list[int], count: int = 6) -> list[tuple]:
    """A few validation chips as (image, label indices, predicted indices), −1 where not labelled."""
    picked = chips[:: max(1, len(chips) // count)][:count]
    if not picked:
        return []
    x, y = data.batch(picked)
    with torch.no_grad():
        predicted = net(torch.from_numpy(x)).argmax(1).numpy()
    return [(read_chip(data.dataset.records[i]).image, y[k], predicted[k]) for k, i in enumerate(picked)]


def _onnx(torch, net, n_bands: int, tile: int, metadata: dict) -> bytes:
    """The network with a softmax, as ONNX: input [batch, bands, tile, tile], class probabilities out."""
    onnx = require("onnx", "Exporting a trained network to ONNX")

    class WithSoftmax(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            return torch.softmax(self.net(x), dim=1)

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the TorchScript exporter's deprecation notice)
        torch.onnx.export(WithSoftmax().eval(), torch.zeros(1, n_bands, tile, tile), buffer, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                          opset_version=17, dynamo=False)
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    return model.SerializeToString()


def _metadata(indexes: list[str], records: list[dict], tile: int, values: list[int], names: list[str],
              names_colours: dict, n_bands: int, scale: float, mean: np.ndarray, std: np.ndarray, seed: int,
              result: SegmentationResult) -> dict:
    """Deepness's metadata and Patchwork's, for the exported network."""
    gt = read_chip(records[0]).geotransform
    digest = hashlib.sha256()
    for index in indexes:
        with open(index, "rb") as fh:
            digest.update(fh.read())
    metadata = {
        "model_type": "Segmentor",
        "class_names": {str(i): name for i, name in enumerate(names)},
        "tiles_size": tile,
        "tiles_overlap": 25,  # percent of the tile: enough for the U-Net's reach at its edges
        "standardization_mean": [float(v) for v in mean.ravel()],
        "standardization_std": [float(v) for v in std.ravel()],
        "patchwork:class_values": values,
        "patchwork:n_bands": n_bands,
        "patchwork:input_scale": scale,
        "patchwork:input_offset": 0.0,
        "patchwork:trained_with": "U-Net (Patchwork, PyTorch)",
        "patchwork:training": {"chip_index_sha256": digest.hexdigest(), "seed": seed, "epochs": result.epochs_run,
                               "best_epoch": result.best_epoch, "val_accuracy": result.val_accuracy,
                               "val_miou": result.val_miou, "chips": len(records),
                               "index": ", ".join(os.path.basename(index) for index in indexes)},
    }
    srs = osr.SpatialReference()
    crs_wkt = index_crs_wkt(indexes[0])
    if gt is not None and crs_wkt and srs.ImportFromWkt(crs_wkt) == 0 and srs.IsProjected():
        # cm per pixel (Deepness's unit); a quarter-turned chip's pixel size is in its geotransform's other terms
        metadata["resolution"] = float(np.hypot(gt[1], gt[4])) * srs.GetLinearUnits() * 100
    colours = [names_colours.get(v, ("", None))[1] for v in values]
    if all(colours):
        metadata["patchwork:class_colors"] = colours
    return metadata
