"""Recognition: where in a raster does something look like the query image?

A recognition model turns an image tile into a vector (an embedding). The query image is resampled to the model's
tile and embedded once; every tile of the raster is embedded and scored by its cosine similarity to the query, and
the scores are stitched into a float32 map on the raster's grid, overlapping tiles blended by the window, with
every guarantee of tiled classification (blocks, workers, MASK, streaming, atomic output).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
from osgeo import gdal

from ..engine.journal import file_digest
from ..engine.model_input import ModelFile, input_transform
from ..errors import PatchworkError, reports_errors
from ..io.aoi import Aoi
from ..io.gdal_errors import opened
from ..io.raster import RasterSource
from ..io.web import XyzSource
from ..models.base import Model, require_model_file
from ..models.similarity import SimilarityModel
from ..progress import Feedback
from ..tasks.classify import ClassifyResult, classify


def query_vector(embedder: Model, query: str, bands: list[int] | None, scale: float, offset: float) -> np.ndarray:
    """The query image resampled (bilinear) to the model's tile and embedded."""
    tile = int(embedder.info.tile_size or embedder.info.default_tile_size)
    with RasterSource(query, "QUERY") as src:
        transform = input_transform(src, embedder.info, bands, scale, offset)
    resampled = opened(gdal.Translate, "", query, format="MEM", width=tile, height=tile, resampleAlg="bilinear",
                       bandList=transform.bands)
    data = resampled.ReadAsArray().reshape(len(transform.bands), tile, tile)
    valid = np.ones((tile, tile), bool)
    return embedder.embed(transform.apply(data, valid)[None])[0]


@reports_errors
def recognize(raster: str | XyzSource, model: Model | str, query: str, output: str, *, bands: list[int] | None = None,
              scale: float = 1.0, offset: float = 0.0, tile_size: int | None = None, overlap: int | None = None,
              window: str = "hann", batch_size: int = 4, workers: int = 0, scheduler: Any = None,
              resume: bool = False, block_size: int | None = None, mask: Aoi | None = None,
              resolution: float | None = None, output_grid: str = "model", device: str = "auto",
              feedback: Feedback | None = None, check_only: bool = False) -> ClassifyResult | None:
    """Map how much each part of `raster` looks like the `query` image, as the cosine similarity of embeddings.

    Args:
        raster: The raster to search (a GDAL-readable path), or an XYZ tile service (XyzSource), read as classify
            reads one: at the zoom of `resolution` or the model's, over its extent or the mask's.
        model: A recognition model file (.onnx: an embedding [N, D] per image tile; Deepness's model_type
            Recognition), or the model loaded (then without DASK_SCHEDULER or RESUME).
        query: An image of what is looked for (any raster GDAL reads, e.g. a PNG or a GeoTIFF clip), resampled to
            the model's tile; the same bands, scale and offset as the raster.
        output: The float32 similarity map (−1 to 1) on the raster's grid.
        bands: The input bands fed to the model, 1-based, in its order (default: all).
        scale: Input values are multiplied by this (1/255 for 8-bit imagery), then `offset` is added.
        offset: See `scale`.
        tile_size: The tile side in pixels (default: the model's, else 224).
        overlap: Pixels neighbouring tiles share (default: the model's, else 0).
        window: How overlapping tiles' scores are blended: "boxcar", "hann" or "triangular".
        batch_size: Tiles per model call.
        workers: Threads computing blocks (0: every core).
        scheduler: A Dask scheduler's address (tcp://host:8786) or a distributed.Client: the workers load the model
            file and are sent the query's embedding.
        resume: Keep finished blocks in a journal beside the output, so that the same run (the same query too)
            started again continues.
        block_size: The side of the blocks in pixels (default about 768 with tiles, 1024 for a per-pixel model).
        mask: Polygons (any CRS) outside which the map is nodata.
        resolution: The pixel size the model runs at, in the raster's units (default: the model's resolution
            metadata, else the raster's own).
        output_grid: "model": the map on that grid; "input": brought back to the raster's grid (averaged).
        device: Where the model computes: "auto", "cpu" or "cuda".
        feedback: Progress, cancel and messages (default: silent).
        check_only: Make the checks a run makes before it reads pixels, then return None.

    Returns:
        classify's result for the similarity map, or None with `check_only`.

    Raises:
        PatchworkError: Bad input, a model that is not a recognition model, an unreadable query; nothing is
            written.
    """
    if isinstance(model, str):
        require_model_file(model)
        embedder = ModelFile(os.path.abspath(model), False, device, file_digest(model))
        loaded = embedder.read()
    elif scheduler or resume:  # the query would not travel with it, nor tell one run's journal from another's
        raise PatchworkError("DASK_SCHEDULER, RESUME: give the recognition model's file, not a loaded model.")
    else:
        embedder, loaded = None, model
    if loaded.info.task != "recognition":
        raise PatchworkError(f"MODEL: '{loaded.info.name}' is a {loaded.info.task} model, not a recognition one (an "
                             "embedding per tile): use Classify raster or Detect objects for it.")
    vector = query_vector(loaded, query, bands, scale, offset)
    similarity = SimilarityModel(loaded, vector)  # (refuses a query it cannot compare with, before the run)
    if embedder is not None:  # the file and the query's embedding: what Dask workers load and a journal tells apart
        similarity = dataclasses.replace(embedder, query=tuple(float(v) for v in vector))
    return classify(raster, similarity, output, bands=bands, scale=scale, offset=offset, tile_size=tile_size,
                    overlap=overlap, window=window, aggregation="mean", batch_size=batch_size, workers=workers,
                    scheduler=scheduler, resume=resume, block_size=block_size, mask=mask, resolution=resolution,
                    output_grid=output_grid, device=device, feedback=feedback, check_only=check_only)
