"""patchwork:accuracy — accuracy and area of each class, with 95% confidence intervals, from labelled sample points.

The points' reference classes (values or class names) are read against the map under them; the strata are the map
classes, a STRATA raster's values or the whole map (simple random), as the sample was drawn. The estimators are
those of `core.data.accuracy` (Olofsson et al. 2014; Stehman 2014). Points outside the map, on nodata, in no
stratum or without a reference class are counted and reported, never silently dropped. Writes a JSON of the
figures and an HTML report; nothing is half-written.
"""
from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from osgeo import ogr, osr

from ..data.accuracy import Z_95, Assessment, estimate
from ..data.strata import StrataCount, StrataGrid
from ..errors import PatchworkError, reports_errors
from ..geometry import Window
from ..io.aoi import Aoi
from ..io.gdal_errors import checked, opened
from ..io.paths import check_outputs
from ..io.raster import same_crs
from ..io.vectors import read_features, traditional_srs
from ..io.writer import DerivedFile, publish_all, require_writable_folder, write_text
from ..progress import Feedback, SilentFeedback
from .accuracy_report import change_lines, html_report

EXCLUSIONS = {"outside_map": "outside the map", "nodata": "on nodata (or outside the AOI)",
              "no_stratum": "in no stratum (nodata in STRATA)", "no_reference": "without a reference class"}


@dataclass
class SamplePoints:
    """Labelled points: their coordinates in the map's CRS and each one's reference value (None: not labelled)."""
    xy: np.ndarray  # (n, 2)
    references: list

    @classmethod
    def from_wkt(cls, wkts: Sequence[str], references: Sequence) -> SamplePoints:
        """Points (WKT, already in the map's CRS) and their reference values; a multipoint must hold one point."""
        xy = []
        for number, wkt in enumerate(wkts, 1):
            geometry = ogr.CreateGeometryFromWkt(wkt)
            if geometry is not None and ogr.GT_Flatten(geometry.GetGeometryType()) == ogr.wkbMultiPoint \
                    and geometry.GetGeometryCount() == 1:
                geometry = geometry.GetGeometryRef(0)
            if geometry is None or ogr.GT_Flatten(geometry.GetGeometryType()) != ogr.wkbPoint:
                kind = geometry.GetGeometryName() if geometry is not None else "an unreadable geometry"
                raise PatchworkError(f"SAMPLES: feature {number} is {kind}, not a point. The sample is points, one "
                                     "per reference label (patchwork:accuracysample draws them).")
            xy.append((geometry.GetX(), geometry.GetY()))
        return cls(np.array(xy, float).reshape(-1, 2), list(references))

    @classmethod
    def from_file(cls, path: str, reference_field: str, crs_wkt: str, layer: str | None = None) -> SamplePoints:
        """The points of a vector file, in CRS `crs_wkt`, with their `reference_field` values."""
        wkts, source_crs, values = read_features(path, "SAMPLES", layer, reference_field)
        if source_crs and crs_wkt and not same_crs(source_crs, crs_wkt):
            transform = opened(osr.CoordinateTransformation, traditional_srs(source_crs), traditional_srs(crs_wkt))
            moved = []
            for wkt in wkts:
                geometry = ogr.CreateGeometryFromWkt(wkt)
                checked(geometry.Transform, transform)
                moved.append(geometry.ExportToWkt())
            wkts = moved
        return cls.from_wkt(wkts, values)


