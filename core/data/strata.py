"""The strata of a class map, read block by block: their pixels and areas, and random pixels drawn in each.

A stratum is a map class (the usual design), a value of a separate STRATA raster on the map's grid (Stehman 2014),
or the whole map (simple random sampling). Nodata in the map or the strata raster, and pixels outside an AOI, are
in no stratum. Both passes stream the rasters in strips, so memory never grows with the map.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from osgeo import osr

from ..engine.postprocess import row_pixel_areas
from ..errors import PatchworkError
from ..geometry import Window, window_geotransform
from ..io.aoi import Aoi
from ..io.palette import legend
from ..io.raster import RasterSource
from ..progress import Feedback, SilentFeedback, check_cancelled

STRIP_ROWS = 256
DESIGNS = ("map_classes", "strata", "simple_random")


@dataclass
class StrataCount:
    """What one pass over a map finds: per stratum and per map class, pixels and square metres."""
    strata: list[int]
    stratum_pixels: np.ndarray
    stratum_m2: np.ndarray  # NaN without a CRS
    classes: list[int]
    class_pixels: np.ndarray
    class_m2: np.ndarray
    unstratified: int = 0  # map pixels with no stratum (nodata in the STRATA raster)

    @property
    def has_areas(self) -> bool:
        """Whether the map has a CRS, so its pixels have areas."""
        return bool(np.isfinite(self.stratum_m2).all())

    @property
    def stratum_sizes(self) -> dict[int, float]:
        """The strata's weights in the estimators: their areas, or their pixels on a map without a CRS."""
        sizes = self.stratum_m2 if self.has_areas else self.stratum_pixels
        return {h: float(s) for h, s in zip(self.strata, sizes)}


