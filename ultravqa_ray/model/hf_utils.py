"""Small helpers around transformers that the model modules share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Hide transformers' per-shard progress bars while loading or saving (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    was_disabled = hf_logging.is_progress_bar_enabled() is False
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not was_disabled:
            hf_logging.enable_progress_bar()


def vision_tower(model: Any) -> Any:
    """The vision encoder of a Qwen-VL-style model (``model.model.visual`` or ``model.visual``)."""
    for owner in (getattr(model, "model", None), model):
        tower = getattr(owner, "visual", None) if owner is not None else None
        if tower is not None:
            return tower
    raise ValueError(f"{type(model).__name__} has no vision tower at .model.visual or .visual")
