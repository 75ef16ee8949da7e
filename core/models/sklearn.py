"""scikit-learn per-pixel estimators: `.skops` files load safely; pickles only when the user trusts them."""
from __future__ import annotations

import os

import numpy as np

from ..dependencies import require
from ..errors import PatchworkError
from .base import ModelInfo, PixelModel, default_class_names, value_names
from .skops_checks import audit_schema, check_fitted_values

PICKLE_EXTENSIONS = (".pkl", ".pickle", ".joblib")

# skops rebuilds objects from a .skops file without unpickling, but every type the file names is
# created, and some types run code when created (`builtins.exec` as a dict key type runs the key as
# Python). skops itself trusts primitives, containers, numpy/scipy arrays and its own list of
# estimators; the types it reports as untrusted are loaded only when each is named here: classes a
# fitted scikit-learn estimator holds (losses, link functions, trees, distance metrics, optimisers,
# kernels). Never a module prefix, never a function.
_LOSSES = ("HalfSquaredError", "AbsoluteError", "PinballLoss", "HuberLoss", "HalfPoissonLoss", "HalfGammaLoss",
           "HalfTweedieLoss", "HalfTweedieLossIdentity", "HalfBinomialLoss", "ExponentialLoss", "HalfMultinomialLoss")
SKLEARN_SUPPORT_TYPES = frozenset(
    [f"sklearn._loss._loss.Cy{name}" for name in _LOSSES]  # the Cython halves of the losses below
    + [f"sklearn._loss.loss.{name}" for name in _LOSSES]
    + [f"sklearn._loss.link.{name}" for name in (
        "Interval", "IdentityLink", "LogLink", "LogitLink", "HalfLogitLink", "MultinomialLogit")]
    + [f"sklearn.metrics._dist_metrics.{name}{bits}" for bits in ("64", "32") for name in (
        "EuclideanDistance", "SEuclideanDistance", "ManhattanDistance", "ChebyshevDistance", "MinkowskiDistance",
        "MahalanobisDistance", "HammingDistance", "CanberraDistance", "BrayCurtisDistance", "HaversineDistance")]
    + ["sklearn.neighbors._ball_tree.BallTree", "sklearn.neighbors._kd_tree.KDTree",
       "sklearn.neighbors._ball_tree.BallTree64", "sklearn.neighbors._kd_tree.KDTree64",
       "sklearn.tree._tree.Tree",
       "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
       "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
       "sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration",
       "sklearn.gaussian_process._gpc._BinaryGaussianProcessClassifierLaplace",
       "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
       "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
    + [f"sklearn.gaussian_process.kernels.{name}" for name in (
        "ConstantKernel", "WhiteKernel", "RBF", "Matern", "RationalQuadratic", "ExpSineSquared", "DotProduct",
        "Sum", "Product", "Exponentiation", "Hyperparameter")]
)


def allowed_skops_types() -> frozenset[str]:
    """Every type name a .skops file may contain beyond what skops trusts by itself."""
    from sklearn.utils import all_estimators

    estimators = {f"{cls.__module__}.{cls.__qualname__}" for _name, cls in all_estimators()}
    return frozenset(estimators) | SKLEARN_SUPPORT_TYPES


def load_estimator(path: str, trust: bool):
    """Load a fitted estimator from .skops or .pkl/.pickle/.joblib (only with `trust`).

    An untrusted .skops file is checked twice: its schema, read as JSON, before skops builds anything
    (`audit_schema`), and the built estimator's arrays before anything predicts with it (`check_fitted_values`).
    """
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
    name = os.path.basename(path)
    refused = [] if trust else audit_schema(path, allowed_skops_types())
    if refused:
        raise PatchworkError(
            f"MODEL: '{name}' names types that are not parts of a scikit-learn model "
            f"({', '.join(refused[:8])}). Creating them could run code from the file, so it was not loaded. "
            "Tick 'Trust this model file' (TRUST_MODEL=true) only if you trust where the file came from."
        )
    import skops.io as sio

    try:  # every type named is now an allowed one (or the user trusts the file): asking skops is safe
        estimator = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    except Exception as exc:  # noqa: BLE001
        raise PatchworkError(f"MODEL: cannot load '{path}' with skops ({exc}).") from exc
    if not trust:
        check_fitted_values(estimator, name)
    return estimator


def _single_threaded(estimator):
    """n_jobs=1 everywhere in the estimator.

    A forest's threads add their trees' votes in any order, which changes the last bits of probabilities from run
    to run. Patchwork parallelises blocks instead (WORKERS).
    """
    try:
        jobs = {key: 1 for key in estimator.get_params(deep=True) if key == "n_jobs" or key.endswith("__n_jobs")}
        if jobs:
            estimator.set_params(**jobs)
    except (AttributeError, TypeError, ValueError):
        pass  # not a scikit-learn estimator with parameters: used as it is
    return estimator


class SklearnModel(PixelModel):
    """A scikit-learn estimator read from a skops file (or, if trusted, a pickle)."""
    def __init__(self, estimator, name: str) -> None:
        if not hasattr(estimator, "predict"):
            raise PatchworkError(f"MODEL: '{name}' holds a {type(estimator).__name__}, not a fitted estimator "
                                 "with a predict() method.")
        self.estimator = _single_threaded(estimator)
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
        """Load the estimator; pickles only with `trust`, skops files with their types checked."""
        return cls(load_estimator(path, trust), os.path.basename(path))

    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels (P, C) → class probabilities, class indices or regression values."""
        if self.info.task == "classification":
            if hasattr(self.estimator, "predict_proba"):
                return np.asarray(self.estimator.predict_proba(pixels), dtype=np.float32)
            return np.searchsorted(self.classes, self.estimator.predict(pixels)).astype(np.int64)
        values = np.asarray(self.estimator.predict(pixels), dtype=np.float32)
        return values.reshape(len(values), -1)