@dataclass
class AccuracyReport:
    """What the sample says of the map: the estimates, the classes, and what was left out."""
    assessment: Assessment
    count: StrataCount
    names: dict[int, str]
    design: str
    used: int
    excluded: dict[str, int] = field(default_factory=dict)
    stratum_points: dict[int, int] = field(default_factory=dict)
    geographic: bool = False  # areas computed on the ellipsoid

    @property
    def overall_accuracy(self) -> float:
        """Overall accuracy (the estimated share of area mapped correctly)."""
        return self.assessment.overall.value

    @property
    def overall_accuracy_ci(self) -> float:
        """The half width of overall accuracy's 95% confidence interval."""
        return self.assessment.overall.ci

    @property
    def total_m2(self) -> float:
        """The area the strata cover (NaN without a CRS)."""
        return float(self.count.stratum_m2.sum())

    def to_dict(self) -> dict:
        """The figures as JSON-ready data (NaN as null), with the keys the README lists."""
        a, total = self.assessment, self.total_m2
        mapped = dict(zip(self.count.classes, self.count.class_pixels.tolist()))
        mapped_m2 = dict(zip(self.count.classes, self.count.class_m2.tolist()))
        classes = []
        for i, value in enumerate(a.classes):
            area = a.area_proportions[i]
            classes.append({
                "value": value, "name": self.names.get(value, f"class {value}"),
                "map_pixels": mapped.get(value, 0), "map_area_m2": _number(mapped_m2.get(value, 0.0)),
                "sample_count": int(a.counts[i].sum()), "reference_count": int(a.counts[:, i].sum()),
                "users_accuracy": _number(a.users[i].value), "users_accuracy_ci": _number(a.users[i].ci),
                "producers_accuracy": _number(a.producers[i].value),
                "producers_accuracy_ci": _number(a.producers[i].ci),
                "area_proportion": _number(area.value), "area_proportion_se": _number(area.se),
                "area_m2": _number(area.value * total), "area_m2_ci": _number(area.ci * total)})
        return {
            "overall_accuracy": _number(a.overall.value), "overall_accuracy_ci": _number(a.overall.ci),
            "overall_accuracy_se": _number(a.overall.se), "confidence_level": 0.95, "z": Z_95,
            "classes": classes,
            "error_matrix_counts": a.counts.tolist(), "error_matrix_proportions": a.proportions.tolist(),
            "error_matrix_axes": "rows: map classes, columns: reference classes, in the order of 'classes'",
            "design": self.design, "points_used": self.used, "points_excluded": self.excluded,
            "strata": [{"value": h, "pixels": int(p), "area_m2": _number(m2),
                        "sample_count": self.stratum_points.get(h, 0)}
                       for h, p, m2 in zip(self.count.strata, self.count.stratum_pixels.tolist(),
                                           self.count.stratum_m2.tolist())],
        }

    def summary(self) -> list[str]:
        """Log lines: overall accuracy, then per class its accuracies and area."""
        a, total = self.assessment, self.total_m2
        lines = [f"Overall accuracy {a.overall.value:.3f} ± {a.overall.ci:.3f} (95% CI), from {self.used} points."]
        for i, value in enumerate(a.classes):
            area = a.area_proportions[i]
            size = f"{area.value * total / 1e4:,.1f} ± {area.ci * total / 1e4:,.1f} ha" if math.isfinite(total) \
                else f"{area.value:.2%} ± {area.ci:.2%} of the map"
            lines.append(f"{self.names.get(value, f'class {value}')} ({value}): user's {_pm(a.users[i])}, "
                         f"producer's {_pm(a.producers[i])}, area {size}")
        return lines


def _pm(e) -> str:
    return "–" if not math.isfinite(e.value) else f"{e.value:.3f} ± {e.ci:.3f}"


