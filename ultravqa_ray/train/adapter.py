"""The training adapter of the scorer: (clip, dimension, score[, rationale]) samples -> a padded
batch -> one forward with gradients.

It lives with training, not in :class:`~ultravqa_ray.model.scorer.ScorerModel`: the scorer's
production entry point is ``score_clips``; this module only reuses its preprocessing, prompt layout
and positions, so a training forward sees a clip exactly as scoring does (same frames, same frame
times, same tokens). ``tests/train/test_cross_path.py`` holds the two to the same probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from connectors.wire.dimensions import Dimension
from ultravqa_ray.model.collate import TrainingBatch, TrainingSample, collate_sequences
from ultravqa_ray.model.prompts import IGNORE_INDEX
from ultravqa_ray.model.scorer import PreparedVideo, ScorerModel


class TrainOutput(NamedTuple):
    """A training forward. ``logits`` cover columns ``offset..T-1`` (every answer token and the one
    before it), ``labels`` and ``rationale_mask`` are cut the same way, so
    ``sft_loss(out.logits, out.labels)`` is the SFT loss of the batch."""

    logits: torch.Tensor  # (B, T - offset, V)
    labels: torch.Tensor  # (B, T - offset)
    rationale_mask: torch.Tensor  # (B, T - offset) bool
    score_logits: torch.Tensor  # (B, K) vocabulary logits of the K score tokens at score_index
    offset: int


def build_training_batch(scorer: ScorerModel, samples: Sequence[TrainingSample]) -> TrainingBatch:
    """Tokenize and pad (clip, dimension, score[, rationale]) samples; positions included.

    A sample with a rationale gets the ``"<rationale> Score: N"`` answer, one without gets
    ``"Score: N"``. A clip shared by several samples is preprocessed once.
    """
    if not samples:
        raise ValueError("no samples")
    cache: dict[int, PreparedVideo] = {}
    prepared, sequences = [], []
    for s in samples:
        key = id(s.video)
        if key not in cache:
            cache[key] = scorer.prepare_video(s.video)
        p = cache[key]
        prepared.append(p)
        sequences.append(scorer.prompts.training_sequence(p.tokens, Dimension(s.dimension), s.score, s.rationale))
    batch = collate_sequences(
        sequences,
        levels=[s.score for s in samples],
        pad_id=scorer.tokenizer.pad_token_id,
        pixel_values=[p.patches.pixel_values for p in prepared],
        grids=[p.patches.grid_thw for p in prepared],
        dimensions=[Dimension(s.dimension) for s in samples],
        second_per_grid_ts=[p.second_per_grid_ts for p in prepared],
    )
    positions = scorer.rope_positions(
        batch.input_ids, batch.mm_token_type_ids, batch.attention_mask, batch.video_grid_thw,
        batch.second_per_grid_ts,
    )  # fmt: skip
    return TrainingBatch(**{**batch.__dict__, "position_ids": positions})


def forward_train(scorer: ScorerModel, batch: TrainingBatch, model=None) -> TrainOutput:
    """One forward of a training batch (gradients flow when enabled and the model is in train mode).

    ``model``: the module to call instead of ``scorer.model`` (a DDP wrapper of it).
    """
    batch = batch.to(scorer.device, scorer.dtype)
    answer = batch.labels != IGNORE_INDEX
    if not bool(answer.any(-1).all()):
        raise ValueError("every row of a training batch needs answer tokens")
    first_answer = answer.int().argmax(-1)
    offset = max(0, int(first_answer.min()) - 1)
    width = batch.input_ids.shape[1]
    out = (model if model is not None else scorer.model)(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        mm_token_type_ids=batch.mm_token_type_ids,
        pixel_values_videos=batch.pixel_values_videos,
        video_grid_thw=batch.video_grid_thw,
        use_cache=False,
        logits_to_keep=width - offset,
    )
    logits = out.logits
    rows = torch.arange(logits.shape[0], device=logits.device)
    at_score = logits[rows, batch.score_index - offset]
    return TrainOutput(
        logits=logits,
        labels=batch.labels[:, offset:],
        rationale_mask=batch.rationale_mask[:, offset:],
        score_logits=at_score.index_select(-1, scorer.score_token_ids),
        offset=offset,
    )
