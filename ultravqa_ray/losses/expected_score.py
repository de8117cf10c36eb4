r"""Expected-score regression: squared error of the mean of the score distribution against the rater mean.

For one (video, dimension) with raters ``y_1..y_n`` in 1..K and score-token logits ``z``
(DESIGN.md section 3)::

    pi(s)   = softmax(z)_s,   E = sum_s s * pi(s)                       (expected_score)
    y_mean  = (1/n) sum_i y_i                                            rater_mean
    L_exp   = (1/N) sum_items (E - y_mean)^2                             expected_score_loss

In score units (not rescaled by K - 1), mean over the N items of the batch. It fits only the first
moment: any distribution with the right mean has zero loss, a spread one as much as a peaked one.
Gradient per item (``dE/dz_j = pi(j) (j - E)``)::

    dL/dz_j = 2 (E - y_mean) pi(j) (j - E) / N

Worked numbers (K = 5; the tests check them):

- ``z = 0`` (uniform, E = 3), ratings ``[3, 4]`` (y_mean 3.5) -> ``L = 0.25``;
  ``dL/dz = 2 * (-0.5) * 0.2 * [-2, -1, 0, 1, 2] = [.4, .2, 0, -.2, -.4]``.
- ``softmax(z) = [.1, .2, .4, .2, .1]`` (E = 3), ratings ``[2, 2, 2]`` -> ``L = 1.0``.
- The batch of both items: ``L = (0.25 + 1.0) / 2 = 0.625``.
"""

from __future__ import annotations

import torch
from pydantic import Field

from ultravqa_ray.config import Config
from ultravqa_ray.losses.aso import check_ratings
from ultravqa_ray.score_ops import expected_score


class ExpectedScoreConfig(Config):
    """Settings of the expected-score regression objective."""

    sft_weight: float = Field(
        0.05, ge=0, description="lambda: weight of the SFT loss on rationale tokens (as ASO's)."
    )


def rater_mean(ratings: torch.Tensor, k: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean rating per item: ``(..., n)`` integers in 1..K -> ``(...)`` float64; padding (mask False) left out."""
    keep = torch.ones_like(ratings, dtype=torch.bool) if mask is None else mask.bool()
    if keep.shape != ratings.shape:
        raise ValueError(f"mask {tuple(keep.shape)} must have the shape of ratings {tuple(ratings.shape)}")
    check_ratings(ratings, k, keep)
    n = keep.sum(-1)
    if bool((n == 0).any()):
        raise ValueError("every item needs at least one rating")
    return torch.where(keep, ratings.to(torch.float64), torch.zeros((), dtype=torch.float64, device=ratings.device)).sum(-1) / n


def expected_score_loss(score_logits: torch.Tensor, y_mean: torch.Tensor) -> torch.Tensor:
    """Mean over items of ``(sum_s s softmax(z)_s - y_mean)^2``: ``(..., K), (...) -> ()``."""
    if score_logits.shape[:-1] != y_mean.shape:
        raise ValueError(
            f"score_logits {tuple(score_logits.shape)} and y_mean {tuple(y_mean.shape)} disagree on items"
        )
    k = score_logits.shape[-1]
    if bool((~torch.isfinite(y_mean)).any() | (y_mean < 1).any() | (y_mean > k).any()):
        raise ValueError(f"y_mean must lie in [1, {k}]")
    dtype = torch.promote_types(score_logits.dtype, torch.float32)
    score = expected_score(torch.softmax(score_logits.to(dtype), dim=-1))
    return (score - y_mean.to(dtype)).square().mean()
