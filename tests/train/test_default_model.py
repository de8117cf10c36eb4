"""The demo's default model: the shipped checkpoint is the current recipe's output and scores clips
it never saw meaningfully; a matching recipe stamp returns a cached folder at once, a changed recipe
does not match, and the decode settings saved beside the model load back.

The full recipe (corpus -> SFT -> reference -> ASO -> held-out evaluation) takes tens of minutes and
is run by ``ultravqa-ray model default --out DIR`` (its figures are in the shipped metrics.json);
its parts are tested in this folder.
"""

from __future__ import annotations

import json

import pytest

from ultravqa_ray.model import ModelConfig
from ultravqa_ray.model.folder import ScoringSettings
from ultravqa_ray.train import default_model as dm
from ultravqa_ray.video import VideoClip


def test_cached_model_is_returned_without_training(tmp_path):
    (tmp_path / dm.MODEL_SUBDIR).mkdir()
    (tmp_path / dm.MODEL_SUBDIR / "config.json").write_text("{}")
    (tmp_path / dm.STAMP).write_text(json.dumps({"hash": dm.recipe_hash()}))
    ScoringSettings.of(ModelConfig(name_or_path="m"), dm.default_decode_config()).write(tmp_path / dm.MODEL_SUBDIR)
    messages: list[str] = []
    assert dm.ensure_default_model(tmp_path, log=messages.append, shipped=None) == tmp_path / dm.MODEL_SUBDIR
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


def test_shipped_checkpoint_is_the_current_recipes_output(tmp_path):
    stamp = json.loads((dm.SHIPPED_DIR / dm.STAMP).read_text())
    assert stamp["hash"] == dm.recipe_hash(), (
        "DEFAULT_MODEL_RECIPE changed: rebuild with `ultravqa-ray model default --out ultravqa_ray/assets/default-model`"
    )
    assert stamp["recipe"] == dm.DEFAULT_MODEL_RECIPE
    assert dm.load_decode_config(dm.SHIPPED_DIR / dm.MODEL_SUBDIR) == dm.default_decode_config()
    assert dm.load_decode_config(dm.SHIPPED_DIR) == dm.default_decode_config()  # the folder above works too
    messages: list[str] = []
    assert dm.ensure_default_model(tmp_path, log=messages.append) == dm.SHIPPED_DIR / dm.MODEL_SUBDIR
    assert "shipped" in messages[0] and not any(tmp_path.iterdir())  # nothing trained, nothing cached
    metrics = json.loads((dm.SHIPPED_DIR / dm.METRICS_FILE).read_text())  # the figures the README publishes
    per_dimension = metrics["aso"]["per_dimension"]
    assert per_dimension["motion_amplitude"]["srcc"] >= 0.7, per_dimension
    assert per_dimension["clarity_quality"]["srcc"] >= 0.7, per_dimension  # the frozen tower keeps clarity
    assert metrics["aso"]["overall"]["mae"] < metrics["sft"]["overall"]["mae"]  # ASO improved on its SFT start


