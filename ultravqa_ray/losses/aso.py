r"""Analytic Score Optimization (ASO): distil the closed-form KL-regularised optimum into the model.

Works on the score distribution of DESIGN.md section 3 only: for one (video x, dimension d) the model
gives ``pi_theta(s) = softmax_s(z_s)`` over the K score tokens, ``z`` the score-token logits.

Objective. With reward ``r(s)`` (ordinal, from the raters; :func:`~ultravqa_ray.score_ops.ordinal_reward`)
and the floored reference ``rho = (1 - eps) pi_ref + eps / K`` (every ``rho(s) > 0`` when eps > 0)::

    J(pi) = sum_s pi(s) r(s) - beta * sum_s pi(s) log(pi(s) / rho(s)),   pi in the simplex.

Closed form (Lagrangian on the simplex -> Gibbs form). Add a multiplier ``mu`` for
``sum_s pi(s) = 1``; the inequality ``pi(s) >= 0`` is inactive at the optimum (checked below)::

    dJ/dpi(s) + mu = r(s) - beta (log(pi(s) / rho(s)) + 1) + mu = 0
    => pi(s) = rho(s) exp(r(s) / beta) exp(mu / beta - 1)
    => pi*(s) = rho(s) exp(r(s) / beta) / Z,   Z = sum_s rho(s) exp(r(s) / beta)   (normalisation)

``pi* > 0`` wherever ``rho > 0``, so the positivity constraints are indeed slack. It is the global
maximum, not just a stationary point: substituting ``r(s) = beta (log pi*(s) - log rho(s) + log Z)``::

    J(pi) = beta log Z - beta KL(pi || pi*)   for every pi in the simplex,

which is largest, uniquely, at ``pi = pi*`` (and ``J(pi*) = beta log Z``). Z is an exact sum over K
terms: no sampling, no generation. Limits: ``beta -> inf`` gives ``pi* -> rho`` (``= pi_ref`` when
eps = 0); ``beta -> 0`` puts all mass on ``argmax_s r(s)``: the rater median for ``abs`` (odd number
of raters), the level nearest the rater mean for ``squared`` and ``mean_abs``. Where ``rho(s) = 0``
(eps = 0 and ``pi_ref(s) = 0``) ``pi*(s) = 0`` whatever the reward: the first limit of ASO, which
the eps floor removes.

Loss. The forward KL from the fixed target to the model, averaged over the N items of the batch::

    L_ASO = (1/N) sum_items KL(pi* || pi_theta) = (1/N) sum_items sum_s pi*(s) (log pi*(s) - log pi_theta(s))

Gradient. With ``log pi_theta(s) = z_s - logsumexp(z)`` and ``pi*`` constant (``sum_s pi*(s) = 1``)::

    dKL/dz_j = - sum_s pi*(s) (delta_sj - pi_theta(j)) = pi_theta(j) - pi*(j)

so ``dL_ASO/dz = (softmax(z) - pi*) / N`` per item: a cross-entropy to a soft target, convex in z,
zero exactly when the model reproduces pi*. Total loss: ``L_ASO + lambda * L_SFT(rationale tokens)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from pydantic import Field

from ultravqa_ray.config import Config
from ultravqa_ray.score_ops import (
    RewardKind,
    analytic_target,
    expected_score,
    floor_reference,
    ordinal_reward,
    score_log_probs,
)


class ASOConfig(Config):
    """Settings of the ASO loss."""

    beta: float = Field(0.1, gt=0, description="KL weight beta; rewards lie in [-1, 0], smaller is sharper.")
    eps: float = Field(1e-3, ge=0, lt=1, description="Reference floor: pi_ref_eps = (1-eps) pi_ref + eps/K.")
    reward: RewardKind = Field("abs", description="Ordinal reward: abs (to each rater), squared, mean_abs.")
    sft_weight: float = Field(0.05, ge=0, description="lambda: weight of the SFT loss on rationale tokens.")


class ASOOutput(NamedTuple):
    """The loss and its diagnostics; everything but ``loss`` is detached."""

    loss: torch.Tensor  # () mean over items of KL(pi* || pi_theta), with grad
    kl: torch.Tensor  # (...) KL(pi* || pi_theta) per item
    kl_to_ref: torch.Tensor  # (...) KL(pi_theta || pi_ref_eps): drift from the reference (inf if eps=0)
    target: torch.Tensor  # (..., K) pi*
    score: torch.Tensor  # (...) expected score under pi_theta
    target_score: torch.Tensor  # (...) expected score under pi*


def check_ratings(ratings: torch.Tensor, k: int, mask: torch.Tensor | None = None) -> None:
    """Raise ``ValueError`` unless every kept rating is an integer in 1..K (padding is not looked at)."""
    kept = (ratings if mask is None else ratings[mask.bool()]).to(torch.float64)
    bad = ~torch.isfinite(kept) | (kept != kept.round()) | (kept < 1) | (kept > k)
    if bool(bad.any()):
        raise ValueError(f"ratings must be integers in 1..{k}; got {kept[bad].unique().tolist()}")


def check_reference(pi_ref: torch.Tensor, atol: float = 1e-2) -> torch.Tensor:
    """Validate stored reference probabilities and renormalise them in float64 (storage rounding)."""
    ref = pi_ref.to(torch.float64)
    total = ref.sum(-1, keepdim=True)
    if bool((~torch.isfinite(ref)).any() | (ref < 0).any() | ((total - 1).abs() > atol).any()):
        raise ValueError("pi_ref must hold probabilities: finite, >= 0, each row summing to 1")
    return ref / total


def aso_target(
    pi_ref: torch.Tensor,
    ratings: torch.Tensor,
    *,
    beta: float,
    eps: float = 1e-3,
    reward: RewardKind = "abs",
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The closed-form target ``pi*``: ``pi_ref (..., K), ratings (..., n) -> (..., K)`` float64.

    ``mask (..., n)`` is True for real ratings, False for missing or padded raters.
    """
    k = pi_ref.shape[-1]
    if k < 2:
        raise ValueError(f"K must be >= 2, got {k}")
    if ratings.shape[:-1] != pi_ref.shape[:-1]:
        raise ValueError(f"ratings {tuple(ratings.shape)} and pi_ref {tuple(pi_ref.shape)} disagree on items")
    if mask is not None and mask.shape != ratings.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must have the shape of ratings {tuple(ratings.shape)}")
    check_ratings(ratings, k, mask)
    r = ordinal_reward(ratings, k, mask=mask, kind=reward, dtype=torch.float64)
    return analytic_target(check_reference(pi_ref), r, beta, eps=eps)


