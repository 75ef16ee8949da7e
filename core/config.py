"""JSON configs for every configurable object: ``{"class": Name, "config": {...}, "format": 1, "patchwork": ...}``.

`obj.to_config()` and `from_config(cfg)` round-trip exactly, so a Processing run can be
replayed from its log and a Python user can save and share a pipeline. `format` is what a reader
must understand (a config without it is format 1); `patchwork` says which version wrote it.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from .errors import PatchworkError
from .version import PATCHWORK_VERSION

CONFIG_FORMAT = 1
# The modules whose classes configs name, imported on first use: `import patchwork.core` is enough.
_CONFIGURABLE_MODULES = ("data.sampling", "data.augment", "data.radiometric", "data.mixing")
_CLASSES: dict[str, type] = {}
_BASES: dict[str, type] = {}


class Configurable:
    """Mixin for dataclasses whose fields are JSON-safe constructor arguments.

    Fields marked ``field(metadata={"runtime": True})`` (data handed over at run time, such as a
    pool of donor chips) are left out of the config. Base classes say so (``class Sampler(Configurable,
    base=True)``): a config cannot name them.
    """

    def __init_subclass__(cls, base: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        (_BASES if base else _CLASSES)[cls.__name__] = cls

    def to_config(self) -> dict[str, Any]:
        """This object's config: {'class': name, 'config': {...}}, stamped with the format and version."""
        params = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.init and not f.metadata.get("runtime")}
        return stamped(type(self).__name__, json.loads(json.dumps(params)))

    @classmethod
    def from_config(cls, config: dict[str, Any] | str) -> Any:
        """Build an object of this kind from its config (a dict or JSON text); another kind is refused."""
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
    stray = sorted(set(config) - {"class", "config", "format", "patchwork"})
    if stray:  # settings beside "config" would be left out silently, giving the defaults instead
        raise PatchworkError(f"the config of '{name}' has {', '.join(map(repr, stray))} beside \"class\"; settings go "
                             f'inside "config": {{"class": "{name}", "config": {{{json.dumps(stray[0])}: ...}}}}')
    written = config.get("format", 1)
    if not isinstance(written, int) or written > CONFIG_FORMAT:
        raise PatchworkError(f"the config of '{name}' was written by Patchwork {config.get('patchwork', '?')} in "
                             f"config format {written}; this Patchwork ({PATCHWORK_VERSION}) reads format "
                             f"{CONFIG_FORMAT}. Update Patchwork, or write the config again with this version.")
    classes = registered()
    if name in _BASES:
        kinds = sorted(k for k, c in classes.items() if issubclass(c, _BASES[name]))
        raise PatchworkError(f"'{name}' is a base class, not something to build: use one of {', '.join(kinds)}.")
    if name not in classes:
        raise PatchworkError(f"unknown class '{name}' in config; known: {', '.join(sorted(classes))}")
    try:
        return classes[name](**config.get("config", {}))
    except TypeError as exc:
        raise PatchworkError(f"bad parameters for {name}: {exc}") from exc


def stamped(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The config of class `name` with these parameters, stamped with the format and the writer's version."""
    return {"class": name, "config": params, "format": CONFIG_FORMAT, "patchwork": PATCHWORK_VERSION}


def registered() -> dict[str, type]:
    """Every class a config can name, by name."""
    for module in _CONFIGURABLE_MODULES:
        # Through __import__, not importlib: QGIS unloads a plugin's modules by what its import hook saw, and a
        # module left behind keeps the classes of the plugin's earlier load (a reloaded panel refused its pipeline)
        __import__(f"{__package__}.{module}")
    return dict(_CLASSES)
