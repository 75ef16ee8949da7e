"""The maps a run writes, all or none.

A class map (palette, names, style) with its probabilities, or values; and what is derived from the finished
map (areas, polygons), renamed into place together with it.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from functools import partial

import numpy as np

from ..io.palette import (
    apply_colour_table,
    categorized_qml,
    class_colours,
    paletted_qml,
    qml_path,
    uncertainty_qml,
)
from ..io.partials import Log
from ..io.writer import (
    DerivedFile,
    GeoTiffWriter,
    publish_all,
    write_text,
)
from ..models import ModelInfo
from ..progress import Feedback
from .blocks import (
    AOA_NODATA,
    class_nodata,
)
from .journal import BlockResult
from .postprocess import AreaCounter, class_areas, polygonize, sieve_in_place, write_area_table

OUTPUT_FORMATS: tuple[str, ...] = ("GTiff", "COG")
AOA_NAMES, AOA_COLOURS = ["outside the training data", "inside"], ["#d7191c", "#1a9641"]


class MapWriter:
    """The rasters a run writes, on `stack` (removed unless the run completes), fed blocks in plan order.

    Classification: a class map (palette, class names, `.qml` after the run) and optional probabilities;
    regression: float32 values. Shared by tiled classification and chip stitching.
    """

    def __init__(self, stack: ExitStack, width: int, height: int, geotransform, crs_wkt: str, info: ModelInfo,
                 output: str, probabilities: str | None = None, aggregation: str = "hardvote",
                 log: Log | None = None, cog: bool = False, min_segment: int = 0,
                 cancelled: Callable[[], bool] | None = None, count_areas: bool = False,
                 uncertainty: str | None = None, measure: str | None = None, aoa: str | None = None) -> None:
        self.info, self.output = info, output
        self.files: list[GeoTiffWriter] = []
        self.derived: list[DerivedFile] = []
        self.style: str | None = None  # the class map's .qml
        stack.push(self._all_or_none)  # first: a writer whose creation fails still has the earlier ones removed
        gt, crs, k = geotransform, crs_wkt, info.n_outputs
        self.probabilities = None
        self.counter: AreaCounter | None = None  # classes' pixels and areas, as the blocks are written
        self.covered = 0  # pixels written with data
        averaged = "AVERAGE" if cog else None  # COG overviews: the mode of classes, the mean of values
        if info.task == "classification":
            dtype, nodata = class_nodata(info.class_values)
            sieve = partial(sieve_in_place, min_pixels=min_segment) if min_segment >= 2 else None
            if count_areas:
                self.counter = AreaCounter(gt, crs, height, info.class_values, nodata)
            self.main = self._file(GeoTiffWriter(output, width, height, 1, dtype, gt, crs, nodata, log=log,
                                                 cog_overviews="MODE" if cog else None, before_commit=sieve,
                                                 cancelled=cancelled))
            self.colours = class_colours(info.n_classes, info.class_colors)
            apply_colour_table(self.main.dataset.GetRasterBand(1), info.class_values, info.class_names, self.colours)
            self.style = self.derive(qml_path(output), lambda _map, temporary: write_text(
                temporary, paletted_qml(info.class_values, info.class_names, self.colours))).path
            self.main.set_band_descriptions(["class"])
            if probabilities:
                self.probabilities = self._file(GeoTiffWriter(
                    probabilities, width, height, k, np.float32, gt, crs, float("nan"), log=log,
                    cog_overviews=averaged, cancelled=cancelled))
                kind = "P" if aggregation == "softvote" else "vote share"
                self.probabilities.set_band_descriptions([f"{kind}({name})" for name in info.class_names])
        else:
            self.main = self._file(GeoTiffWriter(output, width, height, k, np.float32, gt, crs, float("nan"),
                                                 log=log, cog_overviews=averaged, cancelled=cancelled))
            self.main.set_band_descriptions(info.output_names)
        self.uncertainty = None
        if uncertainty:  # one band (a class map's), or a variance per value band
            bands = 1 if info.task == "classification" else k
            self.uncertainty = self._file(GeoTiffWriter(uncertainty, width, height, bands, np.float32, gt, crs,
                                                        float("nan"), log=log, cog_overviews=averaged,
                                                        cancelled=cancelled))
            self.uncertainty.set_band_descriptions(
                [measure] if bands == 1 else [f"{measure}({name})" for name in info.output_names])
            if info.task == "classification":  # in [0, 1]: one colour ramp reads the same on every map
                self.derive(qml_path(uncertainty), lambda _map, temporary: write_text(temporary, uncertainty_qml()))
        self.aoa = None
        if aoa:  # 1 inside the model's area of applicability, 0 outside
            self.aoa = self._file(GeoTiffWriter(aoa, width, height, 1, np.uint8, gt, crs, AOA_NODATA, log=log,
                                                cog_overviews="MODE" if cog else None, cancelled=cancelled))
            apply_colour_table(self.aoa.dataset.GetRasterBand(1), [0, 1], AOA_NAMES, AOA_COLOURS)
            self.aoa.set_band_descriptions(["area of applicability"])
            self.derive(qml_path(aoa), lambda _map, temporary: write_text(
                temporary, paletted_qml([0, 1], AOA_NAMES, AOA_COLOURS)))

    def _file(self, writer: GeoTiffWriter) -> GeoTiffWriter:
        self.files.append(writer)
        return writer

    def _all_or_none(self, exc_type, _exc, _tb) -> bool:
        """At the end of the run: every file finished before any is renamed onto its path.

        Finishing is closing, checking, sieving and the COG rewrite: an error or a cancel in one of the files leaves
        none of them, and replaces no earlier file.
        """
        if exc_type is not None:
            self._abort_all()
            return False
        try:
            for writer in self.files:
                writer.finish()
            for made in self.derived:  # from the finished maps, still under their temporary names
                made.finish()
        except BaseException:
            self._abort_all()
            raise
        publish_all([*self.files, *self.derived])
        return False

    def _abort_all(self) -> None:
        for output in [*self.files, *self.derived]:
            output.abort()

    def derive(self, path: str, make: Callable[[str, str], object]) -> DerivedFile:
        """A file made from the finished class map, committed with the maps: `make(class_map, temporary_path)`."""
        made = DerivedFile(path, lambda temporary: make(self.main.tmp_path, temporary))
        self.derived.append(made)
        return made

    def write(self, result: BlockResult) -> None:
        """Write one finished block into the outputs."""
        w = result.window
        self.covered += result.covered
        self.main.write_block(result.main, w.row_off, w.col_off)
        if self.counter is not None:
            self.counter.add(result.main, w.row_off)
        if self.probabilities is not None:
            self.probabilities.write_block(result.probabilities, w.row_off, w.col_off)
        if self.uncertainty is not None:
            self.uncertainty.write_block(result.uncertainty, w.row_off, w.col_off)
        if self.aoa is not None:
            self.aoa.write_block(result.aoa, w.row_off, w.col_off)


class ClassMapSideOutputs:
    """A class map's style, area table and polygons, made from the finished map and renamed with it (all or none).

    The areas are counted as the blocks were written, or read back from the map when small segments were merged.
    """

    def __init__(self, writers: MapWriter, area_table: str | None, vector_output: str | None,
                 feedback: Feedback) -> None:
        self.writers, self.feedback, self._areas = writers, feedback, None
        self.style, self.polygons = writers.style, None
        info = writers.info
        if info.task != "classification":
            return
        if area_table:
            writers.derive(area_table, lambda class_map, temporary: write_area_table(temporary,
                                                                                     self.areas(class_map)))
        if vector_output:
            self.polygons = writers.derive(vector_output, lambda class_map, temporary: polygonize(
                class_map, temporary, info.class_values, info.class_names, feedback,
                categorized_qml(info.class_values, info.class_names, writers.colours)))

    def areas(self, class_map: str) -> list | None:
        """The area per class (None for values), counted once."""
        info = self.writers.info
        if self._areas is None and info.task == "classification":
            counter = self.writers.counter
            self._areas = counter.areas(info.class_values, info.class_names) if counter else \
                class_areas(class_map, info.class_values, info.class_names, self.feedback)
        return self._areas