def aso_loss(
    score_logits: torch.Tensor,
    pi_ref: torch.Tensor,
    ratings: torch.Tensor,
    *,
    beta: float,
    eps: float = 1e-3,
    reward: RewardKind = "abs",
    mask: torch.Tensor | None = None,
) -> ASOOutput:
    """ASO loss from the score-token logits ``(..., K)`` (the primary form; see module docstring)."""
    if score_logits.shape != pi_ref.shape:
        raise ValueError(
            f"score_logits {tuple(score_logits.shape)} and pi_ref {tuple(pi_ref.shape)} must match"
        )
    dtype = torch.promote_types(score_logits.dtype, torch.float32)
    target = aso_target(pi_ref, ratings, beta=beta, eps=eps, reward=reward, mask=mask)
    log_p = torch.log_softmax(score_logits.to(dtype), dim=-1)
    return _output(log_p, target, check_reference(pi_ref), eps)


def aso_loss_from_vocab(
    logits: torch.Tensor,
    score_token_ids: torch.Tensor,
    pi_ref: torch.Tensor,
    ratings: torch.Tensor,
    *,
    beta: float,
    eps: float = 1e-3,
    reward: RewardKind = "abs",
    mask: torch.Tensor | None = None,
) -> ASOOutput:
    """ASO loss from full-vocabulary logits ``(..., V)`` at the score position and the K token ids."""
    log_p = score_log_probs(logits, score_token_ids)
    return aso_loss(log_p, pi_ref, ratings, beta=beta, eps=eps, reward=reward, mask=mask)


def aso_total_loss(aso: torch.Tensor, sft: torch.Tensor | None, sft_weight: float) -> torch.Tensor:
    """``L_ASO + lambda * L_SFT`` (the SFT term on rationale tokens; skipped when None or lambda = 0)."""
    if sft is None or sft_weight == 0:
        return aso
    return aso + sft_weight * sft


def _output(log_p: torch.Tensor, target: torch.Tensor, ref: torch.Tensor, eps: float) -> ASOOutput:
    target = target.to(log_p.dtype)
    # xlogy: a target entry of exactly 0 (eps = 0) contributes 0, not 0 * log 0 = NaN.
    kl = (torch.special.xlogy(target, target) - target * log_p).sum(-1)
    loss = kl.mean()
    with torch.no_grad():
        p = log_p.exp()
        rho = floor_reference(ref, eps).to(log_p.dtype)
        kl_to_ref = (torch.special.xlogy(p, p) - torch.special.xlogy(p, rho)).sum(-1)
        return ASOOutput(
            loss=loss,
            kl=kl.detach(),
            kl_to_ref=kl_to_ref,
            target=target,
            score=expected_score(p),
            target_score=expected_score(target),
        )
