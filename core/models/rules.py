"""A model made of spectral-index thresholds, stored as JSON (see resources/models/ndvi_ndwi_rules.json).

Every pixel starts as `default_class`; the rules are applied in order and a later rule that matches
overwrites an earlier one. A rule matches when all of its conditions hold. A condition compares a
band (by name) or an index to a value. An index is a normalised difference (a - b) / (a + b + epsilon)
of two bands (`epsilon` optional, default 0); where the denominator is 0 it is undefined and no
condition on it holds.
"""
from __future__ import annotations

import json
import os
import re

import numpy as np

from ..errors import PatchworkError
from .base import ModelInfo, PixelModel, default_class_names, whole_class_values

OPERATORS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
             "==": np.equal, "!=": np.not_equal}
FLOAT64_TEST = (np.float64, np.float64, np.bool_)  # compare in float64 whatever the operand's float type
HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


class RulesModel(PixelModel):
    """A rules model: spectral-index thresholds read from JSON."""
    def __init__(self, spec: dict, name: str = "rules") -> None:
        self.spec = spec
        where = f"rules model '{name}'"
        try:
            self.bands: list[str] = list(spec["bands"])
            self.indices: dict[str, list[str]] = {
                key: list(definition["normalized_difference"]) for key, definition in spec.get("indices", {}).items()
            }
            self.epsilon: dict[str, float] = {
                key: float(definition.get("epsilon", 0.0)) for key, definition in spec.get("indices", {}).items()
            }
            whole_class_values([c["value"] for c in spec["classes"]], where)  # 1.5 or two of one value: refused
            classes = sorted(spec["classes"], key=lambda c: int(c["value"]))
            values = [int(c["value"]) for c in classes]
            self.default = values.index(int(spec["default_class"]))
            self.rules = [(values.index(int(rule["class"])), list(rule["when"])) for rule in spec["rules"]]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PatchworkError(
                f"MODEL: {where} is incomplete or a rule names a class that is not in 'classes' ({exc!r}). "
                "It needs 'bands', 'classes' [{value, name}], 'default_class' and 'rules' [{class, when}]; "
                "see resources/models/ndvi_ndwi_rules.json."
            ) from exc
        for key, pair in self.indices.items():
            if len(pair) != 2 or not np.isfinite(self.epsilon[key]) or self.epsilon[key] < 0:
                raise PatchworkError(f"MODEL: index '{key}' of {where} needs two bands and an epsilon ≥ 0, got "
                                     f"{pair} and {self.epsilon[key]}.")
            for band in pair:
                if band not in self.bands:
                    raise PatchworkError(f"MODEL: index '{key}' of {where} uses band '{band}', "
                                         f"which is not one of its bands {self.bands}.")
        for _cls, conditions in self.rules:
            for cond in conditions:
                operand = cond.get("index", cond.get("band"))
                if operand not in self.indices and operand not in self.bands:
                    raise PatchworkError(f"MODEL: a rule of {where} tests '{operand}', which is neither an index "
                                         f"({', '.join(self.indices)}) nor a band ({', '.join(self.bands)}).")
                if cond.get("op") not in OPERATORS or not isinstance(cond.get("value"), (int, float)):
                    raise PatchworkError(f"MODEL: a rule of {where} has condition {cond}; it needs 'op' "
                                         f"(one of {' '.join(OPERATORS)}) and a number 'value'.")
        colours = [c.get("color") for c in classes]
        self.info = ModelInfo(
            name=str(spec.get("name", name)),
            n_bands=len(self.bands),
            band_names=self.bands,
            class_values=values,
            class_names=[str(c.get("name", default)) for c, default in zip(classes, default_class_names(values))],
            class_colors=colours if all(isinstance(c, str) and HEX_COLOUR.match(c) for c in colours) else None,
            per_pixel=True,
            input_dtype="float64",
            widens_floats=True,
        )

    @classmethod
    def load(cls, path: str) -> RulesModel:
        """Read a rules model from its JSON file."""
        try:
            with open(path, encoding="utf-8") as fh:
                spec = json.load(fh)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise PatchworkError(f"MODEL: cannot read '{path}' as a JSON rules model ({exc}).") from exc
        if not isinstance(spec, dict) or spec.get("format") != "patchwork-rules":
            raise PatchworkError(f"MODEL: '{path}' is JSON but not a Patchwork rules model "
                                 "(it needs \"format\": \"patchwork-rules\").")
        return cls(spec, os.path.basename(path))

    def _operand(self, planes: np.ndarray, name: str) -> np.ndarray:
        """An index or a band, in float64 whatever the planes' float type.

        float32 planes are widened inside each operation (exactly, as a copy in float64 would be): no copy.
        """
        if name in self.indices:
            a, b = (planes[self.bands.index(band)] for band in self.indices[name])
            with np.errstate(invalid="ignore", divide="ignore"):
                difference = np.subtract(a, b, dtype=np.float64)
                total = np.add(a, b, dtype=np.float64)
                if self.epsilon[name]:
                    total += self.epsilon[name]
                return np.divide(difference, total, out=difference)
        return planes[self.bands.index(name)]

    def predict(self, batch: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Every pixel through the rules, invalid ones too, which then get class index 0 as in PixelModel.

        Cheaper than gathering the valid pixels: the rules cost a few operations per pixel.
        """
        n, c, h, w = batch.shape
        labels = self.predict_planes(np.moveaxis(batch, 1, 0).reshape(c, -1)).reshape(n, h, w)
        if not valid.all():
            np.putmask(labels, ~valid, 0)
        return labels

    def predict_planes(self, planes: np.ndarray) -> np.ndarray:
        """Band planes (C, P) → class indices (P,): each rule tests whole planes, later rules win."""
        labels = np.full(planes.shape[1], self.default, dtype=np.uint8 if self.info.n_classes <= 256 else np.int64)
        cache: dict[str, np.ndarray] = {}
        for cls_index, conditions in self.rules:
            match = None
            for cond in conditions:
                name = cond.get("index", cond.get("band"))
                if name not in cache:
                    cache[name] = self._operand(planes, name)
                with np.errstate(invalid="ignore"):  # a band in float32 is compared in float64, as if widened
                    test = OPERATORS[cond["op"]](cache[name], cond["value"], signature=FLOAT64_TEST)
                match = test if match is None else np.logical_and(match, test, out=match)
            if match is None:
                labels[:] = cls_index
            else:
                labels[match] = cls_index
        return labels

    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels (P, C) → class indices (P,)."""
        return self.predict_planes(pixels.T)
