"""Resolve the ``model`` setting to a checkpoint folder, and to the decode settings it expects.

- ``default``: the project's trained default model (``ultravqa_ray.train.default_model.
  ensure_default_model``: the checkpoint the SFT and ASO jobs produced on a synthetic corpus,
  shipped in the package; retrained into ``cache_dir`` only when its recipe stamp is stale);
- ``tiny`` / ``tiny:<arch>``: an untrained tiny model of the real class, built offline in
  milliseconds (tests, benchmarks, plumbing: its scores mean nothing);
- anything else: a checkpoint folder or hub name, used as given. A folder may carry the decode
  settings it was trained with in ``decode.yaml`` (in it or beside it, as the default model does).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ultravqa_ray.model.tiny import build_tiny_model
from ultravqa_ray.video import DecodeConfig

_log = logging.getLogger(__name__)

TINY_DECODE = DecodeConfig(num_frames=8, height=64, width=64)
DEFAULT_TINY_ARCH = "qwen2_5_vl"


def _default_module():
    """The training jobs' default-model module, imported lazily (it pulls in Ray Train)."""
    from ultravqa_ray.train import default_model

    return default_model


def is_tiny(model: str) -> bool:
    return model == "tiny" or model.startswith("tiny:")


def resolve_model(model: str, cache_dir: Path, *, log: Callable[[str], None] | None = None) -> str:
    """The checkpoint (folder or hub name) for a ``model`` setting; builds or trains it if needed.

    ``log`` receives the progress lines of a first-run training (default: this module's logger).
    """
    cache_dir = Path(cache_dir).expanduser()
    if is_tiny(model):
        arch = model.partition(":")[2] or DEFAULT_TINY_ARCH
        folder = cache_dir / "models" / f"tiny-{arch}"
        if not (folder / "config.json").exists():
            _log.info("building an untrained tiny %s model in %s", arch, folder)
            build_tiny_model(arch, folder)
        return str(folder)
    if model == "default":
        return str(_default_module().ensure_default_model(cache_dir / "default-model", log=log or _log.info))
    return model


def expected_decode(model: str) -> DecodeConfig:
    """The decode settings a ``model`` setting was trained with (no model is built or loaded)."""
    if is_tiny(model):
        return TINY_DECODE
    if model == "default":
        return _default_module().default_decode_config()
    folder = Path(model)
    for saved in (folder / "decode.yaml", folder.parent / "decode.yaml"):
        if saved.is_file():
            return DecodeConfig.load(saved)
    return DecodeConfig()
