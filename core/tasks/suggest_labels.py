"""patchwork:suggestlabels — where to label next: places the map is unsure of, spread apart.

From an uncertainty map (classify's OUTPUT_UNCERTAINTY), COUNT pixels at least MIN_DISTANCE pixels from each other
and from every place already labelled (polygons, points or lines, any CRS), optionally taken in turn from each
predicted class. SELECTION `weighted` (the default) draws them at random with a chance proportional to their
uncertainty (Efraimidis–Spirakis keys, so it streams); `least_sure` takes strictly the most uncertain. On the
Sentinel-2 scene (`make bench`) weighted labels beat random ones and least-sure ones fall behind both: the least sure
pixels are often the same few odd ones. A seeded key per pixel makes the same SEED give the same places. The map is
read in strips: memory holds the candidates, never the map.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from osgeo import ogr, osr

from ..errors import PatchworkError, reports_errors
from ..geometry import Window
from ..io.aoi import Aoi
from ..io.gdal_errors import checked, opened
from ..io.palette import labelling_style, legend
from ..io.paths import check_outputs
from ..io.raster import RasterSource, same_crs
from ..io.vectors import read_features, traditional_srs, write_styled_layer
from ..io.writer import require_writable_folder
from ..progress import Feedback, SilentFeedback, check_cancelled

SHAPES = ("point", "chip")
SELECTIONS = ("weighted", "least_sure")
LAYER = "suggestions"
LABEL_FIELD = "label"
FIELDS = (("rank", ogr.OFTInteger), ("uncertainty", ogr.OFTReal), ("predicted_class", ogr.OFTInteger),
          ("predicted_name", ogr.OFTString), (LABEL_FIELD, ogr.OFTInteger))
STRIP_ROWS = 256


@dataclass
class Places:
    """Places already labelled: geometries of any kind (WKT) and their CRS."""
    wkts: Sequence[str]
    crs_wkt: str

    @classmethod
    def from_file(cls, path: str, layer: str | None = None) -> Places:
        """The features of a vector file."""
        wkts, crs_wkt, _values = read_features(path, "LABELLED", layer)
        return cls(wkts, crs_wkt)

    def keep_away_zone(self, crs_wkt: str, distance: float) -> Aoi | None:
        """Everything within `distance` (map units of `crs_wkt`) of the places, as polygons in that CRS."""
        transform = None
        if self.crs_wkt and crs_wkt and not same_crs(self.crs_wkt, crs_wkt):
            transform = opened(osr.CoordinateTransformation, traditional_srs(self.crs_wkt), traditional_srs(crs_wkt))
        grown = []
        for wkt in self.wkts:
            geometry = ogr.CreateGeometryFromWkt(wkt)
            if geometry is None or geometry.IsEmpty():
                continue
            if transform is not None:
                checked(geometry.Transform, transform)
            grown.append(geometry.Buffer(distance, 4).ExportToWkt())  # each one valid: Aoi unites them
        return Aoi(grown, crs_wkt, "LABELLED") if grown else None


@dataclass
class Suggestions:
    """The places suggested: where they were written, how many, and per predicted class."""
    output: str
    count: int
    least_uncertainty: float  # the lowest uncertainty among them
    per_class: dict[int, int] = field(default_factory=dict)


def _order_keys(seed: int, row: int, cols: slice) -> np.ndarray:
    """A seeded random key per pixel of a row, the same however the map is read: it breaks ties of uncertainty."""
    return np.random.default_rng([seed, row]).random(cols.stop)[cols]


def _candidates(src: RasterSource, classes: RasterSource | None, zone: Aoi | None, wanted: int, seed: int,
                per_class: bool, weighted: bool, feedback: Feedback) -> tuple[np.ndarray, int]:
    """The `wanted` first pixels outside `zone` in the selection's order (per class with `per_class`); and a count.

    The count is of the pixels that could be chosen at all. Rows of (uncertainty, key, row, col, predicted class or
    -1, score), by score (highest first): the uncertainty itself, or, `weighted`, log(key) / uncertainty: the first
    n by that score are a draw of n without replacement with chances proportional to the uncertainty (Efraimidis &
    Spirakis 2006).
    """
    best = np.zeros((0, 6))
    usable = 0
    for top in range(0, src.height, STRIP_ROWS):
        check_cancelled(feedback)
        win = Window(top, 0, min(STRIP_ROWS, src.height - top), src.width)
        values, valid = src.read(win)
        u = values[0].astype(np.float64)
        ok = valid & np.isfinite(u)
        if zone is not None:
            ok &= ~zone.inside_mask(src.geotransform, win)
        predicted = np.full(u.shape, -1.0)
        if classes is not None:
            class_values, class_valid = classes.read(win)
            predicted = np.where(class_valid, class_values[0], -1).astype(np.float64)
        rows, cols = np.nonzero(ok)
        usable += len(rows)
        keys = np.concatenate([_order_keys(seed, top + r, slice(0, src.width)) for r in range(win.height)]) \
            .reshape(win.height, src.width)[rows, cols]
        chosen_u = u[rows, cols]
        score = chosen_u
        if weighted:
            with np.errstate(divide="ignore"):
                score = np.where(chosen_u > 0, np.log(keys) / np.where(chosen_u > 0, chosen_u, 1), -np.inf)
        found = np.column_stack([chosen_u, keys, rows + top, cols, predicted[rows, cols], score])
        merged = np.concatenate([best, found])
        merged = merged[np.lexsort((merged[:, 1], -merged[:, 5]))]  # by score; ties in seeded order
        best = merged[_rank_in_class(merged[:, 4]) < wanted] if per_class else merged[:wanted]
        feedback.set_progress(100.0 * (top + win.height) / src.height)
    return best, usable


def _rank_in_class(predicted: np.ndarray) -> np.ndarray:
    """Each row's place among the rows of its class, in their order."""
    ranks = np.empty(len(predicted), np.int64)
    for k in np.unique(predicted):
        members = np.flatnonzero(predicted == k)
        ranks[members] = np.arange(len(members))
    return ranks


