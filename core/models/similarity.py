"""A recognition model (an embedding per image tile) read as a map model.

Each tile's value is its cosine similarity to a query embedding, the same over all its pixels: what
patchwork:recognize stitches.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import PatchworkError
from .base import Model


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
