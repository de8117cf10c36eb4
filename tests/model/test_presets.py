"""Real-size presets at reduced depth (same widths, 1 decoder layer, 2 vision blocks): the published
widths, the bf16 build, the one-pass read-out against five full forwards at bf16 tolerance, and one
LoRA SFT and one LoRA ASO step, through ``bench/bench_realsize.py`` (the real-size smoke's own code,
here at reduced depth). Qwen2.5-VL's two vision blocks are one windowed and one full-attention block.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from ultravqa_ray.model.presets import PRESETS, build_preset_model, preset_config
from ultravqa_ray.model.tiny import build_tiny_tokenizer

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_reduced_config_keeps_every_width(name):
    preset = PRESETS[name]
    config = preset_config(name, build_tiny_tokenizer(5), layers=1, vision_layers=2)
    text, vision = config.text_config, config.vision_config
    for key in ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "vocab_size"):
        assert getattr(text, key) == preset.text[key], key
    assert text.num_hidden_layers == 1 and vision.depth == 2
    assert vision.hidden_size == preset.vision["hidden_size"] and vision.out_hidden_size == text.hidden_size
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    if preset.arch == "qwen2_5_vl":
        assert vision.window_size == 112 and vision.fullatt_block_indexes == [1]
    else:
        assert vision.deepstack_visual_indexes == [1]


def test_build_writes_bf16_safetensors_in_shards(tmp_path):
    folder = build_preset_model("qwen3_vl_4b", tmp_path / "m", layers=1, vision_layers=2, shard_bytes=256 << 20)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    assert len(files) >= 3, "an embedding of 151936 x 2560 bf16 alone is 778 MB: several 256 MB shards"
    with safe_open(str(folder / files[0]), framework="pt") as fh:
        dtypes = {str(fh.get_slice(k).get_dtype()) for k in fh.keys()}
    assert dtypes == {"BF16"}


@pytest.mark.slow
@pytest.mark.timeout(1500)  # minutes on a loaded 2-core runner: a 151,936 x 2048 LM head in bf16 on CPU
def test_reduced_depth_qwen2_5_vl_3b_scores_and_trains_with_lora(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    result = tmp_path / "result.json"
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_realsize.py"), "--layers", "1", "--vision-layers", "2",
         "--frames", "4", "--resolution", "56", "--gradient-checkpointing", "--work-dir", str(tmp_path),
         "--json", str(result)],
        capture_output=True, text=True, timeout=1500, env=env, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    phases = json.loads(result.read_text())["phases"]
    assert phases["score"]["max_prob_diff"] < 2e-2, "one-pass and five full forwards agree to bf16 tolerance"
    assert phases["score"]["video_tokens"] == 8
    for step in ("lora_sft_step", "lora_aso_step"):
        assert phases[step]["loss"] == phases[step]["loss"], f"{step} loss is NaN"
        assert phases[step]["peak_rss_gib"] > phases[step]["plan_parts_gib"]["weights"]
    assert (tmp_path / "runs" / "qwen2_5_vl_3b-l1-v2-aso" / "checkpoint_epoch1" / "adapter").is_dir()