def test_shipped_checkpoint_scores_unseen_clips_meaningfully(tmp_path):
    """On clips from a seed neither training nor held-out used, expected scores follow the raters."""
    import numpy as np
    from scipy.stats import spearmanr

    from connectors.wire.dimensions import DIMENSIONS
    from ultravqa_ray.data.config import SynthConfig
    from ultravqa_ray.data.synth import generate_corpus
    from ultravqa_ray.model import ModelConfig
    from ultravqa_ray.model.scorer import ScorerModel
    from ultravqa_ray.schemas.manifest import read_manifest
    from ultravqa_ray.train.data import manifest_rows
    from ultravqa_ray.video.decoder import decode_video

    manifest = generate_corpus(tmp_path / "clips", SynthConfig(n=60, seed=7, workers=2))
    rows = manifest_rows(list(read_manifest(manifest)), str(manifest))
    folder = dm.ensure_default_model(tmp_path / "cache")
    decode = dm.load_decode_config(folder)
    scorer = ScorerModel(ModelConfig(name_or_path=str(folder), device="cpu", dtype="float32")).setup()
    clips = [decode_video(row["uri"], decode) for row in rows]
    probs = np.concatenate([scorer.score_log_probs(clips[i : i + 10]).exp().numpy() for i in range(0, 60, 10)])
    expected = (probs * np.arange(1, probs.shape[-1] + 1)).sum(-1)  # (videos, dimensions)
    ratings = np.stack([row["ratings"] for row in rows]).astype(float)
    rater_mean = np.nanmean(np.where(ratings > 0, ratings, np.nan), axis=-1)
    srcc = {d.value: spearmanr(expected[:, j], rater_mean[:, j])[0] for j, d in enumerate(DIMENSIONS)}
    # 60 clips: the sampling error of SRCC is ~0.1, so the bars sit well below the held-out figures
    # (motion amplitude and clarity ~0.8, content ~0.7, the five dimensions' mean ~0.55: see the README)
    assert srcc["motion_amplitude"] > 0.6 and srcc["clarity_quality"] > 0.5, srcc
    assert np.mean(list(srcc.values())) > 0.3, srcc


def test_decode_config_missing_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="scoring_config.json"):
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
        prepared = scorer.prepare_video(VideoClip.from_frames(frames, fps=2.0))
        grid = torch.tensor([list(prepared.patches.grid_thw)])
        with torch.no_grad():
            out = scorer.model.model.visual(prepared.patches.pixel_values, grid_thw=grid)
        out = getattr(out, "pooler_output", out)
        return float(out[:, :3].mean())  # output dims 0..n-1: low-frequency temporal-difference energies

    assert motion_energy(moving) > 5 * abs(motion_energy(static)) + 1e-3
    with pytest.raises(ValueError, match="vision_init"):
        build_tiny_model("qwen2_5_vl", tmp_path / "bad", vision_init="sobel")  # type: ignore[arg-type]



def test_colour_filters_pass_exposure_and_saturation(tmp_path):
    """``vision_init="filters+colour"``: three more energies after the bank's 13, for brightness away
    from mid-grey (exposure) and for saturation, which the zero-mean gratings cannot see."""
    import numpy as np
    import torch

    from ultravqa_ray.model import ModelConfig
    from ultravqa_ray.model.scorer import ScorerModel
    from ultravqa_ray.model.tiny import build_tiny_model

    folder = build_tiny_model("qwen2_5_vl", tmp_path / "m", vision_hidden_size=48, vision_init="filters+colour")
    scorer = ScorerModel(ModelConfig(name_or_path=str(folder), device="cpu", dtype="float32")).setup()
    rng = np.random.default_rng(0)
    texture = rng.normal(0, 12, (64, 64, 1))

    def energies(rgb) -> np.ndarray:
        frames = np.clip(np.array(rgb, dtype=np.float64)[None, None, None] + texture, 0, 255).astype(np.uint8)
        prepared = scorer.prepare_video(VideoClip.from_frames(np.repeat(frames, 8, axis=0), fps=2.0))
        with torch.no_grad():
            out = scorer.model.model.visual(prepared.patches.pixel_values, grid_thw=torch.tensor([list(prepared.patches.grid_thw)]))
        out = getattr(out, "pooler_output", out)
        return out[:, 13:16].mean(0).numpy()  # brightness, R-G, R+G-2B

    grey, bright, dark, red = energies([120, 120, 120]), energies([245, 245, 245]), energies([10, 10, 10]), energies([200, 40, 40])
    assert bright[0] > 2 * grey[0] and dark[0] > 2 * grey[0]  # exposure, both ways
    assert red[1] > 2 * grey[1] and red[2] > 2 * grey[2]  # saturation
    with pytest.raises(ValueError, match="vision channels"):
        build_tiny_model("qwen2_5_vl", tmp_path / "narrow", vision_hidden_size=16, vision_init="filters+colour")
