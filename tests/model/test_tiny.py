"""Offline tiny models: real classes, small, fast, deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ultravqa_ray.model import ModelConfig, ScorerModel, build_tiny_model
from ultravqa_ray.model.scorer import weights_digest
from ultravqa_ray.model.tiny import mrope_sections
from ultravqa_ray.video import VideoClip

from .conftest import ARCHS


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_models_are_small(arch, scorers):
    """Small enough to be fast; their speed is measured in bench/bench_model.py, not asserted here."""
    scorer = scorers[arch]
    assert sum(p.numel() for p in scorer.model.parameters()) < 500_000
    frames = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    prepared = scorer.prepare_video(VideoClip.from_frames(frames, fps=2.0))
    pixels = prepared.patches.pixel_values
    grid = torch.tensor([prepared.patches.grid_thw])
    with torch.inference_mode():
        features = scorer.model.model.get_video_features(pixels, grid)
    features = getattr(features, "pooler_output", features)
    assert torch.cat(list(features)).isfinite().all()


def test_builds_are_deterministic_for_a_seed(tmp_path, tiny_dirs):
    again = build_tiny_model("qwen2_vl", tmp_path / "again", seed=0)
    assert weights_digest(again) == weights_digest(tiny_dirs["qwen2_vl"])
    assert weights_digest(build_tiny_model("qwen2_vl", tmp_path / "seed1", seed=1)) != weights_digest(again)


@pytest.mark.parametrize("head_dim", [8, 16, 32, 64, 128])
def test_mrope_sections_fill_half_the_head(head_dim):
    for family in ARCHS:
        sections = mrope_sections(head_dim, family)
        assert sum(sections) == head_dim // 2 and min(sections) >= 1
    assert mrope_sections(128, "qwen2_vl") == [16, 24, 24]
    assert mrope_sections(128, "qwen3_vl") == [24, 20, 20]


def test_a_wider_tiny_model_scores(tmp_path):
    folder = build_tiny_model("qwen2_5_vl", tmp_path / "wide", hidden_size=128, num_layers=3, num_heads=8)
    scorer = ScorerModel(ModelConfig(name_or_path=str(folder))).setup()
    assert scorer.model.config.text_config.num_hidden_layers == 3
    clip = VideoClip.from_frames(np.zeros((4, 64, 64, 3), np.uint8), fps=2.0)
    assert scorer.score_log_probs([clip]).shape == (1, 5, 5)
    with pytest.raises(ValueError, match="unknown arch"):
        build_tiny_model("llava", tmp_path / "x")
