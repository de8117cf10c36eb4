"""The base of every typed configuration: frozen, validated when built, YAML in, overrides on top.

Each concern (decode, model, loss, train, serve, stream) has one subclass of :class:`Config` whose
fields carry a one-line ``description``. A config is loaded from YAML and then overridden from the
command line with dotted ``key=value`` pairs, values parsed as YAML scalars::

    cfg = DecodeConfig.load("decode.yaml", ["num_frames=16", "limits.max_duration_s=120"])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A configuration file or override that cannot be applied; the message names the culprit."""


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
        return cls.model_validate(apply_overrides(data, overrides))

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
