"""What a .skops file from an unknown source must pass before and after skops builds it.

Before: `audit_schema` reads the file's `schema.json` as plain JSON and checks every node's loader and type
against Patchwork's lists. skops's own `get_untrusted_types` cannot be asked first: to answer it builds every
node, and some node constructors import the module the file names (a `LossNode` naming `unittest.__main__`
runs test discovery, then exits).

After: `check_fitted_values` checks the arrays that scikit-learn's compiled code walks without bounds checks
(a tree's child and feature indices, gradient boosting's stage grid) and rebuilds a neighbours index from the
training points it indexes. Estimators whose prediction is not plain numpy, or whose arrays Patchwork cannot
check, load only from a trusted file.
"""
from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator

import numpy as np

from ..errors import PatchworkError

# The node loaders whose constructors read JSON and arrays only. Not here, so refused: LossNode for any type but an
# allow-listed loss (it imports the module the file names while being built), FunctionNode, MethodNode, PartialNode,
# OperatorFuncNode (callables), ReduceNode variants of other packages, and any loader a later skops adds.
SAFE_LOADERS = frozenset({
    "DictNode", "ListNode", "TupleNode", "SetNode", "JsonNode", "NdArrayNode", "DTypeNode", "ObjectNode",
    "RandomStateNode", "TreeNode", "TypeNode", "BytesNode", "BytearrayNode", "SliceNode", "DefaultDictNode",
})
# Loaders that import the module a node names while being built: allowed only for the allow-listed types (newer
# skops writes scikit-learn's losses through LossNode); checked here before skops builds anything.
TYPED_LOADERS = frozenset({"LossNode"})
_PLAIN_TYPES = frozenset(f"builtins.{name}" for name in (
    "dict", "list", "tuple", "set", "str", "int", "float", "bool", "NoneType", "bytes", "bytearray", "slice",
)) | {"collections.defaultdict", "numpy.ndarray", "numpy.dtype", "numpy.random.mtrand.RandomState",
      "numpy.random._mt19937.MT19937"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


def _numpy_scalar_types() -> frozenset[str]:
    return frozenset(f"numpy.{t.__name__}" for t in set(np.sctypeDict.values()))


def _nodes(tree) -> Iterator[dict]:
    """Every node of a skops schema: each JSON object with a `__loader__`, however deep."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__loader__" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def read_schema(path: str) -> dict:
    """The `schema.json` of a .skops file, as plain JSON (nothing in it is built)."""
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise PatchworkError(f"MODEL: '{path}' is not a readable .skops file ({exc}). Save it again with "
                             "skops.io.dump.") from exc
    if not isinstance(schema, dict):
        raise PatchworkError(f"MODEL: '{path}' is not a readable .skops file (its schema is not an object).")
    return schema


def audit_schema(path: str, allowed_types: frozenset[str]) -> list[str]:
    """What in the file Patchwork refuses to build untrusted: unknown loaders and types outside `allowed_types`.

    Reads JSON only; no module the file names is imported.
    """
    allowed = allowed_types | _PLAIN_TYPES | _numpy_scalar_types()
    refused: set[str] = set()
    for node in _nodes(read_schema(path)):
        loader, module, name = node.get("__loader__"), node.get("__module__"), node.get("__class__")
        if not all(isinstance(v, str) for v in (loader, module, name)) or not _NAME.match(f"{module}.{name}"):
            refused.add(f"a malformed node ({str(loader)[:40]})")
        elif loader not in SAFE_LOADERS and not (loader in TYPED_LOADERS and f"{module}.{name}" in allowed_types):
            refused.add(f"{module}.{name} (through skops's {loader})")
        elif f"{module}.{name}" not in allowed:
            refused.add(f"{module}.{name}")
    return sorted(refused)


# Estimators whose predict is numpy arithmetic on their fitted arrays (a bad shape raises, never crashes), by
# module; and those whose compiled parts `check_fitted_values` checks or rebuilds.
_NUMPY_ONLY_MODULES = ("sklearn.linear_model.", "sklearn.naive_bayes", "sklearn.discriminant_analysis",
                       "sklearn.neural_network.", "sklearn.preprocessing._data", "sklearn.preprocessing._label",
                       "sklearn.pipeline", "sklearn.dummy", "sklearn.decomposition._pca")
_CHECKED = frozenset({
    "sklearn.tree._classes.DecisionTreeClassifier", "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._classes.ExtraTreeClassifier", "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.ensemble._forest.RandomForestClassifier", "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._forest.ExtraTreesClassifier", "sklearn.ensemble._forest.ExtraTreesRegressor",
    "sklearn.ensemble._gb.GradientBoostingClassifier", "sklearn.ensemble._gb.GradientBoostingRegressor",
    "sklearn.neighbors._classification.KNeighborsClassifier", "sklearn.neighbors._regression.KNeighborsRegressor",
})


def _type_name(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _estimators_in(obj, owner=None, seen=None) -> Iterator[tuple[object, object]]:
    """(estimator or tree, the estimator holding it) for `obj` and everything inside it."""
    from sklearn.base import BaseEstimator
    from sklearn.tree._tree import Tree

    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, (BaseEstimator, Tree)):
        yield obj, owner
        if isinstance(obj, Tree):
            return
        owner = obj
        children = list(vars(obj).values())
    elif isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple, set)):
        children = list(obj)
    elif isinstance(obj, np.ndarray) and obj.dtype == object:
        children = list(obj.ravel())
    else:
        return
    for child in children:
        yield from _estimators_in(child, owner, seen)


def check_fitted_values(estimator, name: str) -> None:
    """Refuse an untrusted estimator whose fitted arrays would send scikit-learn's compiled code out of bounds."""
    from sklearn.base import BaseEstimator

    for part, owner in _estimators_in(estimator):
        kind = _type_name(part)
        if not isinstance(part, BaseEstimator):
            _check_tree(part, owner, name)
        elif kind in _CHECKED:
            if "GradientBoosting" in kind:
                _check_boosting_stages(part, name)
            elif "KNeighbors" in kind:
                _rebuild_neighbours_index(part, name)
        elif not kind.startswith(_NUMPY_ONLY_MODULES):
            raise PatchworkError(
                f"MODEL: '{name}' holds a {type(part).__name__}, whose fitted arrays scikit-learn's compiled code "
                "uses unchecked and Patchwork cannot check, so it is loaded only from a file you trust: tick "
                "'Trust this model file' (TRUST_MODEL=true) if you trust where the file came from.")


def _bad(name: str, what: str) -> PatchworkError:
    return PatchworkError(f"MODEL: '{name}' is damaged or crafted: {what}. Patchwork did not use it (scikit-learn "
                          "would read outside its arrays). Train or export the model again.")


def _check_tree(tree, owner, name: str) -> None:
    """Child indices point forward inside the tree (no cycle, no escape), features exist, thresholds are finite."""
    if owner is None or not hasattr(owner, "tree_") or owner.tree_ is not tree:
        raise _bad(name, "a decision tree outside a tree estimator")
    n = int(tree.node_count)
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    feature, threshold = np.asarray(tree.feature), np.asarray(tree.threshold)
    if n < 1 or not all(len(a) == n for a in (left, right, feature, threshold)):
        raise _bad(name, f"a tree's node arrays do not have its {n} nodes")
    leaf = (left == -1) & (right == -1)
    index = np.arange(n)
    forward = (left > index) & (left < n) & (right > index) & (right < n)
    if not np.all(leaf | forward):
        raise _bad(name, "a tree's child index points outside the tree or backwards")
    n_features = int(tree.n_features)
    if n_features != getattr(owner, "n_features_in_", n_features):
        raise _bad(name, f"a tree reads {n_features} bands where its model takes {owner.n_features_in_}")
    split = ~leaf
    if np.any((feature[split] < 0) | (feature[split] >= n_features)):
        raise _bad(name, f"a tree splits on a band outside the model's {n_features}")
    if not np.all(np.isfinite(threshold[split])):
        raise _bad(name, "a tree has a threshold that is not a finite number")
    value = np.asarray(tree.value)
    if value.shape[0] != n or value.shape[1] != int(tree.n_outputs) or not np.all(np.isfinite(value)):
        raise _bad(name, "a tree's leaf values do not match its nodes and outputs")
    classes = getattr(owner, "n_classes_", None)
    if classes is not None and np.max(np.atleast_1d(classes)) > value.shape[2]:
        raise _bad(name, "a tree holds fewer class values than its model has classes")


def _check_boosting_stages(model, name: str) -> None:
    """The stage grid has one column per raw prediction, as compiled `predict_stages` writes into them."""
    stages = getattr(model, "estimators_", None)
    if not isinstance(stages, np.ndarray) or stages.ndim != 2 or stages.dtype != object:
        raise _bad(name, "gradient boosting's stages are not a grid of trees")
    n_features = int(getattr(model, "n_features_in_", 0))
    if n_features < 1:
        raise _bad(name, "gradient boosting does not say how many bands it takes")
    try:
        width = model._raw_predict_init(np.zeros((1, n_features), dtype=np.float32)).shape[1]
    except Exception as exc:  # noqa: BLE001 - a damaged init estimator can raise anything
        raise _bad(name, f"gradient boosting's first prediction fails ({exc})") from exc
    if stages.shape[1] != width:
        raise _bad(name, f"gradient boosting has {stages.shape[1]} trees a stage for {width} outputs")
    from sklearn.tree import DecisionTreeRegressor

    if not all(isinstance(tree, DecisionTreeRegressor) for tree in stages.ravel()):
        raise _bad(name, "a gradient boosting stage is not a regression tree")


def _rebuild_neighbours_index(model, name: str) -> None:
    """Rebuild a neighbours model's KD- or ball tree from its training points.

    So no index array from the file is ever followed.
    """
    points = getattr(model, "_fit_X", None)
    if not isinstance(points, np.ndarray) or points.ndim != 2 or not np.issubdtype(points.dtype, np.floating):
        raise _bad(name, "the neighbours' training points are not a table of numbers")
    if points.shape[1] != getattr(model, "n_features_in_", points.shape[1]) or not np.all(np.isfinite(points)):
        raise _bad(name, "the neighbours' training points do not match the model's bands")
    targets = np.asarray(getattr(model, "_y", None))
    if targets.ndim == 0 or len(targets) != len(points):
        raise _bad(name, "the neighbours' targets do not match their points")
    classes = getattr(model, "classes_", None)
    if classes is not None and targets.size:
        counts = [len(c) for c in classes] if isinstance(classes, list) else [len(classes)]
        labels = targets.reshape(len(targets), -1)
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or any(
                labels[:, k].max() >= n for k, n in enumerate(counts)):
            raise _bad(name, "the neighbours' targets name classes the model does not have")
    model.n_samples_fit_ = len(points)
    method = getattr(model, "_fit_method", None)
    if method in ("kd_tree", "ball_tree"):
        from sklearn.neighbors import BallTree, KDTree

        index = KDTree if method == "kd_tree" else BallTree
        try:
            model._tree = index(points, int(model.leaf_size), metric=model.effective_metric_,
                                **(model.effective_metric_params_ or {}))
        except (TypeError, ValueError) as exc:
            raise _bad(name, f"its neighbours index cannot be rebuilt ({exc})") from exc
    elif method == "brute":
        model._tree = None
    else:
        raise _bad(name, f"an unknown neighbours search '{method}'")
