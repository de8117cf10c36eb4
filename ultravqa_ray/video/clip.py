"""The clip record: what the decoder produces and the only video input the scorer accepts.

A :class:`VideoClip` carries the sampled frames together with their presentation times, the
source's duration and what the decoder learnt about the source. The times travel with the frames
everywhere (serving, batch scoring, ``score``, the training decode cache, the reference pass and
evaluation), so the model places a clip's frames at the same temporal positions whichever path it
took: Qwen2.5-VL reads the sampled rate (``second_per_grid_ts``), Qwen3-VL writes the times as text.

Columns of a decoded batch (:func:`ultravqa_ray.video.decode_batch`, and the training decode cache,
which stores them unchanged): ``frames``, ``timestamps_s`` and ``decode`` (the JSON of
:meth:`VideoClip.metadata`); :func:`clips_from_batch` turns such rows back into clips.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class VideoClip:
    """Sampled frames and what was learnt about the source.

    Output frame ``i`` is the source frame on screen at ``timestamps_s[i]``, so a clip with fewer
    frames than samples, or a frozen stretch of a variable-rate clip, repeats frames in place
    (``frames_used`` counts the distinct ones); in fps mode a clip too short for ``max_frames``
    samples is padded by repeating its last frame (and its time).
    """

    frames: np.ndarray  # (T, height, width, 3) uint8 RGB
    timestamps_s: np.ndarray  # (T,) float64 presentation time of each frame, from the stream start
    duration_s: float
    fps: float | None  # the source's frame rate, when declared
    width: int  # source display size, after rotation
    height: int
    rotation: int  # counter-clockwise degrees turned to make the frames upright: 0, 90, 180, 270
    frames_used: int  # distinct source frames in ``frames``
    strategy: str  # "seek" or "sequential" (decoder), "frames" (built from frames in memory)
    codec: str

    def __post_init__(self) -> None:
        frames, times = self.frames, self.timestamps_s
        if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) < 1:
            shape = getattr(frames, "shape", type(frames).__name__)
            raise ValueError(f"clip frames must be a (T, H, W, 3) array with T >= 1, got {shape}")
        if frames.dtype != np.uint8:
            raise ValueError(f"clip frames must be uint8, got {frames.dtype}")
        if not isinstance(times, np.ndarray) or times.shape != (len(frames),):
            raise ValueError(
                f"clip timestamps_s must be one float per frame ({len(frames)}), got "
                f"{getattr(times, 'shape', type(times).__name__)}"
            )
        if len(times) > 1 and bool(np.any(np.diff(times) < 0)):
            raise ValueError("clip timestamps_s must not decrease")

    @classmethod
    def from_frames(cls, frames: np.ndarray, *, fps: float, start_s: float = 0.0) -> VideoClip:
        """A clip of frames held in memory, sampled evenly at ``fps`` (tests, benchmarks, synthetic)."""
        frames = np.asarray(frames)
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        n = len(frames)
        return cls(
            frames=frames,
            timestamps_s=start_s + np.arange(n, dtype=np.float64) / fps,
            duration_s=n / fps,
            fps=fps,
            width=int(frames.shape[2]) if frames.ndim == 4 else 0,
            height=int(frames.shape[1]) if frames.ndim == 4 else 0,
            rotation=0,
            frames_used=n,
            strategy="frames",
            codec="none",
        )

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def sampled_fps(self, fallback: float) -> float:
        """Frames per second of the sample: from the timestamps, else T / duration, else ``fallback``
        (a clip whose frames all share one time and that has no duration)."""
        n, times = self.num_frames, self.timestamps_s
        if n >= 2 and times[-1] > times[0]:
            return (n - 1) / float(times[-1] - times[0])
        if self.duration_s > 0:
            return n / self.duration_s
        return fallback

    def metadata(self) -> dict[str, Any]:
        """Everything but the pixels, JSON-ready (the ``decode`` column and score event part)."""
        return {
            "frames_used": self.frames_used,
            "num_frames": self.num_frames,
            "timestamps_s": [round(float(t), 6) for t in self.timestamps_s],
            "duration_s": self.duration_s,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "rotation": self.rotation,
            "strategy": self.strategy,
            "codec": self.codec,
        }

    @classmethod
    def from_row(cls, frames: Any, timestamps_s: Any, decode: str | Mapping[str, Any]) -> VideoClip:
        """The clip of one decoded row (``frames``, ``timestamps_s``, ``decode`` JSON), exact times
        from the ``timestamps_s`` column (the JSON's are rounded for reading)."""
        meta = json.loads(decode) if isinstance(decode, str | bytes) else dict(decode)
        return cls(
            frames=np.asarray(frames),
            timestamps_s=np.asarray(timestamps_s, dtype=np.float64),
            duration_s=float(meta["duration_s"]),
            fps=None if meta.get("fps") is None else float(meta["fps"]),
            width=int(meta["width"]),
            height=int(meta["height"]),
            rotation=int(meta.get("rotation", 0)),
            frames_used=int(meta["frames_used"]),
            strategy=str(meta.get("strategy", "")),
            codec=str(meta.get("codec", "")),
        )


def clips_from_batch(batch: Mapping[str, Any], rows: Sequence[int] | None = None) -> list[VideoClip]:
    """Clips of a decoded batch's rows (all, or the given indices); each row must have decoded."""
    missing = [c for c in ("frames", "timestamps_s", "decode") if c not in batch]
    if missing:
        raise KeyError(f"a decoded batch needs the columns frames, timestamps_s and decode; missing {missing}")
    indices = range(len(batch["frames"])) if rows is None else rows
    return [VideoClip.from_row(batch["frames"][i], batch["timestamps_s"][i], batch["decode"][i]) for i in indices]
