"""The objectives as strategies of the one loop: GRPO runs on the same loop as SFT and ASO, and the
shared helpers (rounded rater means, samples per (video, dimension)) do what they say."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from connectors.wire.dimensions import DIMENSIONS
from tests.train.conftest import DECODE
from tests.train.test_trajectory import _rows
from ultravqa_ray.losses import GRPOConfig
from ultravqa_ray.model import ModelConfig
from ultravqa_ray.train.config import DataConfig, TrainConfig
from ultravqa_ray.train.loop import run_training
from ultravqa_ray.train.objectives import rounded_means, training_samples
from ultravqa_ray.train.session import LocalSession
from ultravqa_ray.video import VideoClip


def test_rounded_means_ignore_missing_and_round_half_up():
    ratings = np.array([[[2, 3, 0], [5, 5, 4], [1, 0, 0], [3, 4, 0], [2, 2, 3]]])
    # means 2.5, 4.667, 1, 3.5, 2.333 -> 3, 5, 1, 4, 2
    assert rounded_means(ratings).tolist() == [[3, 5, 1, 4, 2]]


def test_training_samples_one_per_video_and_dimension():
    clip = VideoClip.from_frames(np.zeros((4, 8, 8, 3), np.uint8), fps=5.0)
    rows = {"frames": np.stack([clip.frames] * 2), "timestamps_s": np.stack([clip.timestamps_s] * 2),
            "decode": np.array([json.dumps(clip.metadata())] * 2, dtype=object), "ratings": np.full((2, 5, 3), 4),
            "rationale": np.array([json.dumps({"clarity_quality": "Sharp."}), "{}"], dtype=object)}  # fmt: skip
    samples = training_samples(rows, with_rationale=True)
    np.testing.assert_allclose(samples[0].video.timestamps_s, [0.0, 0.2, 0.4, 0.6])  # the rows' own times
    assert [s.dimension for s in samples[:5]] == list(DIMENSIONS) and len(samples) == 10
    assert samples[4].rationale == "Sharp." and samples[9].rationale is None and samples[0].score == 4
    assert all(s.rationale is None for s in training_samples(rows, with_rationale=False))


def test_both_answers_put_the_one_pass_samples_first_then_the_rationale_ones():
    clip = VideoClip.from_frames(np.zeros((4, 8, 8, 3), np.uint8), fps=5.0)
    rows = {"frames": np.stack([clip.frames] * 2), "timestamps_s": np.stack([clip.timestamps_s] * 2),
            "decode": np.array([json.dumps(clip.metadata())] * 2, dtype=object), "ratings": np.full((2, 5, 3), 4),
            "rationale": np.array([json.dumps({d.value: f"{d.label} is good." for d in DIMENSIONS})] * 2, dtype=object)}  # fmt: skip
    samples = training_samples(rows, with_rationale=True, both_answers=True)
    assert len(samples) == 20
    assert all(s.rationale is None for s in samples[:10]) and all(s.rationale for s in samples[10:])
    assert [(s.dimension, s.score) for s in samples[:10]] == [(s.dimension, s.score) for s in samples[10:]]
    assert len(training_samples(rows, with_rationale=False, both_answers=True)) == 10  # nothing to add


def test_aso_with_both_answers_fits_pi_star_at_the_one_pass_rows(train_corpus, tiny_model, tmp_path):
    """The KL term equals plain ASO's on the same rows without rationales (the one-pass position,
    where pi_ref was computed); the rationale rows add only the lambda x SFT term."""
    from ultravqa_ray.losses import ASOConfig
    from ultravqa_ray.model.scorer import ScorerModel
    from ultravqa_ray.train.adapter import forward_train
    from ultravqa_ray.train.objectives import ASOObjective

    rows = _rows(train_corpus)[0]
    scorer = ScorerModel(ModelConfig(name_or_path=str(tiny_model), device="cpu")).setup()
    forward = lambda batch: forward_train(scorer, batch)  # noqa: E731
    with torch.no_grad():
        _, both = ASOObjective(ASOConfig(sft_weight=0.1), both_answers=True).loss(scorer, forward, rows)
        _, plain = ASOObjective(ASOConfig(sft_weight=0.0)).loss(scorer, forward, rows)
    assert both["aso_kl"] == pytest.approx(plain["aso_kl"], rel=1e-5)
    assert both["rationale_sft"] > 0
    assert both["loss"] == pytest.approx(both["aso_kl"] + 0.1 * both["rationale_sft"], rel=1e-5)


def test_grpo_runs_on_the_same_loop(train_corpus, tiny_model, tmp_path):
    torch.manual_seed(0)
    rows = _rows(train_corpus)[:2]
    config = TrainConfig(
        objective="grpo", model=ModelConfig(name_or_path=str(tiny_model), device="cpu"),
        data=DataConfig(manifest=str(train_corpus), decode=DECODE, reference="inline"),
        output_dir=str(tmp_path), run_name="grpo", epochs=1, batch_size=1, lr=1e-3,
        grpo=GRPOConfig(group_size=2, max_new_tokens=6),
    )  # fmt: skip
    session = LocalSession(config, rows)
    history = run_training(config, session, n_rows=len(rows))
    assert len(history) == 2
    for record in history:
        assert np.isfinite(record["loss"]) and 0 <= record["parsed"] <= 1 and record["tokens"] > 0
    assert (tmp_path / "grpo" / "checkpoint_epoch1" / "model" / "model.safetensors").exists()
    assert session.reports[0]["videos"] == 2