def _spread(candidates: np.ndarray, count: int, min_distance: float, balance: bool) -> list[int]:
    """Indices of candidates (in order of preference) kept at least `min_distance` px apart.

    With `balance`, taken in turn from each predicted class.
    """
    cell = max(min_distance, 1e-9)
    grid: dict[tuple[int, int], list[tuple[float, float]]] = {}

    def free(r: float, c: float) -> bool:
        gr, gc = int(r // cell), int(c // cell)
        return all((r - r2) ** 2 + (c - c2) ** 2 >= min_distance ** 2
                   for dr in (-1, 0, 1) for dc in (-1, 0, 1) for r2, c2 in grid.get((gr + dr, gc + dc), ()))

    queues = [np.arange(len(candidates))]
    if balance:
        queues = [np.flatnonzero(candidates[:, 4] == k) for k in np.unique(candidates[:, 4])]
    positions = [0] * len(queues)
    chosen: list[int] = []
    while len(chosen) < count and any(p < len(q) for p, q in zip(positions, queues)):
        for q, queue in enumerate(queues):  # one from each class in turn (one queue without balance)
            while positions[q] < len(queue):
                i = queue[positions[q]]
                positions[q] += 1
                r, c = candidates[i, 2], candidates[i, 3]
                if free(r, c):
                    grid.setdefault((int(r // cell), int(c // cell)), []).append((r, c))
                    chosen.append(int(i))
                    break
            if len(chosen) == count:
                break
    return chosen


@reports_errors
def suggest_labels(uncertainty: str, output: str, *, count: int = 50, min_distance: float = 32,
                   classes: str | None = None, labelled: Places | None = None, balance: bool = False,
                   shape: str = "point", chip_size: int = 64, selection: str = "weighted", seed: int = 0,
                   model: str | None = None, feedback: Feedback | None = None,
                   check_only: bool = False) -> Suggestions | None:
    """Write to `output` (GeoPackage) `count` places the map is unsure of, spread apart.

    Args:
        uncertainty: An uncertainty map (band 1: larger is less sure), such as classify's OUTPUT_UNCERTAINTY.
        output: The GeoPackage to write (layer "suggestions").
        count: How many places.
        min_distance: The least distance between two places, and from a place already labelled, in pixels.
        classes: The class map on the same grid: each place's predicted class, and the label's list of classes.
        labelled: Places already labelled (any geometry, any CRS): none is suggested within `min_distance` of them.
        balance: Take the places in turn from each predicted class (needs `classes`).
        shape: "point" (the pixel's centre) or "chip" (a square of `chip_size` px around it).
        chip_size: The side of a chip, in pixels.
        selection: "weighted" (drawn with chances proportional to the uncertainty) or "least_sure" (the most
            uncertain first).
        seed: The draw (and the order of ties); the same seed gives the same places.
        feedback: Progress, cancel and messages.
        model: A model file: then `uncertainty` is the raster to classify, with its entropy and classes written to
            temporary files first (soft votes, the model's own input scaling), and the places drawn from them.
        check_only: Make the checks a run makes before it reads the map, then return None.
    """
    feedback = feedback or SilentFeedback()
    if model is not None:
        if classes:
            raise PatchworkError("CLASSES: with a MODEL the classes are those of its classification; leave CLASSES "
                                 "empty.")
        return _from_a_model(uncertainty, model, output, dict(
            count=count, min_distance=min_distance, labelled=labelled, balance=balance, shape=shape,
            chip_size=chip_size, selection=selection, seed=seed), feedback, check_only)
    if not output.lower().endswith(".gpkg"):
        raise PatchworkError(f"OUTPUT: the places are written as a GeoPackage: give it a .gpkg name, not '{output}'.")
    if shape not in SHAPES:
        raise PatchworkError(f"SHAPE: '{shape}' is not one of {', '.join(SHAPES)}.")
    if selection not in SELECTIONS:
        raise PatchworkError(f"SELECTION: '{selection}' is not one of {', '.join(SELECTIONS)}.")
    if count < 1 or min_distance < 0 or chip_size < 1:
        raise PatchworkError("COUNT, MIN_DISTANCE and CHIP_SIZE: give at least 1 place, a distance of 0 or more and "
                             "a chip of at least 1 px.")
    if balance and not classes:
        raise PatchworkError("BALANCE: taking places in turn from each class needs the CLASSES map.")
    check_outputs({"OUTPUT": output}, {"INPUT": uncertainty, "CLASSES": classes})
    require_writable_folder(os.path.dirname(os.path.abspath(output)), "OUTPUT")
    with RasterSource(uncertainty, "INPUT") as src:
        class_src = RasterSource(classes, "CLASSES") if classes else None
        try:
            if class_src is not None:
                src.require_same_grid(class_src)
            if check_only:
                return None
            pixel = math.hypot(src.geotransform[1], src.geotransform[2])
            zone = labelled.keep_away_zone(src.crs_wkt, min_distance * pixel) if labelled else None
            wanted = count * 64
            while True:
                candidates, usable = _candidates(src, class_src, zone, wanted, seed, balance,
                                                 selection == "weighted", feedback)
                chosen = _spread(candidates, count, min_distance, balance)
                if len(chosen) >= count or len(candidates) >= usable:
                    break
                wanted *= 8  # the closest candidates crowded each other out: look further down the list
            names, colours = legend(class_src.dataset.GetRasterBand(1)) if class_src is not None else ({}, {})
        finally:
            if class_src is not None:
                class_src.close()
        picked = candidates[chosen]
        _write(output, picked, src.geotransform, src.crs_wkt, shape, chip_size, names, colours)
    if len(picked) < count:
        feedback.info(f"Only {len(picked)} places are {min_distance:g} px from each other and from the labelled "
                      "ones; lower MIN_DISTANCE for more.")
    per_class = {int(k): int((picked[:, 4] == k).sum()) for k in np.unique(picked[:, 4]) if k >= 0}
    least = float(picked[:, 0].min()) if len(picked) else math.nan
    feedback.info(f"{len(picked)} places to label, uncertainty {least:.3f} to {float(picked[:, 0].max()):.3f}"
                  + (" — " + ", ".join(f"{names.get(k, k)}: {n}" for k, n in per_class.items()) if per_class else "")
                  if len(picked) else "No place to suggest: the map has no pixel with an uncertainty.")
    return Suggestions(output, len(picked), least, per_class)


def _from_a_model(raster: str, model: str, output: str, settings: dict, feedback: Feedback,
                  check_only: bool) -> Suggestions | None:
    """Classify `raster` with `model` into temporary maps (classes, entropy), then suggest places from them."""
    import tempfile

    from ..models import load_model
    from .classify import classify

    check_outputs({"OUTPUT": output}, {"INPUT": raster, "MODEL": model})
    values = load_model(model).info.task != "classification"  # a regression: the tiles' variance, no classes
    with tempfile.TemporaryDirectory(prefix="patchwork-suggest-") as folder:
        classes, unsure = os.path.join(folder, "classes.tif"), os.path.join(folder, "uncertainty.tif")
        ran = classify(raster, model, classes, aggregation="mean" if values else "softvote", uncertainty=unsure,
                       feedback=feedback, check_only=check_only)
        if check_only:
            return None
        feedback.info(f"Classified with '{ran.info.name}' for its uncertainty ("
                      f"{'variance across its tiles' if values else 'entropy of its soft votes'}).")
        return suggest_labels(unsure, output, classes=None if values else classes, feedback=feedback, **settings)


def _write(path: str, picked: np.ndarray, gt, crs_wkt: str, shape: str, chip_size: int, names: dict[int, str],
           colours: dict[int, str]) -> None:
    """The places, in the order they were chosen, with an empty label ready to fill."""
    half = chip_size / 2 if shape == "chip" else 0

    def rows():
        for rank, (value, _key, row, col, predicted, _score) in enumerate(picked, 1):
            known = predicted >= 0
            yield ((rank, float(value), int(predicted) if known else None,
                    names.get(int(predicted), f"class {int(predicted)}") if known else None, None),
                   _place(gt, row + 0.5, col + 0.5, half))

    write_styled_layer(path, LAYER, crs_wkt, ogr.wkbPoint if shape == "point" else ogr.wkbPolygon, FIELDS, rows(),
                       labelling_style(names, colours, LABEL_FIELD,
                                       [name for name, _t in FIELDS if name != LABEL_FIELD], [],
                                       polygons=shape == "chip"))


def _place(gt, row: float, col: float, half: float) -> ogr.Geometry:
    """A pixel-centre point, or the square of side 2·`half` px around it, in map coordinates."""
    def world(r: float, c: float) -> tuple[float, float]:
        return gt[0] + c * gt[1] + r * gt[2], gt[3] + c * gt[4] + r * gt[5]

    if not half:
        point = ogr.Geometry(ogr.wkbPoint)
        point.AddPoint_2D(*world(row, col))
        return point
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for dr, dc in ((-half, -half), (-half, half), (half, half), (half, -half), (-half, -half)):
        ring.AddPoint_2D(*world(row + dr, col + dc))
    polygon = ogr.Geometry(ogr.wkbPolygon)
    polygon.AddGeometry(ring)
    return polygon
