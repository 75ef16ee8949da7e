"""patchwork:accuracysample — a stratified random sample of reference points drawn from a class map.

How many points (Cochran's formula for a target standard error of overall accuracy, or a fixed number), how they
are shared among strata (the map classes, a STRATA raster, or none), and where they fall (at most one per pixel, at
its centre, never on nodata or outside the AOI, the same for the same SEED). The points are written as a
GeoPackage, styled for labelling: a drop-down of the map's class names in the `reference` field, and each point
hollow until it has a reference class.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from osgeo import ogr

from ..data.accuracy import allocate, cochran_sample_size
from ..data.strata import StrataCount, StrataGrid
from ..errors import PatchworkError, reports_errors
from ..io.aoi import Aoi
from ..io.palette import labelling_style
from ..io.paths import check_outputs
from ..io.vectors import write_styled_layer
from ..io.writer import require_writable_folder
from ..progress import Feedback, SilentFeedback

LAYER = "samples"
REFERENCE_FIELD = "reference"
FIELDS = (("sample_id", ogr.OFTInteger), ("map_class", ogr.OFTInteger), ("map_name", ogr.OFTString),
          ("stratum", ogr.OFTInteger), ("inclusion_probability", ogr.OFTReal), (REFERENCE_FIELD, ogr.OFTInteger))


@dataclass
class StratumPlan:
    """One stratum of the design: its pixels, share, points and why that many."""
    value: int
    name: str
    pixels: int
    share: float
    points: int
    reason: str

    @property
    def inclusion_probability(self) -> float:
        """The chance each of its pixels had to be drawn."""
        return self.points / self.pixels

    def line(self) -> str:
        """The stratum in one log line."""
        return (f"stratum {self.name} ({self.value}): {self.pixels:,} px ({self.share:.2%} of the map), "
                f"{self.points} points: {self.reason}")


@dataclass
class AccuracySample:
    """The sample drawn: where it was written, its size and its strata."""
    output: str
    points: int
    cochran_n: int | None  # None when SAMPLE_SIZE was given
    design: str
    strata: list[StratumPlan] = field(default_factory=list)


def parse_expected_accuracy(text: str | Sequence[float]) -> list[float]:
    """EXPECTED_UA as numbers: '0.9' or '0.7, 0.6, 0.9, 0.95' (or a list)."""
    parts = [p for p in text.replace(";", ",").split(",") if p.strip()] if isinstance(text, str) else list(text)
    try:
        values = [float(p) for p in parts]
    except ValueError as exc:
        raise PatchworkError(f"EXPECTED_UA: '{text}' is not a list of numbers like 0.7, 0.6, 0.9.") from exc
    if not values or not all(0 < v <= 1 for v in values):
        raise PatchworkError(f"EXPECTED_UA: {text!r}: expected user's accuracies are proportions above 0, at most 1 "
                             "(0.9 = 90%).")
    return values


def map_classes(names: dict[int, str], found: Sequence[int] = ()) -> list[int]:
    """The map's classes in their order: those its legend names, then any other value found in it."""
    return sorted(set(names) | set(found))


def expected_per_class(values: list[float], classes: list[int], names: dict[int, str]) -> list[float]:
    """One expected user's accuracy per class: one value for all, or one each in class order."""
    if len(values) == 1:
        return values * len(classes)
    if len(values) != len(classes):
        listed = ", ".join(f"{c} {names.get(c, '')}".strip() for c in classes)
        raise PatchworkError(f"EXPECTED_UA: {len(values)} values for the map's {len(classes)} classes ({listed}); "
                             "give one value for all, or one per class in this order.")
    return values


