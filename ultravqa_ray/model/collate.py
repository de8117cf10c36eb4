"""Left-padded training batches of (video, dimension, answer) examples.

Sequences are padded on the left so that every row ends at the last column (the layout under which
the last-position logits of a batch are those of each row's last real token). Labels are aligned
with ``input_ids`` (HF convention: the loss shifts); see :mod:`ultravqa_ray.losses.sft`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch

from connectors.wire.dimensions import Dimension
from ultravqa_ray.model.prompts import IGNORE_INDEX, TokenSequence
from ultravqa_ray.video.clip import VideoClip


@dataclass(frozen=True)
class TrainingSample:
    """One (video, dimension) target: the score 1..K and, for the rationale variant, the rationale."""

    video: VideoClip
    dimension: Dimension
    score: int
    rationale: str | None = None


@dataclass(frozen=True)
class TrainingBatch:
    """Tensors of a padded batch; ``B`` rows, ``T`` columns, one video per row.

    - ``labels``: -100 except at answer tokens (rationale, answer prefix, score, end of turn).
    - ``score_index``: column whose next-token logits give the score; ``labels[b, score_index + 1]``
      is the score token.
    - ``rationale_mask``: True at rationale tokens (the ASO stage's ``lambda * SFT`` term).
    - ``position_ids``: the multimodal rotary positions ``(3, B, T)``.
    """

    input_ids: torch.Tensor  # (B, T) long
    attention_mask: torch.Tensor  # (B, T) long
    mm_token_type_ids: torch.Tensor  # (B, T) int
    position_ids: torch.Tensor  # (3, B, T) long
    labels: torch.Tensor  # (B, T) long
    score_index: torch.Tensor  # (B,) long
    score_level: torch.Tensor  # (B,) long, the target score 1..K
    rationale_mask: torch.Tensor  # (B, T) bool
    pixel_values_videos: torch.Tensor  # (sum of patches, patch_dim) float
    video_grid_thw: torch.Tensor  # (B, 3) long
    second_per_grid_ts: torch.Tensor | None  # (B,) float, Qwen2.5-VL
    dimensions: tuple[Dimension, ...]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TrainingBatch:
        """Move to a device; ``dtype`` applies to the pixel values only."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.to(device, dtype=dtype if f.name == "pixel_values_videos" else None)
            moved[f.name] = value
        return replace(self, **moved)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def left_pad(rows: Sequence[Sequence[int]], pad: int, dtype=torch.long) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, T)`` values and attention mask, each row right-aligned."""
    width = max(len(r) for r in rows)
    values = torch.full((len(rows), width), pad, dtype=dtype)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            values[i, width - len(row) :] = torch.as_tensor(list(row), dtype=dtype)
            mask[i, width - len(row) :] = 1
    return values, mask


def collate_sequences(
    sequences: Sequence[TokenSequence],
    *,
    levels: Sequence[int],
    pad_id: int,
    pixel_values: Sequence[torch.Tensor],
    grids: Sequence[tuple[int, int, int]],
    dimensions: Sequence[Dimension],
    second_per_grid_ts: Sequence[float] | None,
) -> TrainingBatch:
    """Pad tokenized examples into a batch (positions are filled in by the scorer: zeros here)."""
    input_ids, attention_mask = left_pad([s.ids for s in sequences], pad_id)
    types, _ = left_pad([s.types for s in sequences], 0, dtype=torch.int)
    labels, _ = left_pad([s.labels for s in sequences], IGNORE_INDEX)
    rationale, _ = left_pad([s.rationale_mask for s in sequences], 0, dtype=torch.bool)
    width = input_ids.shape[1]
    score_index = torch.tensor([width - len(s.ids) + s.score_index for s in sequences], dtype=torch.long)
    return TrainingBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        mm_token_type_ids=types,
        position_ids=torch.zeros((3, *input_ids.shape), dtype=torch.long),
        labels=labels,
        score_index=score_index,
        score_level=torch.tensor(list(levels), dtype=torch.long),
        rationale_mask=rationale,
        pixel_values_videos=torch.cat(list(pixel_values), dim=0),
        video_grid_thw=torch.tensor([list(g) for g in grids], dtype=torch.long),
        second_per_grid_ts=None
        if second_per_grid_ts is None
        else torch.tensor(list(second_per_grid_ts), dtype=torch.float32),
        dimensions=tuple(dimensions),
    )
