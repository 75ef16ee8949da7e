"""Compare two class rasters on one grid: per-pixel agreement, confusion matrix, kappa, HTML report."""
from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ..errors import PatchworkError, reports_errors
from ..geometry import Window
from ..io.palette import apply_colour_table, legend, write_qml
from ..io.partials import replace_file, temporary_sibling
from ..io.paths import check_outputs
from ..io.raster import RasterSource, no_crs_warning
from ..io.writer import GeoTiffWriter, require_raster_outputs, require_writable_folder
from ..progress import Feedback, SilentFeedback, check_cancelled

AGREEMENT_VALUES, AGREEMENT_NAMES, AGREEMENT_COLOURS = [0, 1], ["differ", "agree"], ["#d7191c", "#a6d96a"]


@dataclass
class Comparison:
    """A comparison of two class rasters: classes, confusion matrix (reference rows), names, pixels left out."""
    classes: list[int]
    matrix: np.ndarray  # pixel counts; rows: reference classes, columns: the classification's
    names: dict[int, str] = field(default_factory=dict)
    skipped: int = 0  # pixels that are nodata in either raster
    matched: str = ""  # how the classes were matched (by name, by number), in words

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
                "kappa": self.kappa, "pixels": self.pixels, "nodata_pixels": self.skipped,
                "classes_matched": self.matched}


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


_DEFAULT_NAME = re.compile(r"class -?\d+\Z")  # what a map without class names is given


def match_by_name(reference: dict[int, str], classification: dict[int, str]) -> tuple[dict[int, int], str]:
    """The classification's class values as the reference's, matched by class name, and what was done, in words.

    Both maps must name their classes (not "class 3"); a classification class whose name the reference lacks gets a
    value of its own (it never agrees). Without names on both, or with no name in common, classes are matched by
    number, and the words say so.
    """
    own = {v: n for v, n in classification.items() if not _DEFAULT_NAME.match(n)}
    ref = {n.strip().lower(): v for v, n in reference.items() if not _DEFAULT_NAME.match(n)}
    if not own or not ref:
        return {}, "Classes matched by number (a map does not name its classes)."
    common = [v for v, n in own.items() if n.strip().lower() in ref]
    if not common:
        return {}, ("Warning: no class name of the classification is in the reference; classes matched by number. "
                    "Check that the two maps classify the same things.")
    spare = max([*reference, *classification], default=0) + 1
    mapping = {}
    for value, name in sorted(own.items()):
        target = ref.get(name.strip().lower())
        mapping[value] = target if target is not None else spare
        spare += target is None
    pairs = [f"'{own[v]}' {v}→{mapping[v]}" for v in sorted(own) if mapping[v] != v]
    unmatched = [own[v] for v in sorted(own) if own[v].strip().lower() not in ref]
    return mapping, ("Classes matched by name" + (f" ({', '.join(pairs)})" if pairs else "") + "."
                     + (f" Not in the reference: {', '.join(unmatched)}." if unmatched else ""))


