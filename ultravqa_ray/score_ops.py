"""Pure tensor helpers for the discrete score distribution, written once and shared.

The model read-out (DESIGN.md section 3), the losses (section 4) and the serving code all go
through these functions, so "the score" means the same thing everywhere.

Shapes: ``K`` score levels, scores are ``1..K``; ``...`` is any leading batch shape.

Read-out::

    log pi(s | x, d) = log_softmax_s( logits[token(s)] )          score_log_probs
    score            = sum_s s * pi(s)                              expected_score
    label            = argmax_s pi(s) + 1                           argmax_label

ASO target (derivation in :mod:`ultravqa_ray.losses.aso`)::

    r(s)      = -(1/n) sum_i |s - y_i| / (K - 1)                    ordinal_reward
    pi_ref_e  = (1 - eps) pi_ref + eps / K                          floor_reference
    pi*(s)    = pi_ref_e(s) exp(r(s)/beta) / Z                      analytic_target
"""

from __future__ import annotations

from typing import Literal

import torch

RewardKind = Literal["abs", "squared", "mean_abs"]


def score_log_probs(logits: torch.Tensor, score_token_ids: torch.Tensor) -> torch.Tensor:
    """Log-probabilities over the K score tokens: ``(..., V) -> (..., K)``, computed in float32."""
    restricted = logits.index_select(-1, score_token_ids.to(logits.device))
    return torch.log_softmax(restricted.float(), dim=-1)


def score_levels(k: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """The values 1..K as a tensor."""
    return torch.arange(1, k + 1, device=device, dtype=dtype)


def expected_score(probs: torch.Tensor) -> torch.Tensor:
    """Expected score ``sum_s s * p(s)``: ``(..., K) -> (...)``, in [1, K]."""
    return (probs * score_levels(probs.shape[-1], device=probs.device, dtype=probs.dtype)).sum(-1)


def argmax_label(probs: torch.Tensor) -> torch.Tensor:
    """Most probable score in 1..K: ``(..., K) -> (...)`` int64."""
    return probs.argmax(-1) + 1


def ordinal_reward(
    ratings: torch.Tensor,
    k: int,
    *,
    mask: torch.Tensor | None = None,
    kind: RewardKind = "abs",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Reward of every score level given the human ratings: ``(..., n) -> (..., K)``, in [-1, 0].

    ``ratings`` holds the raters' integer scores (any padding value where ``mask`` is False).
    ``dtype`` is the precision of the result (float64 for the analytic target, where r / beta
    magnifies float32 rounding by 1 / beta).

    - ``abs`` (default): ``r(s) = -(1/n) sum_i |s - y_i| / (K - 1)``, distance to every rater;
      its maximiser is the rater median.
    - ``squared``: ``-(1/n) sum_i (s - y_i)^2 / (K - 1)^2``; maximiser the rater mean.
    - ``mean_abs``: ``-|s - mean_i y_i| / (K - 1)``, distance to the rater mean.
    """
    if k < 2:
        raise ValueError(f"K must be >= 2, got {k}")
    m = torch.ones_like(ratings, dtype=dtype) if mask is None else mask.to(dtype)
    # Padded entries may hold anything (0, 99, NaN): zero them so NaN * 0 cannot leak through.
    y = torch.where(m > 0, ratings.to(dtype), torch.zeros((), dtype=dtype, device=ratings.device))
    n = m.sum(-1, keepdim=True)
    if bool((n == 0).any()):
        raise ValueError("every item needs at least one rating")
    s = score_levels(k, device=y.device, dtype=dtype)  # (K,)
    diff = s.view(*([1] * (y.dim() - 1)), 1, k) - y.unsqueeze(-1)  # (..., n, K)
    if kind == "abs":
        per_rater = diff.abs() / (k - 1)
    elif kind == "squared":
        per_rater = diff.square() / (k - 1) ** 2
    elif kind == "mean_abs":
        mean = (y * m).sum(-1, keepdim=True) / n  # (..., 1)
        return -(s - mean).abs() / (k - 1)
    else:
        raise ValueError(f"unknown reward kind {kind!r}")
    return -(per_rater * m.unsqueeze(-1)).sum(-2) / n


def floor_reference(pi_ref: torch.Tensor, eps: float) -> torch.Tensor:
    """``(1 - eps) * pi_ref + eps / K``: every score keeps at least eps/K of reference mass.

    Without it a score the reference gives probability 0 has target 0 for ever, whatever the
    reward (the first stated limit of ASO).
    """
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    k = pi_ref.shape[-1]
    return (1.0 - eps) * pi_ref + eps / k


def analytic_target(
    pi_ref: torch.Tensor, reward: torch.Tensor, beta: float, *, eps: float = 1e-3
) -> torch.Tensor:
    """The closed-form optimum ``pi*(s) = pi_ref_eps(s) exp(r(s)/beta) / Z``, computed in log space.

    ``pi_ref`` and ``reward`` are ``(..., K)``; the result is a probability vector per item and
    carries no gradient (it is a fixed target).
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    with torch.no_grad():
        ref = floor_reference(pi_ref.to(torch.float64), eps)
        logits = torch.log(ref) + reward.to(torch.float64) / beta
        return torch.softmax(logits, dim=-1).to(pi_ref.dtype)
