"""Compare two class rasters on one grid: per-pixel agreement, confusion matrix, kappa, HTML report."""
from __future__ import annotations

import html
import os
from dataclasses import dataclass, field

import numpy as np

from .errors import PatchworkError, reports_errors
from .geometry import Window
from .palette import apply_colour_table, read_classes, write_qml
from .paths import check_outputs
from .progress import Feedback, SilentFeedback, check_cancelled
from .raster import RasterSource, no_crs_warning
from .writer import GeoTiffWriter, replace_file, require_raster_outputs, require_writable_folder, temporary_sibling

AGREEMENT_VALUES, AGREEMENT_NAMES, AGREEMENT_COLOURS = [0, 1], ["differ", "agree"], ["#d7191c", "#a6d96a"]


@dataclass
class Comparison:
    """A comparison of two class rasters: classes, confusion matrix (reference rows), names, pixels left out."""
    classes: list[int]
    matrix: np.ndarray  # pixel counts; rows: reference classes, columns: the classification's
    names: dict[int, str] = field(default_factory=dict)
    skipped: int = 0  # pixels that are nodata in either raster

    @property
    def pixels(self) -> int:
        """Pixels valid in both rasters."""
        return int(self.matrix.sum())

    @property
    def agreement(self) -> float:
        """Fraction of pixels (valid in both) with the same class."""
        return float(np.trace(self.matrix) / self.pixels) if self.pixels else float("nan")

    @property
    def kappa(self) -> float:
        """Cohen's kappa: agreement beyond what chance gives."""
        n = self.pixels
        if not n:
            return float("nan")
        expected = float((self.matrix.sum(0) * self.matrix.sum(1)).sum()) / n**2
        return (self.agreement - expected) / (1 - expected) if expected < 1 else 1.0

    def to_dict(self) -> dict:
        """The comparison as JSON-ready data."""
        return {"classes": self.classes, "matrix": self.matrix.tolist(), "agreement": self.agreement,
                "kappa": self.kappa, "pixels": self.pixels, "nodata_pixels": self.skipped}


def count_pairs(a: np.ndarray, b: np.ndarray) -> dict[tuple[int, int], int]:
    """How many times each (a, b) pair of class ids occurs in two equally long arrays."""
    # One int64 code per pair (a in the high 32 bits): a flat unique is fast.
    codes = (a.astype(np.int64) << 32) | (b.astype(np.int64) & 0xFFFFFFFF)
    pairs, n = np.unique(codes, return_counts=True)
    counts = {}
    for code, k in zip(pairs.tolist(), n.tolist()):
        cb = code & 0xFFFFFFFF
        counts[(code >> 32, cb - (1 << 32) if cb >= 1 << 31 else cb)] = k
    return counts


def confusion_matrix(counts: dict[tuple[int, int], int], classes: list[int]) -> np.ndarray:
    """Pair counts as a matrix over `classes` (rows: first of each pair); pairs outside `classes` are left out."""
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for (ca, cb), k in counts.items():
        if ca in index and cb in index:
            matrix[index[ca], index[cb]] = k
    return matrix


