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
- Soft-label SFT and expected-score regression (baselines of ASO, ``bench/ablate_aso.py``): a loss
  on the same score-token distribution against the raters' empirical distribution or their mean,
  plus ``lambda`` x SFT on the rationale tokens only, as ASO.
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
from ultravqa_ray.losses.expected_score import ExpectedScoreConfig, expected_score_loss, rater_mean
from ultravqa_ray.losses.soft_label import SoftLabelConfig, rater_distribution, soft_label_loss
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


def training_samples(rows: Rows, with_rationale: bool, both_answers: bool = False) -> list[TrainingSample]:
    """One sample per (clip, dimension), video-major in DIMENSIONS order.

    ``both_answers`` (with a rationale): the ``B * D`` one-pass samples (``"Score: N"``) first, then
    the ``B * D`` rationale samples in the same order.
    """
    labels = rounded_means(rows["ratings"])
    clips = clips_from_batch(rows)
    plain = [
        TrainingSample(video=clip, dimension=dim, score=int(labels[i, j]))
        for i, clip in enumerate(clips)
        for j, dim in enumerate(DIMENSIONS)
    ]
    if not with_rationale:
        return plain
    written = []
    for i, clip in enumerate(clips):
        rationale = json.loads(str(rows["rationale"][i]))
        for j, dim in enumerate(DIMENSIONS):
            written.append(
                TrainingSample(
                    video=clip, dimension=dim, score=int(labels[i, j]), rationale=rationale.get(dim.value) or None
                )
            )
    return plain + written if both_answers else written


@dataclass(frozen=True)
class SFTObjective:
    with_rationale: bool = True
    both_answers: bool = False
    name: str = "sft"

    def loss(self, scorer: ScorerModel, forward: Forward, rows: Rows) -> tuple[torch.Tensor, dict[str, float]]:
        batch = build_training_batch(scorer, training_samples(rows, self.with_rationale, self.both_answers))
        out = forward(batch)
        if self.both_answers and self.with_rationale:
            loss = self._both_answers_loss(batch, out, rows["ratings"].shape[0] * len(DIMENSIONS))
        else:
            loss = sft_loss(out.logits, out.labels)
        with torch.no_grad():
            score_ce = torch.nn.functional.cross_entropy(
                out.score_logits.float(), batch.score_level.to(out.score_logits.device) - 1
            )
        return loss, {"loss": float(loss.detach()), "score_ce": float(score_ce)}

    @staticmethod
    def _both_answers_loss(batch: TrainingBatch, out: TrainOutput, n_plain: int) -> torch.Tensor:
        """SFT on the rationale rows' whole answer plus the score token's cross-entropy at the one-pass
        rows (the first ``n_plain``). Only the score token of a one-pass row is a target: the answer
        prefix before it is forced by the scorer, and training it would teach the model to open every
        answer with "Score:", so a rationale would never be written."""
        rows = torch.arange(n_plain, device=out.logits.device)
        at = batch.score_index[:n_plain].to(out.logits.device) - out.offset
        one_pass = torch.nn.functional.cross_entropy(out.logits[rows, at].float(), out.labels[rows, at + 1])
        return sft_loss(out.logits[n_plain:], out.labels[n_plain:]) + one_pass


@dataclass(frozen=True)
class ASOObjective:
    config: ASOConfig
    with_rationale: bool = True
    both_answers: bool = False
    name: str = "aso"

    def loss(self, scorer: ScorerModel, forward: Forward, rows: Rows) -> tuple[torch.Tensor, dict[str, float]]:
        """With ``both_answers`` the KL is taken at the one-pass rows (the first ``B * D``) and the
        ``lambda`` x SFT term on the rationale rows' whole answer (the rationale, then ``Score: N``, so
        that generation keeps closing its rationale with the answer prefix); otherwise both on the
        same rows, the SFT term on the rationale tokens only."""
        cfg = self.config
        with_rationale = self.with_rationale and cfg.sft_weight > 0
        batch = build_training_batch(scorer, training_samples(rows, with_rationale, self.both_answers))
        out = forward(batch)
        device = out.score_logits.device
        k = scorer.k
        ratings = torch.as_tensor(rows["ratings"], device=device).reshape(-1, rows["ratings"].shape[-1])
        pi_ref = torch.as_tensor(rows["pi_ref"], device=device).reshape(-1, k)
        result = aso_loss(
            out.score_logits[: ratings.shape[0]], pi_ref, ratings, beta=cfg.beta, eps=cfg.eps, reward=cfg.reward,
            mask=ratings > 0,
        )  # fmt: skip
        sft = None
        n_plain = ratings.shape[0]
        if with_rationale and self.both_answers:  # the rationale rows' whole answer: the text, then "Score: N"
            sft = sft_loss(out.logits[n_plain:], out.labels[n_plain:])
        elif with_rationale:
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


@dataclass(frozen=True)
class ScoreHeadObjective:
    """A loss on the score-token distribution from the raters, plus ``lambda`` x rationale SFT (as ASO).

    ``kind``: ``soft_sft`` (cross-entropy against the raters' empirical distribution q,
    :mod:`ultravqa_ray.losses.soft_label`) or ``expected_score`` (squared error of the expected
    score against the rater mean, :mod:`ultravqa_ray.losses.expected_score`).
    """

    config: SoftLabelConfig | ExpectedScoreConfig
    kind: str
    with_rationale: bool = True

    @property
    def name(self) -> str:
        return self.kind

    def loss(self, scorer: ScorerModel, forward: Forward, rows: Rows) -> tuple[torch.Tensor, dict[str, float]]:
        with_rationale = self.with_rationale and self.config.sft_weight > 0
        batch = build_training_batch(scorer, training_samples(rows, with_rationale))
        out = forward(batch)
        device = out.score_logits.device
        ratings = torch.as_tensor(rows["ratings"], device=device).reshape(-1, rows["ratings"].shape[-1])
        if self.kind == "soft_sft":
            head = soft_label_loss(out.score_logits, rater_distribution(ratings, scorer.k, ratings > 0))
        elif self.kind == "expected_score":
            head = expected_score_loss(out.score_logits, rater_mean(ratings, scorer.k, ratings > 0))
        else:
            raise ValueError(f"unknown score-head objective {self.kind!r}")
        sft = None
        if with_rationale:
            sft = sft_loss(out.logits, out.labels.masked_fill(~out.rationale_mask, IGNORE_INDEX))
        loss = aso_total_loss(head, sft, self.config.sft_weight)
        return loss, {
            "loss": float(loss.detach()),
            "score_loss": float(head.detach()),
            "rationale_sft": float(sft.detach()) if sft is not None else 0.0,
        }
