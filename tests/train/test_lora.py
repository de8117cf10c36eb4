"""LoRA fine-tuning (``train.lora``): adapters train, the base does not move, the checkpoint's merged
folder is a plain model that ``score``, ``eval`` and Serve load, and it equals base + adapter.

The very same loop as the Ray Train jobs runs in this process (``LocalSession``) on two decoded
synthetic clips: SFT with LoRA, then ASO with LoRA from the SFT model against a fixed pi_ref.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from connectors.wire.dimensions import DIMENSIONS
from tests.train.conftest import DECODE
from tests.train.test_trajectory import _rows
from ultravqa_ray.model import ModelConfig, ScorerModel
from ultravqa_ray.train.config import DataConfig, LoraConfig, TrainConfig
from ultravqa_ray.train.loop import run_training
from ultravqa_ray.train.lora import AdapterUpdates
from ultravqa_ray.train.session import LocalSession
from ultravqa_ray.video.clip import clips_from_batch


def _config(manifest, model, tmp_path, run_name: str, **settings) -> TrainConfig:
    return TrainConfig(
        objective="sft", model=ModelConfig(name_or_path=str(model), device="cpu"),
        data=DataConfig(manifest=str(manifest), decode=DECODE), output_dir=str(tmp_path), run_name=run_name,
        epochs=1, batch_size=1, lr=1e-2, warmup_ratio=0.0, schedule="constant",
        lora=LoraConfig(rank=4, alpha=8), **settings,
    )  # fmt: skip


@pytest.fixture(scope="module")
def lora_sft(train_corpus, tiny_model, tmp_path_factory):
    """One LoRA SFT epoch (2 steps, gradient checkpointing on) of the tiny model; its checkpoint."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("lora")
    rows = _rows(train_corpus)[:2]
    config = _config(train_corpus, tiny_model, tmp, "sft", gradient_checkpointing=True)
    history = run_training(config, LocalSession(config, rows), n_rows=len(rows))
    return config.run_dir / "checkpoint_epoch1", history, rows