@reports_errors
def compare_classifications(reference: str, classification: str, *, agreement: str | None = None,
                            report: str | None = None, feedback: Feedback | None = None,
                            strip_rows: int = 512, check_only: bool = False) -> Comparison | None:
    """Compare `classification` with `reference` (same grid), pixel by pixel, streaming in strips of rows.

    Args:
        reference: The class raster taken as the truth.
        classification: The class raster to assess, on the same grid.
        agreement: A map to write: uint8, 1 where they agree, 0 where they differ, 255 where either is nodata.
        report: An HTML report to write.
        feedback: Progress, cancel and messages (default: silent).
        strip_rows: Rows read at a time.
        check_only: Make the checks a run makes before it writes, then return None.

    Returns:
        The confusion matrix (reference classes as rows), agreement, kappa and class names; None with `check_only`.

    Raises:
        PatchworkError: Rasters on different grids or that are not single-band integer class rasters.
        Cancelled: `feedback` asked to stop.
    """
    feedback = feedback or SilentFeedback()
    with RasterSource(reference, "REFERENCE") as src_a, RasterSource(classification, "INPUT") as src_b:
        src_a.require_same_grid(src_b)
        for src in (src_a, src_b):
            if src.count != 1 or not np.issubdtype(src.dtype, np.integer):
                raise PatchworkError(f"{src.role}: '{os.path.basename(src.path)}' is not a class raster (it has "
                                     f"{src.count} band(s) of {src.dtype}); compare single-band integer class maps.")
        require_raster_outputs({"OUTPUT": agreement}, {"REFERENCE": reference, "INPUT": classification})
        check_outputs({"OUTPUT_REPORT": report}, {"REFERENCE": reference, "INPUT": classification, "OUTPUT": agreement})
        if report:
            require_writable_folder(os.path.dirname(os.path.abspath(report)), "OUTPUT_REPORT")
        if check_only:
            return None
        if agreement and not (src_a.crs_wkt or src_b.crs_wkt):
            feedback.info(no_crs_warning(reference, "agreement map"))
        writer = None
        if agreement:
            writer = GeoTiffWriter(agreement, src_a.width, src_a.height, 1, np.uint8, src_a.geotransform,
                                   src_a.crs_wkt, 255)
            apply_colour_table(writer.dataset.GetRasterBand(1), AGREEMENT_VALUES, AGREEMENT_NAMES, AGREEMENT_COLOURS)
        counts: dict[tuple[int, int], int] = {}
        skipped = 0
        try:
            for row in range(0, src_a.height, strip_rows):
                check_cancelled(feedback)
                win = Window(row, 0, min(strip_rows, src_a.height - row), src_a.width)
                data_a, valid_a = src_a.read(win)
                data_b, valid_b = src_b.read(win)
                valid = valid_a & valid_b
                skipped += int((~valid).sum())
                for key, k in count_pairs(data_a[0][valid], data_b[0][valid]).items():
                    counts[key] = counts.get(key, 0) + k
                if writer is not None:
                    writer.write(np.where(valid, (data_a[0] == data_b[0]).astype(np.uint8), 255), row, 0)
                feedback.set_progress(100.0 * (row + win.height) / src_a.height)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        if writer is not None:
            writer.commit()
            write_qml(agreement, AGREEMENT_VALUES, AGREEMENT_NAMES, AGREEMENT_COLOURS)
        names = {value: name for src in (src_b, src_a)  # the reference's names win
                 for value, (name, _colour) in read_classes(src.dataset.GetRasterBand(1)).items()}
    classes = sorted({c for pair in counts for c in pair})
    matrix = confusion_matrix(counts, classes)
    result = Comparison(classes, matrix, {c: names.get(c, f"class {c}") for c in classes}, skipped)
    if report:
        tmp = temporary_sibling(report)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(html_report(result, reference, classification))
        replace_file(tmp, report)
    return result


def html_report(result: Comparison, reference: str, classification: str) -> str:
    """The comparison as a standalone HTML page."""
    e = html.escape
    head = "".join(f"<th>{e(result.names[c])}</th>" for c in result.classes)
    rows = []
    for i, c in enumerate(result.classes):
        cells = "".join(
            f"<td{' class=diag' if i == j else ''}>{result.matrix[i, j]:,}</td>" for j in range(len(result.classes)))
        total = result.matrix[i].sum()
        rate = f"{result.matrix[i, i] / total:.2%}" if total else "–"
        rows.append(f"<tr><th>{e(result.names[c])}</th>{cells}<td>{total:,}</td><td>{rate}</td></tr>")
    col_totals = "".join(f"<td>{v:,}</td>" for v in result.matrix.sum(0))
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Patchwork: classification comparison</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:4px 8px;text-align:right}} td.diag{{background:#e5f5e0;font-weight:bold}}</style>
</head><body>
<h1>Classification comparison</h1>
<p><b>Reference</b> (rows): {e(reference)}<br><b>Classification</b> (columns): {e(classification)}</p>
<p><b>Agreement: {result.agreement:.4%}</b> of {result.pixels:,} pixels valid in both;
Cohen's kappa {result.kappa:.4f}; {result.skipped:,} pixels nodata in either raster were left out.</p>
<table><tr><th>reference \\ classification</th>{head}<th>total</th><th>agreement</th></tr>
{''.join(rows)}
<tr><th>total</th>{col_totals}<td>{result.pixels:,}</td><td></td></tr></table>
</body></html>
"""