@reports_errors
def draw_accuracy_sample(class_map: str, output: str, *, strata: str | None = None, aoi: Aoi | None = None,
                         design: str = "map_classes", target_se: float = 0.01,
                         expected_users_accuracy: str | Sequence[float] = "0.9", sample_size: int | None = None,
                         allocation: str = "proportional_minimum", min_per_class: int = 50, seed: int = 0,
                         feedback: Feedback | None = None, check_only: bool = False) -> AccuracySample | None:
    """Draw a stratified random sample of points to label from `class_map`, into the GeoPackage `output`.

    Args:
        class_map: A single-band integer class raster (a Patchwork class map, or any); nodata is left out.
        output: The GeoPackage to write (layer "samples").
        strata: A raster on the map's grid whose values are the strata (with design "strata").
        aoi: Only pixels whose centre is inside these polygons are sampled.
        design: "map_classes" (strata are the map classes), "strata" (the STRATA raster's values) or
            "simple_random" (one stratum).
        target_se: The standard error of overall accuracy Cochran's formula aims at.
        expected_users_accuracy: One value for all classes, or one per class in class order.
        sample_size: A fixed number of points instead of Cochran's.
        allocation: "proportional_minimum", "proportional" or "equal" (see `allocate`).
        min_per_class: The least points per stratum with "proportional_minimum".
        seed: The same seed, map and settings give the same points.
        feedback: Progress, cancel and messages.
        check_only: Make the checks a run makes before it reads the whole map, then return None.

    Returns:
        The sample: its size, Cochran's n, and per stratum its pixels, points and why.
    """
    feedback = feedback or SilentFeedback()
    if not output.lower().endswith(".gpkg"):
        raise PatchworkError(f"OUTPUT: the sample is written as a GeoPackage: give it a .gpkg name, not '{output}'.")
    check_outputs({"OUTPUT": output}, {"INPUT": class_map, "STRATA": strata})
    require_writable_folder(os.path.dirname(os.path.abspath(output)), "OUTPUT")
    expected = parse_expected_accuracy(expected_users_accuracy)
    if sample_size is not None and sample_size < 2:
        raise PatchworkError(f"SAMPLE_SIZE: {sample_size} points cannot estimate a variance; give at least 2 per "
                             "stratum, or leave it empty for Cochran's formula.")
    if min_per_class < 0:
        raise PatchworkError(f"MIN_PER_CLASS: {min_per_class} is negative.")
    with StrataGrid(class_map, strata, aoi, design) as grid:
        names, colours = grid.legend()
        if names and len(expected) > 1:
            expected_per_class(expected, map_classes(names), names)
        if check_only:
            return None
        count = grid.count(feedback)
        classes = map_classes(names, count.classes)
        expected = expected_per_class(expected, classes, names)
        n_cochran = None
        if sample_size is None:
            n_cochran = cochran_sample_size(_class_weights(count, classes), expected, target_se)
            feedback.info(f"Cochran's formula: {n_cochran} points for a standard error of {target_se:g} on overall "
                          "accuracy, with expected user's accuracies " +
                          ", ".join(f"{names.get(c, c)} {u:g}" for c, u in zip(classes, expected)) + ".")
        wanted = sample_size or n_cochran
        shares = allocate(wanted, count.stratum_pixels, allocation, min_per_class)
        if shares.counts.sum() > wanted:
            feedback.info(f"The sample is {shares.counts.sum()} points, not {wanted}: every stratum gets at least "
                          f"MIN_PER_CLASS ({min_per_class}) points, or all its pixels.")
        plans = _stratum_plans(count, shares, design, names)
        for plan in plans:
            feedback.info(plan.line())
        if count.unstratified:
            feedback.info(f"{count.unstratified:,} pixels with a class have no stratum (nodata in STRATA) and cannot "
                          "be drawn.")
        points = grid.draw(count, shares.counts, seed, feedback)
        probability = {p.value: p.inclusion_probability for p in plans}
        order = np.random.default_rng([seed, 1]).permutation(len(points))  # labelled in an order that hides strata
        _write_points(output, [points[i] for i in order], probability, grid.map.geotransform, grid.map.crs_wkt,
                      classes, {c: names.get(c, f"class {c}") for c in classes}, colours)
    feedback.info(f"{len(points)} points written to {output}; fill their '{REFERENCE_FIELD}' field, then run "
                  "patchwork:accuracy.")
    return AccuracySample(output, len(points), n_cochran, design, plans)


def _class_weights(count: StrataCount, classes: list[int]) -> list[float]:
    """Each class's share of the map (by area, or by pixels without a CRS); 0 for a named class it lacks."""
    sizes = count.class_m2 if np.isfinite(count.class_m2).all() else count.class_pixels.astype(float)
    by_class = dict(zip(count.classes, sizes.tolist()))
    total = sum(by_class.values())
    return [by_class.get(c, 0.0) / total for c in classes]


def _stratum_plans(count: StrataCount, shares, design: str, names: dict[int, str]) -> list[StratumPlan]:
    total = int(count.stratum_pixels.sum())
    plans = []
    for h, pixels, points, reason in zip(count.strata, count.stratum_pixels.tolist(), shares.counts.tolist(),
                                         shares.reasons):
        name = names.get(h, f"class {h}") if design == "map_classes" else \
            ("the whole map" if design == "simple_random" else f"stratum {h}")
        plans.append(StratumPlan(h, f"'{name}'", pixels, pixels / total, points, reason))
    return plans


def _write_points(path: str, points: list[tuple[int, int, int, int]], probability: dict[int, float], gt,
                  crs_wkt: str, classes: list[int], names: dict[int, str], colours: dict[int, str]) -> None:
    """The points at their pixels' centres, with map class, stratum, inclusion probability and an empty reference."""
    def rows():
        for number, (row, col, value, stratum) in enumerate(points, 1):
            point = ogr.Geometry(ogr.wkbPoint)
            point.AddPoint_2D(gt[0] + (col + 0.5) * gt[1] + (row + 0.5) * gt[2],
                              gt[3] + (col + 0.5) * gt[4] + (row + 0.5) * gt[5])
            yield (number, value, names.get(value, f"class {value}"), stratum, probability[stratum], None), point

    write_styled_layer(path, LAYER, crs_wkt, ogr.wkbPoint, FIELDS, rows(), labelling_style(
        {c: names[c] for c in classes}, colours, REFERENCE_FIELD, [name for name, _kind in FIELDS
                                                                   if name != REFERENCE_FIELD],
        ["map_class", "map_name", "stratum", "inclusion_probability"]))

