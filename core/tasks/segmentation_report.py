"""The HTML report of a segmentation network's training.

The loss and score curves per epoch, the validation confusion matrix, per-class IoU and F1, the settings, and
validation chips with their label and prediction.
"""
from __future__ import annotations

import base64
import html

import numpy as np

from ..io.palette import class_colours
from ..io.quicklook import png_bytes

CURVE_W, CURVE_H = 560, 220


def _polyline(values: list[float], low: float, high: float, colour: str) -> str:
    """One curve of the chart, epochs along x."""
    n = len(values)
    points = []
    for i, v in enumerate(values):
        if np.isfinite(v):
            x = 40 + (CURVE_W - 60) * (i / max(n - 1, 1))
            y = CURVE_H - 30 - (CURVE_H - 50) * ((v - low) / ((high - low) or 1))
            points.append(f"{x:.1f},{y:.1f}")
    return f"<polyline fill='none' stroke='{colour}' stroke-width='2' points='{' '.join(points)}'/>"


def curve_chart(title: str, series: dict[str, tuple[list[float], str]], best_epoch: int) -> str:
    """An SVG line chart of per-epoch values (name → (values, colour)), the best epoch marked."""
    finite = [v for values, _ in series.values() for v in values if np.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    n = max(len(values) for values, _ in series.values())
    best_x = 40 + (CURVE_W - 60) * ((best_epoch - 1) / max(n - 1, 1))
    legend = "".join(f"<text x='{50 + 150 * i}' y='16' fill='{colour}' font-size='12'>{html.escape(name)}</text>"
                     for i, (name, (_, colour)) in enumerate(series.items()))
    lines = "".join(_polyline(values, low, high, colour) for values, colour in series.values())
    return (f"<h3>{html.escape(title)}</h3><svg width='{CURVE_W}' height='{CURVE_H}' role='img'>"
            f"<line x1='40' y1='{CURVE_H - 30}' x2='{CURVE_W - 20}' y2='{CURVE_H - 30}' stroke='#888'/>"
            f"<line x1='{best_x:.1f}' y1='20' x2='{best_x:.1f}' y2='{CURVE_H - 30}' stroke='#aaa' "
            f"stroke-dasharray='4'/>{legend}{lines}"
            f"<text x='40' y='{CURVE_H - 12}' font-size='11'>epoch 1</text>"
            f"<text x='{CURVE_W - 70}' y='{CURVE_H - 12}' font-size='11'>epoch {n}</text>"
            f"<text x='2' y='{CURVE_H - 30}' font-size='11'>{low:.3g}</text>"
            f"<text x='2' y='30' font-size='11'>{high:.3g}</text></svg>")


def png_data_uri(rgb: np.ndarray) -> str:
    """An (3, h, w) uint8 picture as a PNG data URI, for the report to carry inside it."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode()


def stretched(image: np.ndarray) -> np.ndarray:
    """The first three bands (or one, greyed) stretched together 2–98 % to uint8 (their colours kept)."""
    bands = (image[:3] if image.shape[0] >= 3 else np.repeat(image[:1], 3, axis=0)).astype(float)
    lo, hi = np.percentile(bands, (2, 98))
    return np.clip((bands - lo) / ((hi - lo) or 1) * 255, 0, 255).astype(np.uint8)


def painted(indices: np.ndarray, colours: list[str]) -> np.ndarray:
    """Class indices (−1: none) as an RGB picture in the class colours (none: black)."""
    rgb = np.zeros((3, *indices.shape), np.uint8)
    for i, colour in enumerate(colours):
        for band in range(3):
            rgb[band][indices == i] = int(colour[1 + 2 * band : 3 + 2 * band], 16)
    return rgb


def segmentation_report(result, settings: dict, examples: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                        class_colors: list[str | None] | None = None) -> str:
    """The report of `result` (SegmentationResult), with the run's `settings`.

    `examples`: validation chips as (image, label indices, predicted indices).
    """
    names = result.class_names
    colours = class_colours(len(names), class_colors)
    history = result.history
    parts = ["<h1>Segmentation network: training report</h1>",
             f"<p>Best epoch <b>{result.best_epoch}</b> of {result.epochs_run} on {html.escape(result.device)}: "
             f"validation accuracy <b>{result.val_accuracy:.3f}</b>, mean IoU <b>{result.val_miou:.3f}</b>; "
             f"{result.seconds:.0f} s.</p>",
             curve_chart("Loss per epoch", {"training": ([e["train_loss"] for e in history], "#1f77b4"),
                                            "validation": ([e["val_loss"] for e in history], "#d62728")},
                         result.best_epoch),
             curve_chart("Validation scores per epoch", {
                 "accuracy": ([e["val_accuracy"] for e in history], "#2ca02c"),
                 "mean IoU": ([e["val_miou"] for e in history], "#9467bd")}, result.best_epoch)]
    rows = "".join(f"<tr><th style='text-align:left'>{html.escape(n)}</th><td>{iou:.3f}</td><td>{f1:.3f}</td></tr>"
                   for n, iou, f1 in zip(names, result.iou, result.f1))
    parts.append(f"<h3>Per class, at the best epoch</h3><table><tr><th>class</th><th>IoU</th><th>F1</th></tr>{rows}"
                 "</table>")
    if result.confusion is not None:
        header = "".join(f"<th>{html.escape(n)}</th>" for n in names)
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(n)}</th>"
                       + "".join(f"<td>{int(v):,}</td>" for v in row) + "</tr>" for n, row in zip(names,
                                                                                      result.confusion))
        parts.append("<h3>Validation confusion matrix (pixels; rows: label, columns: prediction)</h3>"
                     f"<table><tr><th></th>{header}</tr>{body}</table>")
    settings_rows = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                            f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>" for k, v in settings.items())
    parts.append(f"<h3>Settings</h3><table>{settings_rows}</table>")
    if examples:
        cells = "".join(
            f"<tr><td><img src='{png_data_uri(stretched(image))}' width='128'></td>"
            f"<td><img src='{png_data_uri(painted(label, colours))}' width='128'></td>"
            f"<td><img src='{png_data_uri(painted(predicted, colours))}' width='128'></td></tr>"
            for image, label, predicted in examples)
        legend = ", ".join(f"<span style='color:{c}'>■</span> {html.escape(n)}" for n, c in zip(names, colours))
        parts.append(f"<h3>Validation chips</h3><p>{legend}; black: not labelled.</p><table><tr><th>image</th>"
                     f"<th>label</th><th>prediction</th></tr>{cells}</table>")
    style = ("body{font-family:sans-serif;margin:1.5em} table{border-collapse:collapse} "
             "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Patchwork network training report</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
