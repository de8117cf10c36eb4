"""Fixtures of the training tests: a tiny synthetic corpus (with one bad video) and a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ultravqa_ray.data.config import SynthConfig
from ultravqa_ray.data.synth import generate_corpus
from ultravqa_ray.model.tiny import build_tiny_model
from ultravqa_ray.video.config import DecodeConfig

DECODE = DecodeConfig(num_frames=4, height=56, width=56, threads=1)


def add_bad_video(manifest: Path) -> str:
    """Append a record whose 'video' is a text file; returns its video id."""
    bad = manifest.parent / "videos" / "not_a_video.mp4"
    bad.write_text("this is not a video\n")
    first = json.loads(manifest.read_text().splitlines()[0])
    record = dict(first, video_id="bad-0001", uri="videos/not_a_video.mp4")
    with manifest.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    return "bad-0001"


@pytest.fixture(scope="session")
def train_corpus(tmp_path_factory) -> Path:
    """8 clips (64x64, 1 s) plus one undecodable record; returns the manifest."""
    out = tmp_path_factory.mktemp("corpus")
    manifest = generate_corpus(out, SynthConfig(n=8, seed=3, width=64, height=64, duration_s=1.0, workers=1))
    add_bad_video(manifest)
    return manifest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model("qwen2_5_vl", tmp_path_factory.mktemp("tiny") / "model", hidden_size=32, num_layers=1)
