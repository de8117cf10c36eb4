"""The training objectives as strategies of one loop: SFT, ASO and GRPO (DESIGN.md section 4).

Each objective turns a batch of training rows (see :mod:`ultravqa_ray.train.data`) into a loss with
gradient and a few float diagnostics; the loop (:mod:`ultravqa_ray.train.loop`) owns everything
else (data, optimiser, precision, parallelism, checkpoints), so ASO and GRPO reuse the SFT plumbing
instead of copying it.

- SFT: token cross-entropy on the answer ``"<rationale> Score: N"`` per (video, dimension), N the
  rounded rater mean.
- ASO: KL(pi* || pi_theta) on the score-token distribution against the stored pi_ref, plus
  ``lambda`` x SFT on the rationale tokens only.
- GRPO: sampled completions, group-normalised rewards, clipped policy gradient with a KL penalty
  to the frozen reference model (:mod:`ultravqa_ray.train.grpo`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from connectors.wire.dimensions import DIMENSIONS
from ultravqa_ray.losses import ASOConfig, GRPOConfig, aso_loss, aso_total_loss, sft_loss
from ultravqa_ray.model.collate import TrainingBatch, TrainingSample
from ultravqa_ray.model.prompts import IGNORE_INDEX
from ultravqa_ray.model.scorer import ScorerModel
from ultravqa_ray.schemas.annotation import round_half_up
from ultravqa_ray.train.adapter import TrainOutput, build_training_batch
from ultravqa_ray.video.clip import clips_from_batch

Rows = dict[str, np.ndarray]
Forward = Callable[[TrainingBatch], TrainOutput]  # parallel.TrainForward (also has .raw(**kwargs))


class Objective(Protocol):
    @property
    def name(self) -> str: ...

    def loss(self, scorer: ScorerModel, forward: Forward, rows: Rows) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one micro-batch (with grad) and float diagnostics."""
        ...


def rounded_means(ratings: np.ndarray) -> np.ndarray:
    """``(B, D)`` round-half-up rater means of ``(B, D, R)`` ratings (0 = missing)."""
    given = ratings > 0
    means = ratings.sum(-1) / np.maximum(given.sum(-1), 1)
    return np.vectorize(round_half_up)(means).astype(np.int64)


def training_samples(rows: Rows, with_rationale: bool) -> list[TrainingSample]:
    """One sample per (clip, dimension), video-major in DIMENSIONS order."""
    labels = rounded_means(rows["ratings"])
    out = []
    for i, clip in enumerate(clips_from_batch(rows)):
        rationale = json.loads(str(rows["rationale"][i])) if with_rationale else {}
        for j, dim in enumerate(DIMENSIONS):
            out.append(
                TrainingSample(
                    video=clip, dimension=dim, score=int(labels[i, j]), rationale=rationale.get(dim.value) or None
                )
            )
    return out


@dataclass(frozen=True)
class SFTObjective:
    with_rationale: bool = True
    name: str = "sft"

    def loss(self, scorer: ScorerModel, forward: Forward, rows: Rows) -> tuple[torch.Tensor, dict[str, float]]:
        batch = build_training_batch(scorer, training_samples(rows, self.with_rationale))
        out = forward(batch)
        loss = sft_loss(out.logits, out.labels)
        with torch.no_grad():
            score_ce = torch.nn.functional.cross_entropy(
                out.score_logits.float(), batch.score_level.to(out.score_logits.device) - 1
            )
        return loss, {"loss": float(loss.detach()), "score_ce": float(score_ce)}


@dataclass(frozen=True)
class ASOObjective:
    config: ASOConfig
    with_rationale: bool = True
    name: str = "aso"

    def loss(self, scorer: ScorerModel, forward: Forward, rows: Rows) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        with_rationale = self.with_rationale and cfg.sft_weight > 0
        batch = build_training_batch(scorer, training_samples(rows, with_rationale))
        out = forward(batch)
        device = out.score_logits.device
        k = scorer.k
        ratings = torch.as_tensor(rows["ratings"], device=device).reshape(-1, rows["ratings"].shape[-1])
        pi_ref = torch.as_tensor(rows["pi_ref"], device=device).reshape(-1, k)
        result = aso_loss(
            out.score_logits, pi_ref, ratings, beta=cfg.beta, eps=cfg.eps, reward=cfg.reward, mask=ratings > 0
        )
        sft = None
        if with_rationale:
            rationale_labels = out.labels.masked_fill(~out.rationale_mask, IGNORE_INDEX)
            sft = sft_loss(out.logits, rationale_labels)
        loss = aso_total_loss(result.loss, sft, cfg.sft_weight)
        return loss, {
            "loss": float(loss.detach()),
            "aso_kl": float(result.loss.detach()),
            "kl_to_ref": float(result.kl_to_ref.mean()),
            "rationale_sft": float(sft.detach()) if sft is not None else 0.0,
        }


@dataclass(frozen=True)
class GRPOObjective:
    config: GRPOConfig
    reference: Any  # the frozen reference model (a transformers module), loaded in the worker
    name: str = "grpo"

    def loss(self, scorer: ScorerModel, forward: Forward, rows: Rows) -> tuple[torch.Tensor, dict[str, float]]:
        from ultravqa_ray.train.grpo import grpo_batch_loss

        ratings = torch.as_tensor(rows["ratings"]).reshape(-1, rows["ratings"].shape[-1])
        out = grpo_batch_loss(
            scorer, clips_from_batch(rows), ratings, self.config, policy=forward.raw, reference=self.reference  # type: ignore[attr-defined]
        )
        return out.loss, out.stats
