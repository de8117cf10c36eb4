"""Per-family adapters: what differs between video-capable model families, and nothing else.

The scorer speaks to a model through one small :class:`Family` object, chosen by the checkpoint's
``config.model_type``. An adapter says:

- the preprocessing defaults of the family's video processor (the checkpoint's config overrides them);
- how a clip is laid out as tokens in the prompt (``video_tokens``);
- the multimodal rotary positions of a sequence (``rope_index``), so the scorer can pass explicit
  ``position_ids`` and continue a cached prefix (positions of text after the video are the last
  prefix position + 1, + 2, ...);
- the chat turn markers.

Qwen2-VL, Qwen2.5-VL and Qwen3-VL are here. Another family (LLaVA-OneVision, SmolVLM, ...) is one
more subclass registered in :data:`FAMILIES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ultravqa_ray.model.preprocess import (
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    VideoPatches,
    VisionSpec,
)

TEXT, IMAGE, VIDEO = 0, 1, 2  # mm_token_type_ids values


@dataclass(frozen=True)
class ChatFormat:
    """Turn markers of a chat format (ChatML for Qwen)."""

    system_start: str = "<|im_start|>system\n"
    user_start: str = "<|im_start|>user\n"
    assistant_start: str = "<|im_start|>assistant\n"
    turn_end: str = "<|im_end|>"
    turn_sep: str = "\n"


@dataclass(frozen=True)
class VideoTokens:
    """The token ids a clip occupies in the prompt and their modality types."""

    ids: list[int]
    types: list[int]


class Family:
    """Base adapter; subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]
    model_class: ClassVar[str]  # transformers class, for building tiny models
    default_spec: ClassVar[VisionSpec]
    chat: ClassVar[ChatFormat] = ChatFormat()
    special_tokens: ClassVar[dict[str, str]] = {
        "vision_start": "<|vision_start|>",
        "vision_end": "<|vision_end|>",
        "video_pad": "<|video_pad|>",
        "image_pad": "<|image_pad|>",
    }

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids = {key: _single_id(tokenizer, text) for key, text in self.special_tokens.items()}

    # -- prompt layout -------------------------------------------------------------------------

    def video_tokens(
        self, patches: VideoPatches, spec: VisionSpec, frame_times: Sequence[float]
    ) -> VideoTokens:
        """``<|vision_start|> <|video_pad|> x n <|vision_end|>`` (Qwen2-VL, Qwen2.5-VL)."""
        n = patches.num_tokens(spec.merge_size)
        ids = [self.ids["vision_start"], *([self.ids["video_pad"]] * n), self.ids["vision_end"]]
        return VideoTokens(ids=ids, types=[TEXT, *([VIDEO] * n), TEXT])

    # -- positions -----------------------------------------------------------------------------

    def rope_index(
        self,
        model: Any,
        input_ids: torch.Tensor,
        mm_token_type_ids: torch.Tensor,
        video_grid_thw: torch.Tensor | None,
        attention_mask: torch.Tensor,
        second_per_grid_ts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(3, B, T)`` rotary positions, computed by the model's own ``get_rope_index``."""
        positions, _ = _inner(model).get_rope_index(
            input_ids,
            mm_token_type_ids=mm_token_type_ids,
            video_grid_thw=video_grid_thw,
            attention_mask=attention_mask,
        )
        return positions

    def forward_kwargs(self, second_per_grid_ts: torch.Tensor | None) -> dict[str, Any]:
        """Extra keyword arguments a plain (reference) forward of this family needs."""
        return {}


class Qwen2VL(Family):
    name = "qwen2_vl"
    model_types = ("qwen2_vl",)
    model_class = "Qwen2VLForConditionalGeneration"
    default_spec = VisionSpec(
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
        min_pixels=128 * 28 * 28,
        max_pixels=28 * 28 * 768,
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
        budget="frame",
        max_video_tokens=128000,
    )


class Qwen25VL(Qwen2VL):
    """Qwen2.5-VL: temporal positions are spaced by real time (``second_per_grid_ts``)."""

    name = "qwen2_5_vl"
    model_types = ("qwen2_5_vl",)
    model_class = "Qwen2_5_VLForConditionalGeneration"

    def rope_index(self, model, input_ids, mm_token_type_ids, video_grid_thw, attention_mask,
                   second_per_grid_ts=None):  # fmt: skip
        positions, _ = _inner(model).get_rope_index(
            input_ids,
            mm_token_type_ids=mm_token_type_ids,
            video_grid_thw=video_grid_thw,
            second_per_grid_ts=second_per_grid_ts,
            attention_mask=attention_mask,
        )
        return positions

    def forward_kwargs(self, second_per_grid_ts):
        return {} if second_per_grid_ts is None else {"second_per_grid_ts": second_per_grid_ts}


class Qwen3VL(Family):
    """Qwen3-VL: each temporal patch is its own ``<t seconds><|vision_start|>...<|vision_end|>``."""

    name = "qwen3_vl"
    model_types = ("qwen3_vl", "qwen3_vl_moe")
    model_class = "Qwen3VLForConditionalGeneration"
    default_spec = VisionSpec(
        patch_size=16,
        temporal_patch_size=2,
        merge_size=2,
        min_pixels=128 * 32 * 32,
        max_pixels=32 * 32 * 768,
        image_mean=IMAGENET_STANDARD_MEAN,
        image_std=IMAGENET_STANDARD_STD,
        budget="video",
        max_video_tokens=768,
    )

    def video_tokens(self, patches, spec, frame_times):
        t, h, w = patches.grid_thw
        per_frame = h * w // (spec.merge_size * spec.merge_size)
        times = patch_times(frame_times, spec.temporal_patch_size)
        ids: list[int] = []
        types: list[int] = []
        for i in range(t):
            stamp = self.tokenizer.encode(f"<{times[i]:.1f} seconds>", add_special_tokens=False)
            frame = [self.ids["vision_start"], *([self.ids["video_pad"]] * per_frame), self.ids["vision_end"]]
            ids += stamp + frame
            types += [TEXT] * len(stamp) + [TEXT, *([VIDEO] * per_frame), TEXT]
        return VideoTokens(ids=ids, types=types)


FAMILIES: dict[str, type[Family]] = {family.name: family for family in (Qwen2VL, Qwen25VL, Qwen3VL)}


def family_for(model_type: str) -> type[Family]:
    """The adapter serving a ``config.model_type``; a clear error when there is none."""
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    served = sorted(t for f in FAMILIES.values() for t in f.model_types)
    raise ValueError(
        f"no scorer adapter for model_type {model_type!r}; supported: {', '.join(served)} "
        "(add a Family subclass in ultravqa_ray/model/families.py)"
    )


def patch_times(frame_times: Sequence[float], temporal_patch_size: int) -> list[float]:
    """Time of each temporal patch: the mean of its first and last frame (last frame repeated to pad)."""
    times = list(frame_times)
    if pad := -len(times) % temporal_patch_size:
        times += [times[-1]] * pad
    return [
        (times[i] + times[i + temporal_patch_size - 1]) / 2 for i in range(0, len(times), temporal_patch_size)
    ]


def _inner(model: Any) -> Any:
    """The multimodal base model (``model.model``) that owns ``get_rope_index``."""
    return model.model if hasattr(model, "model") and hasattr(model.model, "get_rope_index") else model


def _single_id(tokenizer: Any, text: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"the tokenizer has no single token for {text!r} (got {len(ids)} tokens)")
    return ids[0]