class StrataGrid:
    """A class map, its strata and an AOI, read together in strips of rows."""

    def __init__(self, class_map: str, strata: str | None = None, aoi: Aoi | None = None,
                 design: str = "map_classes") -> None:
        if design not in DESIGNS:
            raise PatchworkError(f"DESIGN: '{design}' is not one of {', '.join(DESIGNS)}.")
        if design == "strata" and not strata:
            raise PatchworkError("STRATA: the design 'stratified by the STRATA raster' needs a STRATA raster.")
        self.design = design
        self.map = RasterSource(class_map, "INPUT")
        self.strata = None
        try:
            self._check_class_raster(self.map)
            if design == "strata":
                self.strata = RasterSource(strata, "STRATA")
                self._check_class_raster(self.strata)
                problems = self.map.grid_differences(self.strata)
                if problems:
                    raise PatchworkError(f"STRATA: '{os.path.basename(strata)}' is not on the class map's grid: "
                                         f"{'; '.join(problems)}. Align it to the map first (Raster ▸ Align "
                                         "rasters, nearest neighbour).")
            self.aoi = aoi.transformed(self.map.crs_wkt) if aoi is not None else None
            self.window = Window(0, 0, self.map.height, self.map.width)
            if self.aoi is not None:
                self.window = self.aoi.pixel_window(self.map.geotransform, self.map.height, self.map.width,
                                                    self.map.footprint_wkt())
        except BaseException:
            self.close()
            raise
        self.srs = None
        if self.map.crs_wkt:
            self.srs = osr.SpatialReference()
            self.srs.ImportFromWkt(self.map.crs_wkt)
            if not self.srs.IsGeographic() and not self.srs.GetLinearUnits():
                self.close()
                raise PatchworkError("INPUT: the class map's CRS has no linear unit, so its pixels have no area. "
                                     "Assign or reproject it to a CRS in metres (Raster ▸ Projections).")

    @staticmethod
    def _check_class_raster(src: RasterSource) -> None:
        if src.count != 1 or not np.issubdtype(src.dtype, np.integer):
            raise PatchworkError(f"{src.role}: '{os.path.basename(src.path)}' is not a class raster (it has "
                                 f"{src.count} band(s) of {src.dtype}); give a single-band integer raster, such as a "
                                 "Patchwork class map.")

    def close(self) -> None:
        """Close the rasters."""
        for src in (self.map, self.strata):
            if src is not None:
                src.close()

    def __enter__(self) -> StrataGrid:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def legend(self) -> tuple[dict[int, str], dict[int, str]]:
        """The map's class names and colours, as Patchwork and GDAL store them (empty when it names none)."""
        return legend(self.map.dataset.GetRasterBand(1))

    def strips(self, feedback: Feedback) -> Iterator[tuple[Window, np.ndarray, np.ndarray, np.ndarray]]:
        """Per strip: its window, map classes, strata and which pixels are in a stratum (in the AOI, not nodata)."""
        top, bottom = self.window.row_off, self.window.row_off + self.window.height
        for row in range(top, bottom, STRIP_ROWS):
            check_cancelled(feedback)
            win = Window(row, self.window.col_off, min(STRIP_ROWS, bottom - row), self.window.width)
            values, valid = self.map.read(win)
            classes = values[0].astype(np.int64)
            if self.strata is not None:
                strata_values, strata_valid = self.strata.read(win)
                strata, in_stratum = strata_values[0].astype(np.int64), valid & strata_valid
            else:
                strata = classes if self.design == "map_classes" else np.zeros_like(classes)
                in_stratum = valid
            if self.aoi is not None:
                inside = self.aoi.inside_mask(self.map.geotransform, win)
                valid, in_stratum = valid & inside, in_stratum & inside
            yield win, classes, strata, (valid, in_stratum)
            feedback.set_progress(100.0 * (row + win.height - top) / max(bottom - top, 1))

    def count(self, feedback: Feedback | None = None) -> StrataCount:
        """Pixels and areas per stratum and per map class (one pass)."""
        feedback = feedback or SilentFeedback()
        by_stratum: dict[int, list[float]] = {}
        by_class: dict[int, list[float]] = {}
        unstratified = 0
        for win, classes, strata, (valid, in_stratum) in self.strips(feedback):
            areas = np.broadcast_to(row_pixel_areas(window_geotransform(self.map.geotransform, win), self.srs,
                                                    win.height)[:, None], classes.shape)
            unstratified += int((valid & ~in_stratum).sum())
            for table, values, mask in ((by_stratum, strata, in_stratum), (by_class, classes, valid)):
                found, inverse = np.unique(values[mask], return_inverse=True)
                pixels = np.bincount(inverse, minlength=len(found))
                m2 = np.bincount(inverse, weights=areas[mask], minlength=len(found))
                for value, k, a in zip(found.tolist(), pixels.tolist(), m2.tolist()):
                    entry = table.setdefault(value, [0, 0.0])
                    entry[0] += k
                    entry[1] += a
        if not by_stratum:
            raise PatchworkError("INPUT: the class map has no pixel with a class" +
                                 (" inside the AOI" if self.aoi is not None else "") +
                                 (" and a stratum" if self.strata is not None else "") +
                                 "; check its nodata value and the AOI.")
        strata, classes = sorted(by_stratum), sorted(by_class)
        return StrataCount(
            strata, np.array([by_stratum[h][0] for h in strata], np.int64),
            np.array([by_stratum[h][1] for h in strata]), classes,
            np.array([by_class[c][0] for c in classes], np.int64), np.array([by_class[c][1] for c in classes]),
            unstratified)

    def draw(self, counts: StrataCount, sample_sizes: np.ndarray, seed: int,
             feedback: Feedback | None = None) -> list[tuple[int, int, int, int]]:
        """Stratified random pixels, without replacement: (row, column, map class, stratum) per point.

        Each stratum's points are ranks drawn among its pixels in reading order (row by row), found in a second
        pass; the same seed, map and strata give the same points.
        """
        feedback = feedback or SilentFeedback()
        rng = np.random.default_rng(seed)
        wanted = {h: np.sort(rng.choice(int(n_pixels), int(n), replace=False))
                  for h, n_pixels, n in zip(counts.strata, counts.stratum_pixels, sample_sizes) if n > 0}
        seen = dict.fromkeys(wanted, 0)
        points = []
        for win, classes, strata, (_valid, in_stratum) in self.strips(feedback):
            for h, ranks in wanted.items():
                members = np.flatnonzero(in_stratum & (strata == h))
                start, stop = np.searchsorted(ranks, [seen[h], seen[h] + len(members)])
                for flat in members[ranks[start:stop] - seen[h]].tolist():
                    r, c = divmod(flat, win.width)
                    points.append((win.row_off + r, win.col_off + c, int(classes[r, c]), h))
                seen[h] += len(members)
        return points
