"""Recognition: where in a raster does something look like the query image?

A recognition model turns an image tile into a vector (an embedding). The query image is resampled to the model's
tile and embedded once; every tile of the raster is embedded and scored by its cosine similarity to the query, and
the scores are stitched into a float32 map on the raster's grid, overlapping tiles blended by the window, with
every guarantee of tiled classification (blocks, workers, MASK, streaming, atomic output).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from osgeo import gdal

from ..engine.model_input import input_transform
from ..errors import PatchworkError, reports_errors
from ..io.aoi import Aoi
from ..io.gdal_errors import opened
from ..io.raster import RasterSource
from ..models import load_model
from ..models.base import Model, require_model_file
from ..progress import Feedback
from ..tasks.classify import ClassifyResult, classify


class SimilarityModel(Model):
    """A recognition model as a map model: each tile's cosine similarity to the query, over the whole tile."""

    def __init__(self, embedder: Model, query: np.ndarray) -> None:
        self.embedder = embedder
        norm = float(np.linalg.norm(query)) if np.all(np.isfinite(query)) else float("nan")
        if not norm > 0:
            raise PatchworkError(f"QUERY: the model '{embedder.info.name}' gives the query image an embedding that is "
                                 f"{'all zeros' if norm == 0 else 'not a finite number'}, so nothing can be compared "
                                 "with it. Check SCALE, OFFSET and BANDS, or the model.")
        self.query = query / norm
        self.info = dataclasses.replace(embedder.info, task="regression", output_names=["similarity"])
        self.device, self.device_warning = embedder.device, embedder.device_warning

    def predict(self, batch: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """(N, 1, h, w): each tile's similarity, the same over all its pixels."""
        vectors = self.embedder.embed(batch)
        if not np.all(np.isfinite(vectors)):  # a similarity of 0 would be read as "unlike the query"
            raise PatchworkError(f"MODEL: '{self.embedder.info.name}' gave a tile an embedding that is not a finite "
                                 "number; no similarity can be computed there. Check SCALE, OFFSET and BANDS, or the "
                                 "model.")
        norms = np.linalg.norm(vectors, axis=1)
        similarity = np.divide(vectors @ self.query, norms, out=np.zeros(len(vectors)), where=norms > 0)
        return np.broadcast_to(similarity.astype(np.float32)[:, None, None, None],
                               (len(batch), 1, *batch.shape[2:])).copy()


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
def recognize(raster: str, model: Model | str, query: str, output: str, *, bands: list[int] | None = None,
              scale: float = 1.0, offset: float = 0.0, tile_size: int | None = None, overlap: int | None = None,
              window: str = "hann", batch_size: int = 4, workers: int = 0, mask: Aoi | None = None,
              resolution: float | None = None, device: str = "auto", feedback: Feedback | None = None,
              check_only: bool = False) -> ClassifyResult | None:
    """Map how much each part of `raster` looks like the `query` image, as the cosine similarity of embeddings.

    Args:
        raster: The raster to search.
        model: A recognition model (.onnx: an embedding [N, D] per image tile; Deepness's model_type Recognition).
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
        mask: Polygons (any CRS) outside which the map is nodata.
        resolution: The pixel size the model runs at, in the raster's units (default: the model's resolution
            metadata, else the raster's own); the map is on that grid.
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
        model = load_model(model, device=device)
    if model.info.task != "recognition":
        raise PatchworkError(f"MODEL: '{model.info.name}' is a {model.info.task} model, not a recognition one (an "
                             "embedding per tile): use Classify raster or Detect objects for it.")
    vector = query_vector(model, query, bands, scale, offset)
    return classify(raster, SimilarityModel(model, vector), output, bands=bands, scale=scale, offset=offset,
                    tile_size=tile_size, overlap=overlap, window=window, aggregation="mean", batch_size=batch_size,
                    workers=workers, mask=mask, resolution=resolution, feedback=feedback, check_only=check_only)
