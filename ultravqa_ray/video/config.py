"""The decode configuration: how many frames, at what size, and the limits one input may not pass."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ultravqa_ray.config import Config

GIB = 1 << 30


class DecodeConfig(Config):
    """How to sample and shape frames, and the limits that keep one hostile upload from a worker.

    The defaults admit a 10-minute 1080p clip (and 4K) with room to spare; the timeout bounds the
    wall time of one decode, checked between packets and frames.
    """

    num_frames: int = Field(8, ge=1, le=1024, description="frames to sample in uniform mode")
    sampling: Literal["uniform", "fps"] = Field(
        "uniform",
        description="uniform: num_frames spread over the duration; fps: sample_fps frames a second, "
        "at most max_frames (spread over the whole clip when capped)",
    )
    sample_fps: float = Field(2.0, gt=0, le=240, description="frames a second in fps mode")
    max_frames: int = Field(32, ge=1, le=1024, description="frame cap in fps mode (the output length)")
    height: int = Field(224, ge=1, le=4096, description="output frame height in pixels")
    width: int = Field(224, ge=1, le=4096, description="output frame width in pixels")
    resize: Literal["pad", "stretch"] = Field(
        "pad", description="pad: letterbox keeping the display aspect (black bars); stretch: fill the frame"
    )
    interpolation: Literal["bilinear", "bicubic", "area"] = Field(
        "bicubic", description="swscale filter used to resize"
    )
    seek_policy: Literal["auto", "seek", "sequential"] = Field(
        "auto",
        description="auto: seek to a sample only when that skips more decoding than a seek costs "
        "(judged from the keyframe layout); seek: always seek; sequential: one pass, never seek",
    )
    max_bytes: int = Field(4 * GIB, ge=1, description="largest input file accepted, in bytes")
    max_duration_s: float = Field(3600.0, gt=0, description="longest video accepted, in seconds")
    max_pixels: int = Field(
        4096 * 2160, ge=1, description="largest frame accepted (width x height), declared or decoded"
    )
    timeout_s: float = Field(300.0, gt=0, description="wall-clock limit for one decode, in seconds")
    threads: int = Field(
        2, ge=0, le=64, description="decoder threads (frame + slice threading); 0 lets FFmpeg use every core"
    )
    read_buffer_bytes: int = Field(
        1 << 20,
        ge=4096,
        description="read size for file-like inputs (object-store files): fewer, larger reads",
    )

    @model_validator(mode="after")
    def _check_pixels(self) -> DecodeConfig:
        if self.width * self.height > self.max_pixels:
            raise ValueError(f"output size {self.width}x{self.height} is above max_pixels={self.max_pixels}")
        return self

    @property
    def output_frames(self) -> int:
        """Length of the frame axis of every output: num_frames (uniform) or max_frames (fps)."""
        return self.num_frames if self.sampling == "uniform" else self.max_frames
