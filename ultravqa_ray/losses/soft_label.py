r"""Soft-label SFT: cross-entropy of the score distribution against the raters' empirical distribution.

The baseline that uses the same information as ASO's reward (every rater's score) without the
closed form. For one (video, dimension) with n raters ``y_1..y_n`` in 1..K, the target is the
empirical rater distribution and the model's score distribution is the softmax of the K
score-token logits ``z`` (DESIGN.md section 3)::

    q(s)     = (1/n) sum_i [y_i == s]                                    rater_distribution
    L_soft   = (1/N) sum_items  - sum_s q(s) log softmax(z)_s            soft_label_loss

Reduction: mean over the N items of the batch (every item weighs the same, whatever its number of
raters). ``L_soft = KL(q || pi_theta) + H(q)``: it is ASO's loss with the target ``pi*`` replaced by
``q`` (no reference, no beta), so the two differ only in the target. Gradient per item::

    dL/dz_j = (softmax(z)_j - q(j)) / N

Worked numbers (K = 5; the tests check them):

- ``z = 0`` (uniform), ratings ``[2, 3]`` -> ``q = [0, .5, .5, 0, 0]``, ``L = log 5 = 1.6094``;
  ``dL/dz = [.2, -.3, -.3, .2, .2]``.
- ``softmax(z) = [.1, .2, .4, .2, .1]``, ratings ``[3, 3, 3]`` -> ``L = -log .4 = 0.9163``;
  ratings ``[2, 3]`` -> ``L = -(.5 log .2 + .5 log .4) = 1.2629``.
- The batch of the last two items: ``L = (0.9163 + 1.2629) / 2 = 1.0896``.
"""

from __future__ import annotations

import torch
from pydantic import Field

from ultravqa_ray.config import Config
from ultravqa_ray.losses.aso import check_ratings


class SoftLabelConfig(Config):
    """Settings of the soft-label SFT objective."""

    sft_weight: float = Field(
        0.05, ge=0, description="lambda: weight of the SFT loss on rationale tokens (as ASO's)."
    )


def rater_distribution(ratings: torch.Tensor, k: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Empirical rater distribution ``q``: ``ratings (..., n)`` integers in 1..K -> ``(..., K)`` float64.

    ``mask (..., n)`` is True for real ratings (missing or padded raters are False); every item needs
    at least one rating.
    """
    if k < 2:
        raise ValueError(f"K must be >= 2, got {k}")
    keep = torch.ones_like(ratings, dtype=torch.bool) if mask is None else mask.bool()
    if keep.shape != ratings.shape:
        raise ValueError(f"mask {tuple(keep.shape)} must have the shape of ratings {tuple(ratings.shape)}")
    check_ratings(ratings, k, keep)
    n = keep.sum(-1, keepdim=True)
    if bool((n == 0).any()):
        raise ValueError("every item needs at least one rating")
    index = torch.where(keep, ratings.to(torch.int64) - 1, torch.zeros((), dtype=torch.int64, device=ratings.device))
    counts = torch.zeros(*ratings.shape[:-1], k, dtype=torch.float64, device=ratings.device)
    counts.scatter_add_(-1, index, keep.to(torch.float64))
    return counts / n


def soft_label_loss(score_logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Mean over items of ``-sum_s q(s) log softmax(z)_s``: ``(..., K), (..., K) -> ()``, in float32 or wider."""
    if score_logits.shape != q.shape:
        raise ValueError(f"score_logits {tuple(score_logits.shape)} and q {tuple(q.shape)} must match")
    if bool((~torch.isfinite(q)).any() | (q < 0).any() | ((q.sum(-1) - 1).abs() > 1e-4).any()):
        raise ValueError("q must hold probabilities: finite, >= 0, each row summing to 1")
    dtype = torch.promote_types(score_logits.dtype, torch.float32)
    log_p = torch.log_softmax(score_logits.to(dtype), dim=-1)
    return -(q.to(dtype) * log_p).sum(-1).mean()
