"""JSON configs for every configurable object: ``{"class": Name, "config": {...}}``.

`obj.to_config()` and `from_config(cfg)` round-trip exactly, so a Processing run can be
replayed from its log and a Python user can save and share a pipeline.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from .errors import PatchworkError

_CLASSES: dict[str, type] = {}


class Configurable:
    """Mixin for dataclasses whose fields are JSON-safe constructor arguments.

    Fields marked ``field(metadata={"runtime": True})`` (data handed over at run time, such as a
    pool of donor chips) are left out of the config.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _CLASSES[cls.__name__] = cls

    def to_config(self) -> dict[str, Any]:
        params = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.init and not f.metadata.get("runtime")}
        return {"class": type(self).__name__, "config": json.loads(json.dumps(params))}

    @classmethod
    def from_config(cls, config: dict[str, Any] | str) -> Any:
        obj = from_config(config)
        if not isinstance(obj, cls):
            raise PatchworkError(f"expected a {cls.__name__} config, got {type(obj).__name__}")
        return obj


def from_config(config: dict[str, Any] | str) -> Any:
    """Build the object a config describes (a dict, or its JSON text)."""
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except json.JSONDecodeError as exc:
            raise PatchworkError(f"config is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or "class" not in config:
        raise PatchworkError('a config must look like {"class": "Name", "config": {...}}')
    name = config["class"]
    if name not in _CLASSES:
        raise PatchworkError(f"unknown class '{name}' in config; known: {', '.join(sorted(_CLASSES))}")
    try:
        return _CLASSES[name](**config.get("config", {}))
    except TypeError as exc:
        raise PatchworkError(f"bad parameters for {name}: {exc}") from exc
