"""The GRPO baseline's sampling step (DESIGN.md section 4), for side-by-side comparison with ASO.

Per (video, dimension): sample G completions (rationale + score) from the policy, parse the score,
reward it with the same ordinal reward as ASO (unparseable = lowest reward), normalise rewards
within the group, and form the clipped policy-gradient loss with the k3 KL penalty to the frozen
reference model (:func:`ultravqa_ray.losses.grpo_loss`). One optimisation step per sampling round,
so the old policy equals the current one (ratio 1 at the step; the clip matters for PPO-style
multiple epochs). Unlike ASO, this needs generation and a reference model in the training loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

from connectors.wire.dimensions import DIMENSIONS, Dimension
from ultravqa_ray.losses import GRPOConfig, group_advantages, grpo_loss, grpo_rewards, parse_score
from ultravqa_ray.model.scorer import ScorerModel
from ultravqa_ray.video.clip import VideoClip

VISION_TOKENS = ("<|video_pad|>", "<|image_pad|>", "<|vision_start|>", "<|vision_end|>")


class GRPOStep(NamedTuple):
    loss: torch.Tensor  # () mean over (video, dimension) groups, with grad
    tokens: int  # completion tokens sampled
    stats: dict[str, float]


def _token_logps(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.float(), -1).gather(-1, target.unsqueeze(-1)).squeeze(-1)


def grpo_batch_loss(
    scorer: ScorerModel,
    clips: Sequence[VideoClip],
    ratings: torch.Tensor,
    config: GRPOConfig,
    *,
    dimensions: Sequence[Dimension] = DIMENSIONS,
    policy: Callable[..., Any] | None = None,
    reference: Any | None = None,
) -> GRPOStep:
    """GRPO loss of ``clips`` x ``dimensions`` items; ``ratings`` ``(V * D, R)``, 0 = missing.

    ``policy`` is the module the policy forward runs through (a DDP/FSDP wrapper of
    ``scorer.model``; default ``scorer.model``); sampling always uses ``scorer.model``.
    ``reference`` is the frozen reference model (default: the policy itself, detached).
    """
    model, prompts, k, g = scorer.model, scorer.prompts, scorer.k, config.group_size
    policy = policy or model
    device = scorer.device
    pad = scorer.tokenizer.pad_token_id
    # A policy must never write vision placeholders: the forward would expect video features for them.
    vision_ids = scorer.tokenizer.convert_tokens_to_ids(list(VISION_TOKENS))
    groups, parsed = [], []
    for clip in clips:
        prepared = scorer.prepare_video(clip)
        prefix_ids, prefix_types = prompts.prefix(prepared.tokens)
        vis = {key: val.repeat(g, 1) for key, val in scorer.vision_inputs([prepared]).items()}
        kw = {key: val.repeat(g) for key, val in scorer.family.forward_kwargs(scorer.second_per_grid_ts([prepared])).items()}
        for d in dimensions:
            ids = prefix_ids + prompts.suffix(Dimension(d), with_answer_prefix=False)
            types = prefix_types + [0] * (len(ids) - len(prefix_types))
            prompt = torch.tensor([ids] * g, device=device)
            with torch.no_grad():
                out = model.generate(
                    input_ids=prompt,
                    attention_mask=torch.ones_like(prompt),
                    mm_token_type_ids=torch.tensor([types] * g, device=device),
                    do_sample=True,
                    temperature=config.temperature,
                    max_new_tokens=config.max_new_tokens,
                    pad_token_id=pad,
                    suppress_tokens=vision_ids,
                    **vis,
                    **kw,
                )
            completion = out[:, prompt.shape[1] :]
            texts = scorer.tokenizer.batch_decode(completion, skip_special_tokens=True)
            parsed += [parse_score(t, k) for t in texts]
            groups.append((out, types, vis, kw, prompt.shape[1], completion != pad))
    rewards = grpo_rewards(parsed, ratings.repeat_interleave(g, 0), k, config.reward, mask=ratings.repeat_interleave(g, 0) > 0)
    advantages = group_advantages(rewards, g).to(device)
    total = torch.zeros((), device=device)
    tokens, kl_sum, clip_sum = 0, 0.0, 0.0
    for i, (out, types, vis, kw, n_prompt, mask) in enumerate(groups):
        args = dict(
            input_ids=out,
            attention_mask=torch.cat([torch.ones(g, n_prompt, dtype=torch.long, device=device), mask.long()], 1),
            mm_token_type_ids=torch.tensor([types + [0] * (out.shape[1] - len(types))] * g, device=device),
            **vis,
            **kw,
        )
        target = out[:, n_prompt:]
        with torch.no_grad():
            ref_logits = (reference or model)(**args).logits[:, n_prompt - 1 : -1]
        new = _token_logps(policy(**args).logits[:, n_prompt - 1 : -1], target)
        ref = _token_logps(ref_logits, target)
        part = grpo_loss(
            new, new.detach(), ref, advantages[i * g : (i + 1) * g], mask.float(),
            clip_eps=config.clip_eps, kl_coef=config.kl_coef,
        )  # fmt: skip
        total = total + part.loss / len(groups)
        tokens += int(mask.sum())
        kl_sum += float(part.kl)
        clip_sum += float(part.clip_fraction)
    n = max(1, len(groups))
    parsed_share = sum(p is not None for p in parsed) / max(1, len(parsed))
    stats = {
        "loss": float(total.detach()),
        "reward": float(rewards.mean()),
        "kl": kl_sum / n,
        "clip_fraction": clip_sum / n,
        "parsed": parsed_share,
        "tokens": float(tokens),
    }
    return GRPOStep(loss=total, tokens=tokens, stats=stats)
