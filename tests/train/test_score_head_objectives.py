"""Soft-label SFT and expected-score regression run on the one training loop, with the loss of their modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.train.conftest import DECODE
from tests.train.test_trajectory import _rows
from ultravqa_ray.losses import expected_score_loss, rater_distribution, rater_mean, soft_label_loss
from ultravqa_ray.model import ModelConfig
from ultravqa_ray.model.scorer import ScorerModel
from ultravqa_ray.train.adapter import build_training_batch, forward_train
from ultravqa_ray.train.config import DataConfig, TrainConfig
from ultravqa_ray.train.loop import run_training
from ultravqa_ray.train.objectives import training_samples
from ultravqa_ray.train.session import LocalSession


@pytest.mark.parametrize("objective", ["soft_sft", "expected_score"])
def test_score_head_objective_trains_on_the_loop(objective, train_corpus, tiny_model, tmp_path):
    torch.manual_seed(0)
    rows = _rows(train_corpus)[:1] * 4  # one clip, four steps: its score loss must fall
    ratings = torch.as_tensor(rows[0]["ratings"]).reshape(-1, rows[0]["ratings"].shape[-1])
    scorer = ScorerModel(ModelConfig(name_or_path=str(tiny_model), device="cpu", dtype="float32")).setup()
    with torch.no_grad():
        logits = forward_train(scorer, build_training_batch(scorer, training_samples(rows[0], False))).score_logits
    if objective == "soft_sft":
        expected = soft_label_loss(logits, rater_distribution(ratings, 5, ratings > 0))
    else:
        expected = expected_score_loss(logits, rater_mean(ratings, 5, ratings > 0))

    config = TrainConfig(
        objective=objective, model=ModelConfig(name_or_path=str(tiny_model), device="cpu"),
        data=DataConfig(manifest=str(train_corpus), decode=DECODE, rationale=False),
        output_dir=str(tmp_path), run_name=objective, epochs=1, batch_size=1, lr=1e-2, warmup_ratio=0.0,
        schedule="constant",
    )  # fmt: skip
    history = run_training(config, LocalSession(config, rows), n_rows=len(rows))
    losses = [r["score_loss"] for r in history]
    assert losses[0] == pytest.approx(float(expected), rel=1e-4)  # step 1 sees the initial weights
    assert losses[-1] < losses[0] and all(np.isfinite(losses))
    assert all(r["rationale_sft"] == 0.0 for r in history)  # rationale off: no SFT term
    assert (tmp_path / objective / "checkpoint_epoch1" / "model" / "model.safetensors").exists()


def test_objective_names_are_refused_unless_known(train_corpus, tiny_model):
    with pytest.raises(ValueError, match="objective"):
        TrainConfig(objective="soft", model=ModelConfig(name_or_path=str(tiny_model)),
                    data=DataConfig(manifest=str(train_corpus)))  # fmt: skip