def test_lora_sft_trains_the_adapters_only_and_saves_them_beside_the_base(lora_sft, tiny_model):
    checkpoint, history, _ = lora_sft
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    adapter_config = json.loads((checkpoint / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tiny_model)
    assert adapter_config["r"] == 4 and adapter_config["lora_alpha"] == 8
    adapters = load_file(checkpoint / "adapter" / "adapter_model.safetensors")
    assert adapters and all("lora_" in k and "language_model" in k for k in adapters)
    assert any(float(v.abs().sum()) > 0 for k, v in adapters.items() if "lora_B" in k), "lora_B must have moved"

    before = load_file(tiny_model / "model.safetensors")
    merged = load_file(checkpoint / "model" / "model.safetensors")
    assert set(merged) == set(before), "the merged folder has the base's tensor names, no adapter names"
    changed = sorted(k for k in before if not torch.equal(before[k], merged[k]))
    assert changed and all(k.startswith("model.layers.") and k.endswith("_proj.weight") for k in changed), changed
    assert not any(k.startswith("visual.") for k in changed), "the vision tower has no adapters by default"


def test_merged_folder_equals_base_plus_adapter(lora_sft, tiny_model):
    """The merged weights give the same probabilities as the base model with the peft adapter on top."""
    from peft import PeftModel

    checkpoint, _, rows = lora_sft
    clips = clips_from_batch(rows[0])
    merged = ScorerModel(ModelConfig(name_or_path=str(checkpoint / "model"), device="cpu")).setup()
    base = ScorerModel(ModelConfig(name_or_path=str(tiny_model), device="cpu")).setup()
    reference = base.score_log_probs(clips)
    PeftModel.from_pretrained(base.model, str(checkpoint / "adapter"))  # injects into base.model in place
    adapted = base.score_log_probs(clips)
    got = merged.score_log_probs(clips)
    assert torch.allclose(got, adapted, atol=1e-5), (got - adapted).abs().max()
    assert (got - reference).abs().max() > 1e-3, "the adapters must change the scores"


def test_the_merge_holds_factors_and_makes_each_update_when_asked(lora_sft, tiny_model):
    """Only the rank-4 factors are read up front (an fp32 update of every projection at once would
    be an fp32 copy of the language model at real size); an update is ``B A x alpha / r``."""
    checkpoint, _, _ = lora_sft
    updates = AdapterUpdates(checkpoint / "adapter")
    assert updates.scale == 8 / 4 and updates.factors
    assert all(b.shape[1] == 4 and a.shape[0] == 4 for b, a in updates.factors.values())
    before = load_file(tiny_model / "model.safetensors")
    merged = load_file(checkpoint / "model" / "model.safetensors")
    name = "model.layers.0.self_attn.q_proj.weight"
    b, a = updates.factors[name]
    assert name in updates and torch.equal(updates.delta(name), (b.float() @ a.float()) * 2)
    assert torch.equal(merged[name], (before[name].float() + updates.delta(name)).to(before[name].dtype))


def test_lora_aso_from_the_merged_sft_model_lowers_the_kl(lora_sft, train_corpus, tmp_path):
    torch.set_num_threads(1)
    checkpoint, _, rows = lora_sft
    config = _config(train_corpus, checkpoint / "model", tmp_path, "aso").model_copy(
        update={"objective": "aso", "data": DataConfig(manifest=str(train_corpus), decode=DECODE, reference="inline")}
    )
    history = run_training(config, LocalSession(config, rows * 2), n_rows=4)
    assert history[-1]["aso_kl"] < history[0]["aso_kl"]
    assert (config.run_dir / "checkpoint_epoch1" / "adapter" / "adapter_model.safetensors").is_file()


def test_lora_refuses_fsdp2_and_targets_that_match_nothing(train_corpus, tiny_model, tmp_path):
    with pytest.raises(ValueError, match="lora trains with strategy ddp"):
        _config(train_corpus, tiny_model, tmp_path, "x", strategy="fsdp2")
    config = _config(train_corpus, tiny_model, tmp_path, "nothing").model_copy(
        update={"lora": LoraConfig(target_modules=["no_such_proj"])}
    )
    rows = _rows(train_corpus)[:1]
    with pytest.raises(ValueError, match="no_such_proj"):
        run_training(config, LocalSession(config, rows), n_rows=1)


def test_merged_lora_checkpoint_loads_in_score_eval_and_serve(lora_sft, train_corpus, ray_local, tmp_path, capsys):
    """The merged folder through the three consumers: the ``score`` command, ``evaluate`` (Ray Data
    actor pool) and the Serve replica's scorer; all read its scoring_config.json."""
    from ultravqa_ray.cli import main
    from ultravqa_ray.serve.config import ServeConfig
    from ultravqa_ray.serve.scoring import InferItem, ReplicaScorer
    from ultravqa_ray.train.config import EvalConfig
    from ultravqa_ray.train.evaluate import evaluate

    checkpoint, _, _ = lora_sft
    model_dir = str(checkpoint / "model")
    video = next((train_corpus.parent / "videos").glob("synth-*.mp4"))
    assert main(["score", str(video), "--model", model_dir]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert set(line["scores"]) == {d.value for d in DIMENSIONS}

    outcome = evaluate(EvalConfig(model=ModelConfig(name_or_path=model_dir, device="cpu"), manifest=str(train_corpus),
                                  out=str(tmp_path / "eval"), limit=2))  # fmt: skip
    assert json.loads(outcome.metrics_json.read_text())

    replica = ReplicaScorer(ServeConfig(model=model_dir, device="cpu", decode=DECODE,
                                        storage={"allow": [str(video.parent)]}))  # fmt: skip
    from connectors.wire.messages import UploadEvent

    decoded = replica.decode(UploadEvent(video_id="v", uri=str(video), event_time="2026-01-01T00:00:00Z"))
    (served,) = replica.infer([InferItem(decoded, DIMENSIONS, False)])
    assert len(served) == len(DIMENSIONS)
