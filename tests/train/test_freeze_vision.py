"""Training only part of a model: `freeze_vision`, `freeze` prefixes and `vision_lr_scale`."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from tests.train.conftest import DECODE
from tests.train.test_trajectory import _rows
from ultravqa_ray.model import ModelConfig
from ultravqa_ray.train.config import DataConfig, TrainConfig
from ultravqa_ray.train.loop import run_training
from ultravqa_ray.train.session import LocalSession


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], prefix: str) -> list[str]:
    return [k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])]


def _sft(train_corpus, tiny_model, tmp_path, run_name: str, **settings) -> TrainConfig:
    """One in-process SFT epoch on two clips with a large step, so every trained weight moves."""
    return TrainConfig(
        objective="sft", model=ModelConfig(name_or_path=str(tiny_model), device="cpu"),
        data=DataConfig(manifest=str(train_corpus), decode=DECODE), output_dir=str(tmp_path), run_name=run_name,
        epochs=1, batch_size=1, lr=1e-2, warmup_ratio=0.0, schedule="constant", **settings,
    )  # fmt: skip


def _train(config: TrainConfig, rows) -> dict[str, torch.Tensor]:
    run_training(config, LocalSession(config, rows), n_rows=len(rows))
    return load_file(config.run_dir / "checkpoint_epoch1" / "model" / "model.safetensors")


def test_freeze_vision_trains_the_language_model_only(train_corpus, tiny_model, tmp_path):
    torch.set_num_threads(1)
    after = _train(_sft(train_corpus, tiny_model, tmp_path, "frozen", freeze_vision=True), _rows(train_corpus)[:2])
    before = load_file(tiny_model / "model.safetensors")
    # (the checkpoint format keeps Qwen-VL's original names: visual.*, model.layers.*)
    assert any(k.startswith("visual.") for k in before), "the tiny model has a vision tower"
    assert _changed(before, after, "visual.") == []
    assert _changed(before, after, "model.layers.") != []


def test_freeze_prefixes_keep_just_those_parameters(train_corpus, tiny_model, tmp_path):
    torch.set_num_threads(1)
    rows = _rows(train_corpus)[:2]
    config = _sft(train_corpus, tiny_model, tmp_path, "prefix", freeze=["model.visual.patch_embed"])
    after = _train(config, rows)
    before = load_file(tiny_model / "model.safetensors")
    assert _changed(before, after, "visual.patch_embed.") == []
    assert _changed(before, after, "visual.blocks.") != []

    wrong = config.model_copy(update={"freeze": ["visual.patch_embed"], "run_name": "wrong"})
    with pytest.raises(ValueError, match="'visual.patch_embed' matches no parameter"):
        run_training(wrong, LocalSession(wrong, rows), n_rows=len(rows))


def test_vision_lr_scale_gives_the_vision_tower_its_own_learning_rate(train_corpus, tiny_model):
    from transformers import AutoModelForImageTextToText

    from ultravqa_ray.model.hf_utils import vision_tower
    from ultravqa_ray.train.loop import freeze_parameters, param_groups

    model = AutoModelForImageTextToText.from_pretrained(tiny_model)
    base = TrainConfig(
        objective="sft", model=ModelConfig(name_or_path=str(tiny_model)),
        data=DataConfig(manifest=str(train_corpus), decode=DECODE), lr=1e-3, vision_lr_scale=0.1,
    )  # fmt: skip
    language, vision = param_groups(model, model, base)
    assert language["lr"] == 1e-3 and vision["lr"] == pytest.approx(1e-4)
    assert {id(p) for p in vision["params"]} == {id(p) for p in vision_tower(model).parameters()}
    assert len(language["params"]) + len(vision["params"]) == len(list(model.parameters()))

    frozen = base.model_copy(update={"freeze_vision": True})
    freeze_parameters(model, frozen)
    (only,) = param_groups(model, model, frozen)  # the frozen tower is not handed to the optimiser
    assert only["lr"] == 1e-3 and len(only["params"]) == len(language["params"])