def _translated(values: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    if not mapping:
        return values
    unique, inverse = np.unique(values, return_inverse=True)
    return np.array([mapping.get(int(v), int(v)) for v in unique], dtype=np.int64)[inverse].reshape(values.shape)


@contextmanager
def _on_grid_of(reference: RasterSource, classification: str, names: tuple[str, str], resample: bool):
    """`classification`, or a nearest-neighbour VRT of it on the reference's grid when `resample` is asked."""
    with RasterSource(classification, "INPUT") as src:
        problems = reference.grid_differences(src)
        nodata = src.nodata[0] if src.nodata[0] is not None else float(np.iinfo(src.dtype).max) \
            if np.issubdtype(src.dtype, np.integer) else float("nan")
    if not problems:
        yield classification, ""
        return
    if not resample:
        raise PatchworkError(
            f"INPUT: '{names[1]}' is not on the grid of '{names[0]}': {'; '.join(problems)}. Tick 'Resample the "
            "classification onto the reference's grid' (RESAMPLE=true) to compare them there (nearest neighbour), "
            "or align the rasters first.")
    from osgeo import gdal

    folder = tempfile.mkdtemp(prefix="patchwork-compare-")
    vrt = os.path.join(folder, "on_reference_grid.vrt")
    gt = reference.geotransform
    bounds = (gt[0], gt[3] + gt[5] * reference.height, gt[0] + gt[1] * reference.width, gt[3])
    try:
        made = gdal.Warp(vrt, classification, format="VRT", outputBounds=bounds, width=reference.width,
                         height=reference.height, dstSRS=reference.crs_wkt or None, resampleAlg="near",
                         dstNodata=nodata)
        if made is None:
            raise PatchworkError(f"INPUT: GDAL could not resample '{names[1]}' onto the grid of '{names[0]}'.")
        made = None  # noqa: F841 - closing writes the VRT
        yield vrt, f"'{names[1]}' resampled onto the grid of '{names[0]}' (nearest neighbour) for the comparison."
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@reports_errors
def compare_classifications(reference: str, classification: str, *, agreement: str | None = None,
                            report: str | None = None, feedback: Feedback | None = None,
                            strip_rows: int = 512, check_only: bool = False, resample: bool = False,
                            names: tuple[str, str] | None = None) -> Comparison | None:
    """Compare `classification` with `reference` (same grid), pixel by pixel, streaming in strips of rows.

    Args:
        reference: The class raster taken as the truth.
        classification: The class raster to assess, on the same grid.
        agreement: A map to write: uint8, 1 where they agree, 0 where they differ, 255 where either is nodata.
        report: An HTML report to write.
        feedback: Progress, cancel and messages (default: silent).
        strip_rows: Rows read at a time.
        check_only: Make the checks a run makes before it writes, then return None.
        resample: Compare a classification on another grid on the reference's (nearest neighbour).
        names: What to call the reference and the classification in messages (their layers' names); default
            their files' names.

    Classes are matched by name when both maps name them (`match_by_name`), else by number; the log says which.

    Returns:
        The confusion matrix (reference classes as rows), agreement, kappa and class names; None with `check_only`.

    Raises:
        PatchworkError: Rasters on different grids (without `resample`) or that are not single-band integer class
            rasters.
        Cancelled: `feedback` asked to stop.
    """
    feedback = feedback or SilentFeedback()
    names = names or (os.path.basename(reference), os.path.basename(classification))
    with RasterSource(reference, "REFERENCE") as src_a, \
            _on_grid_of(src_a, classification, names, resample) as (on_grid, resampled), \
            RasterSource(on_grid, "INPUT") as src_b:
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
        if resampled:
            feedback.info(resampled)
        if agreement and not (src_a.crs_wkt or src_b.crs_wkt):
            feedback.info(no_crs_warning(reference, "agreement map"))
        reference_names = legend(src_a.dataset.GetRasterBand(1))[0]
        classification_names = legend(src_b.dataset.GetRasterBand(1))[0]
        mapping, how = match_by_name(reference_names, classification_names)
        feedback.info(how)
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
                classified = _translated(data_b[0], mapping)  # in the reference's class values
                for key, k in count_pairs(data_a[0][valid], classified[valid]).items():
                    counts[key] = counts.get(key, 0) + k
                if writer is not None:
                    writer.write(np.where(valid, (data_a[0] == classified).astype(np.uint8), 255), row, 0)
                feedback.set_progress(100.0 * (row + win.height) / src_a.height)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        if writer is not None:
            writer.commit()
            write_qml(agreement, AGREEMENT_VALUES, AGREEMENT_NAMES, AGREEMENT_COLOURS)
    class_names = {mapping.get(v, v): n for v, n in classification_names.items()}
    class_names.update(reference_names)  # the reference's names win
    classes = sorted({c for pair in counts for c in pair})
    matrix = confusion_matrix(counts, classes)
    result = Comparison(classes, matrix, {c: class_names.get(c, f"class {c}") for c in classes}, skipped, how)
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
<p>{e(result.matched)}</p>
<table><tr><th>reference \\ classification</th>{head}<th>total</th><th>agreement</th></tr>
{''.join(rows)}
<tr><th>total</th>{col_totals}<td>{result.pixels:,}</td><td></td></tr></table>
</body></html>
"""
