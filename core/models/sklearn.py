"""scikit-learn per-pixel estimators: `.skops` files load safely; pickles only when the user trusts them."""
from __future__ import annotations

import os

import numpy as np

from ..dependencies import require
from ..errors import PatchworkError
from .base import ModelInfo, PixelModel, default_class_names, value_names

PICKLE_EXTENSIONS = (".pkl", ".pickle", ".joblib")
# Types from these packages are what a fitted scikit-learn estimator is made of; skops rebuilds
# them without running code from the file. Anything else needs the user's explicit trust.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


def load_estimator(path: str, trust: bool):
    """Load a fitted estimator from .skops (safe) or .pkl/.pickle/.joblib (only with `trust`)."""
    ext = os.path.splitext(path)[1].lower()
    if ext in PICKLE_EXTENSIONS:
        if not trust:
            raise PatchworkError(
                f"MODEL: '{os.path.basename(path)}' is a pickle, and loading a pickle runs whatever code it "
                "contains. Patchwork loads it only if you trust where it came from: tick 'Trust this model file' "
                "(TRUST_MODEL=true). Better: save the model with skops (skops.io.dump) and use the .skops file."
            )
        require("scikit-learn", "Pickled scikit-learn models")
        import joblib  # ships with scikit-learn; reads plain pickles too

        try:
            return joblib.load(path)
        except Exception as exc:  # noqa: BLE001 - a broken pickle can raise anything
            raise PatchworkError(f"MODEL: cannot load '{path}' as a pickled model ({exc}).") from exc
    require("scikit-learn", "scikit-learn models")
    require("skops", ".skops models")
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - skops raises zipfile/JSON/KeyError on corrupt files
        raise PatchworkError(f"MODEL: '{path}' is not a readable .skops file ({exc}). Save it again with "
                             "skops.io.dump.") from exc
    foreign = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if foreign and not trust:
        raise PatchworkError(
            f"MODEL: '{os.path.basename(path)}' contains types from outside scikit-learn, numpy and scipy "
            f"({', '.join(foreign)}). Loading them could run their code: tick 'Trust this model file' "
            "(TRUST_MODEL=true) only if you trust where the file came from."
        )
    try:
        return sio.load(path, trusted=untrusted)
    except Exception as exc:  # noqa: BLE001
        raise PatchworkError(f"MODEL: cannot load '{path}' with skops ({exc}).") from exc


class SklearnModel(PixelModel):
    def __init__(self, estimator, name: str) -> None:
        if not hasattr(estimator, "predict"):
            raise PatchworkError(f"MODEL: '{name}' holds a {type(estimator).__name__}, not a fitted estimator "
                                 "with a predict() method.")
        self.estimator = estimator
        n_bands = getattr(estimator, "n_features_in_", None)
        classes = getattr(estimator, "classes_", None)
        if classes is not None:
            classes = np.asarray(classes)
            numeric = np.issubdtype(classes.dtype, np.integer) or (
                np.issubdtype(classes.dtype, np.floating) and np.all(classes == np.round(classes)))
            values = [int(v) for v in classes] if numeric else list(range(len(classes)))
            names = default_class_names(values) if numeric else [str(v) for v in classes]
            self.info = ModelInfo(name=name, n_bands=n_bands, class_values=values, class_names=names, per_pixel=True)
        else:
            outputs = value_names(int(getattr(estimator, "n_outputs_", 1)))
            self.info = ModelInfo(name=name, task="regression", n_bands=n_bands, output_names=outputs, per_pixel=True)
        self.classes = classes

    @classmethod
    def load(cls, path: str, trust: bool = False) -> SklearnModel:
        return cls(load_estimator(path, trust), os.path.basename(path))

    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        if self.info.task == "classification":
            if hasattr(self.estimator, "predict_proba"):
                return np.asarray(self.estimator.predict_proba(pixels), dtype=np.float32)
            return np.searchsorted(self.classes, self.estimator.predict(pixels)).astype(np.int64)
        values = np.asarray(self.estimator.predict(pixels), dtype=np.float32)
        return values.reshape(len(values), -1)
