"""The demo's default model: a matching recipe stamp returns the cached folder at once, a changed
recipe does not match, and the decode settings saved beside the model load back.

The full first-use training (corpus -> SFT -> reference -> ASO -> held-out evaluation) takes minutes
and is measured by bench/bench_train.py and the demo, not here; its parts are tested in this folder.
"""

from __future__ import annotations

import json

import pytest

from ultravqa_ray.train import default_model as dm


def test_cached_model_is_returned_without_training(tmp_path):
    (tmp_path / dm.MODEL_SUBDIR).mkdir()
    (tmp_path / dm.MODEL_SUBDIR / "config.json").write_text("{}")
    (tmp_path / dm.STAMP).write_text(json.dumps({"hash": dm.recipe_hash()}))
    (tmp_path / dm.DECODE_FILE).write_text(dm.default_decode_config().to_yaml())
    messages: list[str] = []
    assert dm.ensure_default_model(tmp_path, log=messages.append) == tmp_path / dm.MODEL_SUBDIR
    assert "cached" in messages[0]
    assert dm.load_decode_config(tmp_path / dm.MODEL_SUBDIR) == dm.default_decode_config()


def test_recipe_change_invalidates_the_stamp(tmp_path):
    changed = json.loads(json.dumps(dm.DEFAULT_MODEL_RECIPE))
    changed["sft"]["epochs"] += 1
    assert dm.recipe_hash(changed) != dm.recipe_hash()
    (tmp_path / dm.MODEL_SUBDIR).mkdir()
    (tmp_path / dm.MODEL_SUBDIR / "config.json").write_text("{}")
    (tmp_path / dm.STAMP).write_text(json.dumps({"hash": dm.recipe_hash(changed)}))
    assert dm._cached(tmp_path) is None


def test_decode_config_missing_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="decode.yaml"):
        dm.load_decode_config(tmp_path)


def test_filter_vision_init_passes_motion_energy(tmp_path):
    """``vision_init="filters"``: the filter bank survives save/load and motion lights up its energies."""
    import numpy as np
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from ultravqa_ray.model import ModelConfig
    from ultravqa_ray.model.scorer import ScorerModel
    from ultravqa_ray.model.tiny import build_tiny_model, vision_filter_bank

    folder = build_tiny_model("qwen2_5_vl", tmp_path / "m", init_std=0.02, vision_init="filters")
    loaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder)
    bank = vision_filter_bank(14, 2)
    torch.testing.assert_close(loaded.model.visual.patch_embed.proj.weight[: len(bank)], bank)
    scorer = ScorerModel(ModelConfig(name_or_path=str(folder), device="cpu", dtype="float32")).setup()
    texture = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    static = np.stack([texture] * 8)
    moving = np.stack([np.roll(texture, 3 * t, axis=1) for t in range(8)])

    def motion_energy(frames: np.ndarray) -> float:
        prepared = scorer.prepare_video(frames)
        grid = torch.tensor([list(prepared.patches.grid_thw)])
        with torch.no_grad():
            out = scorer.model.model.visual(prepared.patches.pixel_values, grid_thw=grid)
        out = getattr(out, "pooler_output", out)
        return float(out[:, :3].mean())  # output dims 0..n-1: low-frequency temporal-difference energies

    assert motion_energy(moving) > 5 * abs(motion_energy(static)) + 1e-3
    with pytest.raises(ValueError, match="vision_init"):
        build_tiny_model("qwen2_5_vl", tmp_path / "bad", vision_init="sobel")  # type: ignore[arg-type]
