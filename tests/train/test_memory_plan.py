"""The memory planner on hand-computed numbers, and the presets' parameter counts against the
published model sizes."""

from __future__ import annotations

import json

import pytest

from ultravqa_ray.train.memory_plan import (
    GiB,
    ModelShape,
    PlanSettings,
    Workload,
    decoder_bytes_per_token,
    largest_batch,
    lora_parameters,
    plan_serving,
    plan_training,
    shape_of,
    video_patches,
)

# A made-up model small enough to count by hand: 2 layers, h=8, I=16, 2 heads of 4, 1 KV head,
# vocabulary 100; vision 1 block of width 4 (I=8, SwiGLU), patch 14, merge 2, temporal patch 2.
SHAPE = ModelShape(
    name="hand", arch="qwen2_5_vl", params_total=1000, params_vision=200, params_embed=100, layers=2, hidden=8,
    intermediate=16, heads=2, kv_heads=1, head_dim=4, vocab=100, vision_layers=1, vision_hidden=4,
    vision_intermediate=8, vision_swiglu=True, patch=14, merge=2, temporal_patch=2, largest_block=50,
)  # fmt: skip
CLIP = Workload(frames=8, resolution=224, batch=1, dimensions=5, text_tokens=10, answer_tokens=3)


def test_lora_parameters_by_hand():
    # per layer, r x (in + out): q 8+8, k 8+4, v 8+4, o 8+8, gate 8+16, up 8+16, down 16+8 = 128
    assert lora_parameters(SHAPE, rank=2) == 2 * 2 * 128
    assert lora_parameters(SHAPE, rank=1, targets=("q_proj", "v_proj")) == 2 * (16 + 12)
    with pytest.raises(ValueError, match="qkv"):
        lora_parameters(SHAPE, rank=1, targets=("qkv",))


def test_video_tokens_by_hand():
    # 224 px = 8 units of 28 px -> 16 x 16 patches a frame; 8 frames -> 4 temporal patches
    assert video_patches(SHAPE, CLIP) == (4 * 16 * 16, 4 * 16 * 16 // 4)


def test_static_memory_of_lora_and_full_by_hand():
    lora = plan_training(SHAPE, CLIP, PlanSettings(mode="lora", lora_rank=2, overhead=0))
    assert (lora.weights, lora.gradients, lora.optimizer) == (2 * 1000 + 4 * 512, 4 * 512, 8 * 512)
    full = plan_training(SHAPE, CLIP, PlanSettings(mode="full", gpus=2, overhead=0))
    # fp32 master / 2 + bf16 root (embeddings) + two bf16 blocks in flight; fp32 grads / 2 + one bf16
    # block gradient; two fp32 moments / 2
    assert (full.weights, full.gradients, full.optimizer) == (2000 + 200 + 200, 2000 + 100, 4000)
    frozen = plan_training(SHAPE, CLIP, PlanSettings(mode="full-bf16", freeze_vision=True, overhead=0))
    assert (frozen.weights, frozen.gradients, frozen.optimizer) == (2000, 2 * 800, 4 * 800)


def test_activations_by_hand():
    # decoder layer: 16 h + 6 q_dim + 4 kv_dim + 8 I = 128 + 48 + 16 + 128 = 320 bytes a token
    assert decoder_bytes_per_token(8, 16, 8, 4) == 320
    rows, tokens = 5, 5 * (256 + 10)
    vision_block = decoder_bytes_per_token(4, 8, 4, 4)  # 64 + 24 + 16 + 64 = 168
    assert vision_block == 168
    logits = rows * 3 * 100 * 10
    lora = plan_training(SHAPE, CLIP, PlanSettings(mode="lora", overhead=0))
    assert lora.activations == tokens * 2 * 320 + logits + rows * 1024 * 168
    checkpointed = plan_training(SHAPE, CLIP, PlanSettings(mode="full-bf16", gradient_checkpointing=True, overhead=0))
    assert checkpointed.activations == tokens * (2 * 2 * 8 + 320) + logits + rows * 1024 * (1 * 2 * 4 + 168)


def test_aso_reports_the_reference_model_it_does_not_hold_and_serving_by_hand():
    aso = plan_training(SHAPE, CLIP, PlanSettings(overhead=0), task="aso")
    assert aso.reference_saved == 2 * 1000
    assert aso.total == plan_training(SHAPE, CLIP, PlanSettings(overhead=0), task="sft").total
    serve = plan_serving(SHAPE, CLIP, overhead=0)
    prefix = 256 + 5
    cache = 2 * 2 * 1 * 4 * 2 * prefix * 1 * 6
    transient = max(prefix * (4 * 8 + 3 * 16) * 2, 1024 * (4 * 4 + 3 * 8) * 2)
    assert (serve.weights, serve.activations) == (2000, cache + transient)


def test_largest_batch_is_the_last_that_fits():
    settings = PlanSettings(overhead=0)
    def fits(batch: int, limit: int) -> bool:
        return plan_training(SHAPE, Workload(**{**CLIP.__dict__, "batch": batch}), settings).total <= limit

    for limit in (10_000, 2_000_000, 50_000_000):
        best = largest_batch(SHAPE, CLIP, settings, limit)
        assert best == 0 or fits(best, limit)
        assert not fits(best + 1, limit)


@pytest.mark.parametrize(
    ("preset", "published_billions"),
    [("qwen2_5_vl_3b", 3.75), ("qwen2_5_vl_7b", 8.29), ("qwen3_vl_4b", 4.44), ("qwen3_vl_8b", 8.77)],
)
def test_preset_sizes_match_the_published_checkpoints(preset, published_billions):
    shape = shape_of(preset)
    assert shape.params_total / 1e9 == pytest.approx(published_billions, abs=0.006)


def test_plan_command_prints_every_task_and_refuses_bad_input(capsys):
    from ultravqa_ray.cli import main

    args = ["plan", "--model", "qwen2_5_vl_7b", "--mode", "full", "--gpus", "8", "--gradient-checkpointing"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["plans"]) == {"sft", "aso", "serve"}
    assert report["plans"]["aso"]["reference_saved"] == 2 * report["params"]
    assert report["largest_batch"]["serve"] >= 1
    assert report["plans"]["sft"]["total"] < 80 * GiB
    assert main(["plan", "--model", "qwen2_5_vl_3b"]) == 0
    assert "no reference model in memory" in capsys.readouterr().out
    assert main(["plan", "--model", "no_such_model", "--frames", "8"]) == 1
    assert "neither a preset" in capsys.readouterr().err
    assert main(["plan", "--model", "qwen2_5_vl_3b", "--gpus", "0"]) == 1
