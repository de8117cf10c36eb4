"""The base of every typed configuration: frozen, validated when built, YAML in, overrides on top.

Each concern (decode, model, loss, train, serve, stream) has one subclass of :class:`Config` whose
fields carry a one-line ``description``. A config is loaded from YAML and then overridden from the
command line with dotted ``key=value`` pairs, values parsed as YAML scalars::

    cfg = DecodeConfig.load("decode.yaml", ["num_frames=16", "limits.max_duration_s=120"])

Fields typed :data:`LocalPath` or :data:`ModelRef` name files: :meth:`Config.load` resolves them
against the caller's working directory (:func:`resolve_path`, rule in docs/contracts.md), so that a
relative name means the same thing in a Ray worker, whose working directory is another one.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Self, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A configuration file or override that cannot be applied; the message names the culprit."""


class PathRole(Enum):
    """How a path-like field is resolved by :meth:`Config.load`."""

    LOCAL = "local"  # a file or folder: relative -> absolute against the caller's cwd
    MODEL = "model"  # a model folder or a hub id (``org/name``): see resolve_path


#: A local file or folder (input or output), or a URI (``s3://``, ``gs://``, ``file://``) left alone.
LocalPath = Annotated[str, PathRole.LOCAL]
#: A model: a local folder, a URI, or a Hugging Face hub id (``name`` or ``org/name``).
ModelRef = Annotated[str, PathRole.MODEL]

_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")


def resolve_path(value: str, role: PathRole, base: str | Path | None = None) -> str:
    """``value`` as an absolute local path, or unchanged when it is a URI or a hub id.

    - a URI (``scheme://...``) and an absolute path are kept (``~`` is expanded);
    - ``LOCAL``: any other value is made absolute against ``base`` (default: the working directory);
    - ``MODEL``: a value that exists under ``base``, or starts with ``./`` or ``../``, is made absolute;
      else one shaped like a hub id (``name`` or ``org/name``) stays a hub id; anything else (``a/b/c``)
      is a local path that does not exist yet and is made absolute (the loader then names it).
    """
    if not value or "://" in value:
        return value
    path = Path(os.path.expanduser(value))
    if path.is_absolute():
        return str(path)
    root = Path(base) if base is not None else Path.cwd()
    if role is PathRole.MODEL and not (root / path).exists() and not value.startswith(("./", "../")):
        if value not in (".", "..") and _HUB_ID.fullmatch(value):
            return value
    resolved = os.path.normpath(root / path)
    return resolved + "/" if value.endswith("/") else resolved  # a prefix keeps its trailing slash


def _role(annotation: Any, metadata: Sequence[Any] = ()) -> PathRole | None:
    """The :class:`PathRole` of a field: in its metadata (``LocalPath``) or its annotation (``LocalPath | None``)."""
    found = [m for m in metadata if isinstance(m, PathRole)]
    if found:
        return found[0]
    if get_origin(annotation) is Annotated:
        return _role(None, annotation.__metadata__)
    if get_origin(annotation) in (Union, types.UnionType):
        return next((r for r in (_role(a) for a in get_args(annotation)) if r is not None), None)
    return None


class Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: Sequence[str] = ()) -> Self:
        """Build from an optional YAML file, then apply ``key.sub=value`` overrides."""
        data: dict[str, Any] = {}
        if path is not None:
            try:
                loaded = yaml.safe_load(Path(path).read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"cannot read config {path}: {exc}") from exc
            if loaded is not None and not isinstance(loaded, Mapping):
                raise ConfigError(f"config {path} must be a mapping, got {type(loaded).__name__}")
            data = dict(loaded or {})
        return cls.model_validate(apply_overrides(data, overrides)).resolve_paths()

    def resolve_paths(self, base: str | Path | None = None) -> Self:
        """A copy with every ``LocalPath``/``ModelRef`` field, nested ones included, resolved against
        ``base`` (default: the working directory) by :func:`resolve_path`."""
        update: dict[str, Any] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            role = _role(field.annotation, field.metadata)
            if role is not None and isinstance(value, str):
                resolved = resolve_path(value, role, base)
                if resolved != value:
                    update[name] = resolved
            elif isinstance(value, Config):
                resolved_child = value.resolve_paths(base)
                if resolved_child is not value:
                    update[name] = resolved_child
        return self.model_copy(update=update) if update else self

    def override(self, overrides: Sequence[str]) -> Self:
        """A copy with dotted overrides applied and validated again."""
        return type(self).model_validate(apply_overrides(self.model_dump(mode="python"), overrides))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` strings to a nested mapping; values are parsed as YAML scalars."""
    out: dict[str, Any] = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from exc
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}
