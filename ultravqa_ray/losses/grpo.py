r"""GRPO baseline (group relative policy optimisation), for side-by-side comparison with ASO only.

Same data and same reward as ASO (DESIGN.md section 4), but estimated by sampling. For each
(video x, dimension d) the trainer samples G completions ``o_1..o_G`` (rationale + ``Score: N``)
from the current policy; completions of one item are contiguous (item-major, ``N = B * G`` rows).

Reward. ``r_i = r(parse_score(o_i))`` with the ordinal reward of
:func:`~ultravqa_ray.score_ops.ordinal_reward` (in [-1, 0]); a completion whose score cannot be read
gets the lowest reward, -1.

Advantage. Group-normalised, no value network::

    A_i = (r_i - mean_group(r)) / (std_group(r) + 1e-4)      (std: unbiased sample std, as TRL)

A group whose rewards are all equal has A = 0 and contributes only through the KL term.

Loss. Per completion token t, with ``ratio = exp(logp_new - logp_old)`` (the sampling policy's
log-probs; ``old = new.detach()`` when each batch is used for one update)::

    pg_t  = - min(ratio * A, clip(ratio, 1 - clip_eps, 1 + clip_eps) * A)
    kl_t  = exp(logp_ref - logp_new) - (logp_ref - logp_new) - 1            (k3 estimator, >= 0)
    L     = sum_{i,t} mask_it (pg_it + kl_coef * kl_it) / sum_{i,t} mask_it

Reduction: masked mean over all completion tokens of the batch (every token weighs the same).
Clipping: once the ratio has moved past ``1 + clip_eps`` with A > 0 (or below ``1 - clip_eps`` with
A < 0) the min picks the constant clipped term and that token's policy gradient is zero. ``kl_t`` is
an unbiased estimate of KL(pi_new || pi_ref) under samples from pi_new; it is 0, with zero
gradient, where ``logp_new == logp_ref``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

import torch
from pydantic import Field

from ultravqa_ray.config import Config
from ultravqa_ray.score_ops import RewardKind, ordinal_reward

UNPARSEABLE_REWARD = -1.0
ADVANTAGE_EPS = 1e-4
_SCORE_RE = re.compile(r"Score:[ \t]*(\S*)")


class GRPOConfig(Config):
    """Settings of the GRPO baseline (the sampling ones are read by the trainer's sampler)."""

    group_size: int = Field(6, ge=2, description="G: completions sampled per (video, dimension).")
    clip_eps: float = Field(0.2, gt=0, lt=1, description="PPO clip range: ratio kept in [1-eps, 1+eps].")
    kl_coef: float = Field(0.04, ge=0, description="Weight of the k3 KL penalty to the reference policy.")
    reward: RewardKind = Field("abs", description="Ordinal reward: abs (to each rater), squared, mean_abs.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the completions.")
    max_new_tokens: int = Field(256, ge=1, description="Longest completion sampled (rationale + score).")


class GRPOOutput(NamedTuple):
    """The loss and its diagnostics; everything but ``loss`` is detached."""

    loss: torch.Tensor  # () policy-gradient + kl_coef * KL, masked token mean, with grad
    policy_loss: torch.Tensor  # () the policy-gradient part
    kl: torch.Tensor  # () mean k3 KL to the reference per completion token
    clip_fraction: torch.Tensor  # () share of completion tokens whose gradient the clip removed


def parse_score(text: str, k: int) -> int | None:
    """The score of the LAST ``Score: N`` in ``text``; None unless N is an integer in 1..K.

    A trailing sentence mark after N is allowed (``Score: 4.`` reads 4); ``Score: 4.5``,
    ``Score: 6`` with K = 5, ``Score: four`` and a text without ``Score:`` give None. Case-sensitive,
    as the SFT template; decode completions with ``skip_special_tokens=True`` (``4</s>`` is None).
    """
    matches = _SCORE_RE.findall(text)
    if not matches:
        return None
    token = matches[-1].rstrip(".,;!")
    if not token.isascii() or not token.isdigit():
        return None
    value = int(token)
    return value if 1 <= value <= k else None


def grpo_rewards(
    parsed: Sequence[int | None],
    ratings: torch.Tensor,
    k: int,
    kind: RewardKind = "abs",
    *,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reward per completion: ``parsed (N,)``, ``ratings (N, n)`` (row i = the raters of completion i,
    e.g. ``ratings.repeat_interleave(G, 0)``) -> ``(N,)`` float32; None gets -1 (the lowest)."""
    if ratings.dim() != 2 or ratings.shape[0] != len(parsed):
        raise ValueError(f"ratings must be (N={len(parsed)}, n), got {tuple(ratings.shape)}")
    for s in parsed:
        if s is not None and not 1 <= s <= k:
            raise ValueError(f"parsed scores must be in 1..{k} or None, got {s}")
    if mask is not None:
        ratings = torch.where(mask.bool(), ratings, torch.ones_like(ratings))
    table = ordinal_reward(ratings, k, mask=mask, kind=kind)  # (N, K)
    index = torch.tensor([0 if s is None else s - 1 for s in parsed], device=table.device)
    picked = table.gather(-1, index.unsqueeze(-1)).squeeze(-1)
    ok = torch.tensor([s is not None for s in parsed], device=table.device)
    return torch.where(ok, picked, torch.full_like(picked, UNPARSEABLE_REWARD))


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = ADVANTAGE_EPS) -> torch.Tensor:
    """``(r - mean_group) / (std_group + eps)`` over contiguous groups: ``(B * G,) -> (B * G,)``."""
    if group_size < 2 or rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(
            f"rewards (N,) with N a multiple of group_size >= 2; got {tuple(rewards.shape)}, G={group_size}"
        )
    grouped = rewards.view(-1, group_size)
    mean = grouped.mean(-1, keepdim=True)
    std = grouped.std(-1, keepdim=True)  # unbiased
    return ((grouped - mean) / (std + eps)).reshape(-1)


def grpo_loss(
    new_logps: torch.Tensor,
    old_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    clip_eps: float = 0.2,
    kl_coef: float = 0.04,
) -> GRPOOutput:
    """Clipped policy-gradient loss with k3 KL penalty; log-probs of the sampled tokens, ``(N, T)``."""
    shape = new_logps.shape
    if new_logps.dim() != 2 or old_logps.shape != shape or ref_logps.shape != shape:
        raise ValueError("new_logps, old_logps and ref_logps must all be (N, T)")
    if completion_mask.shape != shape or advantages.shape != shape[:1]:
        raise ValueError(f"completion_mask must be {tuple(shape)} and advantages ({shape[0]},)")
    m = completion_mask.to(new_logps.dtype)
    count = m.sum().clamp(min=1)
    adv = advantages.to(new_logps.dtype).unsqueeze(-1)
    ratio = torch.exp(new_logps - old_logps.detach())
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv
    pg = -torch.minimum(unclipped, clipped)
    delta = ref_logps.detach() - new_logps
    kl = torch.exp(delta) - delta - 1
    policy_loss = (pg * m).sum() / count
    kl_mean = (kl * m).sum() / count
    loss = policy_loss + kl_coef * kl_mean
    with torch.no_grad():
        was_clipped = ((ratio > 1 + clip_eps) & (adv > 0)) | ((ratio < 1 - clip_eps) & (adv < 0))
        clip_fraction = (was_clipped.to(m.dtype) * m).sum() / count
    return GRPOOutput(loss, policy_loss.detach(), kl_mean.detach(), clip_fraction)