def _number(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


_DEFAULT_NAME = re.compile(r"class (-?\d+)\Z", re.IGNORECASE)


def reference_classes(values: Sequence, names: dict[int, str], map_values: Sequence[int] | None) -> list[int | None]:
    """Reference values as class values: whole numbers, or class names of the map (any case); None for empty.

    `map_values` are the values found in the map; None before it is read: then only a map that names its classes
    can tell an unknown class.

    Raises:
        PatchworkError: Values that are neither a class of the map nor one of its names, listed with the classes.
    """
    by_name = {n.strip().lower(): v for v, n in names.items()}
    known = set(names) | set(map_values or ())
    out, unknown = [], []
    for value in values:
        if value is None or (isinstance(value, str) and not value.strip()) or \
                (isinstance(value, float) and math.isnan(value)):
            out.append(None)
            continue
        text = str(value).strip()
        number = _whole(value)
        if number is None:
            number = by_name.get(text.lower())
        if number is None and _DEFAULT_NAME.match(text):
            number = int(_DEFAULT_NAME.match(text).group(1))
        if number is None or (number not in known and (known or map_values is not None)):
            unknown.append(text)
        out.append(number)
    if unknown:
        listed = ", ".join(f"{v} {names[v]}" if v in names else str(v) for v in sorted(known))
        shown = ", ".join(sorted(set(unknown))[:10])
        raise PatchworkError(f"REFERENCE_FIELD: {len(unknown)} point(s) have reference classes the map does not have "
                             f"({shown}); the map's classes are {listed}. Use their values or names.")
    return out


def _whole(value) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def _points_on_map(grid: StrataGrid, points: SamplePoints, classes: list[int | None],
                   excluded: dict[str, int]) -> tuple[list, list, list]:
    """Each usable point's stratum, map class and reference class; the others counted in `excluded`."""
    gt, src = grid.map.geotransform, grid.map
    inverse = np.linalg.inv(np.array([[gt[1], gt[2]], [gt[4], gt[5]]]))
    strata, mapped, reference = [], [], []
    inside_aoi = None
    for (x, y), ref in zip(points.xy, classes):
        col, row = (inverse @ np.array([x - gt[0], y - gt[3]])).tolist()
        r, c = math.floor(row), math.floor(col)
        if not (0 <= r < src.height and 0 <= c < src.width):
            excluded["outside_map"] += 1
            continue
        window = Window(r, c, 1, 1)
        value, valid = src.read(window)
        if grid.aoi is not None:
            inside_aoi = grid.aoi.inside_mask(gt, window)[0, 0]
        if not valid[0, 0] or inside_aoi is False:
            excluded["nodata"] += 1
            continue
        stratum = int(value[0, 0, 0]) if grid.design == "map_classes" else 0
        if grid.strata is not None:
            strata_value, strata_valid = grid.strata.read(window)
            if not strata_valid[0, 0]:
                excluded["no_stratum"] += 1
                continue
            stratum = int(strata_value[0, 0, 0])
        if ref is None:
            excluded["no_reference"] += 1
            continue
        strata.append(stratum)
        mapped.append(int(value[0, 0, 0]))
        reference.append(ref)
    return strata, mapped, reference


@reports_errors
def assess_accuracy(class_map: str, samples: SamplePoints | str, reference_field: str | None = None, *,
                    strata: str | None = None, aoi: Aoi | None = None, design: str = "map_classes",
                    output_json: str | None = None, output_report: str | None = None, previous: str | None = None,
                    feedback: Feedback | None = None, check_only: bool = False,
                    names: tuple[str, str] | None = None) -> AccuracyReport | None:
    """Accuracy and area of each class of `class_map`, with 95% confidence intervals, from labelled points.

    Args:
        class_map: The class raster assessed.
        samples: The labelled points: SamplePoints, or a vector file's path (with `reference_field`).
        reference_field: The field holding each point's reference class (value or name), for a file.
        strata: The STRATA raster the sample was stratified by (design "strata").
        aoi: The area the sample was drawn in (the strata are counted there).
        design: "map_classes", "strata" or "simple_random": how the sample was drawn.
        output_json: The figures as JSON.
        output_report: An HTML report.
        previous: The OUTPUT_JSON of an earlier assessment (of the map before more labels, say): the log and the
            report say how each figure changed since.
        feedback: Progress, cancel and messages.
        check_only: Make the checks a run makes before it reads the whole map, then return None.
        names: What to call the map and the samples in the report (their layers' names).

    Raises:
        PatchworkError: Unknown reference classes, a stratum with fewer than 2 labelled points, a map whose CRS has
            no linear unit, outputs that would replace an input.
    """
    feedback = feedback or SilentFeedback()
    sample_file = samples if isinstance(samples, str) else None
    check_outputs({"OUTPUT_JSON": output_json, "OUTPUT_REPORT": output_report},
                  {"INPUT": class_map, "STRATA": strata, "SAMPLES": sample_file, "PREVIOUS": previous})
    earlier = read_previous(previous)
    for path, role in ((output_json, "OUTPUT_JSON"), (output_report, "OUTPUT_REPORT")):
        if path:
            require_writable_folder(os.path.dirname(os.path.abspath(path)), role)
    with StrataGrid(class_map, strata, aoi, design) as grid:
        if sample_file is not None:
            if not reference_field:
                raise PatchworkError("REFERENCE_FIELD: name the field that holds each point's reference class.")
            samples = SamplePoints.from_file(sample_file, reference_field, grid.map.crs_wkt)
        class_names = grid.legend()[0]
        stratum_names = class_names if design == "map_classes" else {}
        classes = reference_classes(samples.references, class_names, None)
        if check_only:  # the points' own pixels are read (not the map): a stratum of one point is refused now
            strata_of, _mapped, _reference = _points_on_map(grid, samples, classes, dict.fromkeys(EXCLUSIONS, 0))
            _require_two_per_stratum(strata_of, stratum_names)
            return None
        count = grid.count(feedback)
        classes = reference_classes(samples.references, class_names, count.classes)
        excluded = dict.fromkeys(EXCLUSIONS, 0)
        strata_of, mapped, reference = _points_on_map(grid, samples, classes, excluded)
        geographic = bool(grid.srs is not None and grid.srs.IsGeographic())
    for key, text in EXCLUSIONS.items():
        if excluded[key]:
            feedback.info(f"{excluded[key]} point(s) {text}: left out of the estimates.")
    stratum_points = {h: strata_of.count(h) for h in count.strata}
    assessed = sorted(set(count.classes) | set(reference))
    labels = {c: class_names.get(c, f"class {c}") for c in assessed}
    assessment = estimate(np.array(strata_of), np.array(mapped), np.array(reference), count.stratum_sizes, assessed,
                          stratum_names)
    for h in count.strata:
        agreeing = [m == r for stratum, m, r in zip(strata_of, mapped, reference) if stratum == h]
        if agreeing and all(agreeing):
            feedback.info(f"All {len(agreeing)} points of stratum {stratum_names.get(h, h)!r} agree with the map: "
                          "its estimated variance is 0, so the intervals leave out the errors it surely has. More "
                          "points there give it a variance.")
    result = AccuracyReport(assessment, count, labels, design, len(reference), excluded, stratum_points,
                            geographic)
    for line in result.summary():
        feedback.info(line)
    figures = result.to_dict()
    for line in change_lines(earlier, figures):
        feedback.info(line)
    texts = {output_json: json.dumps(figures, indent=2) if output_json else "",
             output_report: html_report(result, names or (os.path.basename(class_map), sample_file or ""), earlier)
             if output_report else ""}
    _write_texts({path: text for path, text in texts.items() if path})
    return result


def _require_two_per_stratum(strata_of: list[int], names: dict[int, str]) -> None:
    """A stratum with labelled points needs two of them: one gives no variance."""
    for h in sorted(set(strata_of)):
        if strata_of.count(h) < 2:
            raise PatchworkError(f"SAMPLES: stratum {names.get(h, h)!r} has 1 sample point with a reference class; a "
                                 "stratum needs at least 2 for its variance (its spread cannot be estimated from one "
                                 "point). Label more points there, or draw the sample again with "
                                 "patchwork:accuracysample.")


def read_previous(path: str | None) -> dict | None:
    """An earlier assessment's OUTPUT_JSON, checked, or None."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, dict) or "overall_accuracy" not in data or not isinstance(data.get("classes"), list):
            raise ValueError("not an accuracy assessment")
    except (OSError, ValueError) as exc:
        raise PatchworkError(f"PREVIOUS: '{path}' is not the JSON of an earlier patchwork:accuracy run ({exc}).") \
            from exc
    return data


def _write_texts(texts: dict[str, str]) -> None:
    """Write every file under a temporary name, then rename them all: none is left half-written."""
    files = [DerivedFile(path, lambda temporary, text=text: write_text(temporary, text))
             for path, text in texts.items()]
    try:
        for made in files:
            made.finish()
    except BaseException:
        for made in files:
            made.abort()
        raise
    publish_all(files)
