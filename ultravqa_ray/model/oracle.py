"""Test oracles of the scorer: plain full forwards, no KV cache, no batching, no shared prefix.

These are not a scoring path (production scores with :meth:`ScorerModel.score_clips`); the tests
and ``bench/bench_model.py`` hold the one-pass path against them:

- :func:`full_forward_log_probs`: one plain forward per (clip, dimension) prompt, positions
  computed by the model itself;
- :func:`rationale_log_probs`: the rationale variant of the one-pass path as a tensor, with the
  rationale token ids it wrote (to replay them through the full forward).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from connectors.wire.dimensions import DIMENSIONS, Dimension
from ultravqa_ray.model.scorer import ScorerModel
from ultravqa_ray.score_ops import score_log_probs
from ultravqa_ray.video.clip import VideoClip


def rationale_log_probs(
    scorer: ScorerModel, clips: Sequence[VideoClip], dimensions: Sequence[Dimension] = DIMENSIONS
) -> tuple[torch.Tensor, list[list[list[int]]]]:
    """``(V, D, K)`` log-probs read after a greedy rationale, and the rationale token ids."""
    dims = tuple(Dimension(d) for d in dimensions)
    parts, ids = [], []
    step = scorer.config.max_videos_per_forward
    for start in range(0, len(clips), step):
        chunk = [scorer.prepare_video(c) for c in clips[start : start + step]]
        with torch.inference_mode():
            log_probs, written = scorer._rationale_pass(chunk, dims)
        parts.append(log_probs.cpu())
        ids += written
    return torch.cat(parts), ids


def full_forward_log_probs(
    scorer: ScorerModel,
    clips: Sequence[VideoClip],
    dimensions: Sequence[Dimension] = DIMENSIONS,
    *,
    rationale_ids: Sequence[Sequence[Sequence[int]]] | None = None,
) -> torch.Tensor:
    """``(V, D, K)`` by one plain forward per (clip, dimension): full prompt, no cache, positions
    computed by the model itself. The reference the one-pass path is tested against.

    ``rationale_ids[v][d]``, when given, are answer tokens written before the rationale tail
    (the rationale variant); the score is then read after ``rationale + separator + prefix``.
    """
    dims = tuple(Dimension(d) for d in dimensions)
    prompts, device = scorer.prompts, scorer.device
    out = torch.empty((len(clips), len(dims), scorer.k))
    for v, clip in enumerate(clips):
        prepared = scorer.prepare_video(clip)
        prefix_ids, prefix_types = prompts.prefix(prepared.tokens)
        for j, d in enumerate(dims):
            if rationale_ids is None:
                suffix = prompts.suffix(d)
            else:
                suffix = prompts.suffix(d, with_answer_prefix=False) + list(rationale_ids[v][j])
                suffix += prompts.rationale_tail_ids if rationale_ids[v][j] else prompts.answer_prefix_ids
            ids = torch.tensor([prefix_ids + suffix], device=device)
            types = torch.tensor([prefix_types + [0] * len(suffix)], device=device)
            with torch.inference_mode():
                result = scorer.model(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    mm_token_type_ids=types,
                    logits_to_keep=1,
                    **scorer.vision_inputs([prepared]),
                    **scorer.family.forward_kwargs(scorer.second_per_grid_ts([prepared])),
                )
            out[v, j] = score_log_probs(result.logits[0, -1], scorer.score_token_ids).cpu()
    return out
