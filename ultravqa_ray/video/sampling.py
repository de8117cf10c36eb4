"""Which instants to sample, and how to reach them: seek, or decode on.

The frame returned for a sample time ``t`` is always the frame on screen at ``t``: the last frame
whose presentation time is ``<= t`` (the first frame when ``t`` comes before it). That rule does not
depend on how the frame was reached, so seeking and one sequential pass return the same frames.

Reaching ``t`` by seeking costs a decode from the keyframe before ``t`` (plus a decoder flush);
decoding on costs every frame between the current position and ``t``. :class:`SeekPlanner` compares
the two from the keyframe layout (the demuxer's index, read without decoding): with x264's default
keyframe interval of 250 frames, seeking rarely skips anything on short clips, while with short
GOPs it skips most of the stream. The plan is a list of :class:`Run`: sample times reached by one
continuous decode, each run but the first starting with a seek. Runs are independent, so several
decoders can share them out (:func:`assign_runs`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from ultravqa_ray.video.config import DecodeConfig

if TYPE_CHECKING:
    import av

SEEK_COST_FRAMES = 6.0  # a seek pays off once it skips more frames than this (flush, refill, I/O)

Frame = tuple[float, "av.VideoFrame"]  # (presentation time in s from the stream start, the frame)


def sample_times(duration_s: float, config: DecodeConfig) -> np.ndarray:
    """Sample instants in seconds from the stream start, ascending.

    uniform: the centres of ``num_frames`` equal slices of the duration. fps: the centres of the
    ``1/sample_fps`` slices; when there would be more than ``max_frames`` of them, ``max_frames``
    centres spread over the whole clip instead (so the cap never cuts the end off).
    """
    duration = max(float(duration_s), 0.0)
    if config.sampling == "uniform":
        count = config.num_frames
        return (np.arange(count) + 0.5) * (duration / count)
    slots = math.floor(duration * config.sample_fps)
    if slots < 1:
        return np.array([duration / 2])
    if slots <= config.max_frames:
        return (np.arange(slots) + 0.5) / config.sample_fps
    return (np.arange(config.max_frames) + 0.5) * (duration / config.max_frames)


class SeekPlanner:
    """Decides, before each sample, whether seeking beats decoding on from the previous one."""

    def __init__(
        self,
        policy: Literal["auto", "seek", "sequential"],
        keyframes_s: np.ndarray | None,
        fps: float | None,
        seek_cost_frames: float = SEEK_COST_FRAMES,
    ) -> None:
        self.policy = policy
        self.keyframes_s = keyframes_s
        self.frame_s = 1.0 / fps if fps else 1.0 / 25.0
        self.seek_cost_s = 0.0 if policy == "seek" else seek_cost_frames * self.frame_s

    def keyframe_before(self, t: float) -> float:
        if self.keyframes_s is None:  # layout unknown: only a forced seek policy asks
            return t
        i = int(np.searchsorted(self.keyframes_s, t + 1e-9, side="right")) - 1
        return float(self.keyframes_s[i]) if i >= 0 else 0.0

    def should_seek(self, t: float, position_s: float | None) -> bool:
        """``position_s``: where decoding stands (the previous sample), None at the stream start."""
        if self.policy == "sequential" or (self.keyframes_s is None and self.policy == "auto"):
            return False
        next_frame_s = 0.0 if position_s is None else position_s + self.frame_s
        skipped_s = self.keyframe_before(t) - next_frame_s  # decoding that a seek would save
        return skipped_s > self.seek_cost_s if self.policy == "auto" else skipped_s > 0

    def plan(self, times: np.ndarray) -> list[Run]:
        runs: list[Run] = []
        position: float | None = None
        for t in (float(x) for x in times):
            seek = self.should_seek(t, position)
            if seek or not runs:
                runs.append(Run(seek=seek, start_s=self.keyframe_before(t) if seek else 0.0))
            runs[-1].times.append(t)
            position = t
        return runs


@dataclass
class Run:
    """Sample times reached by one continuous decode, from a seek (or from the stream start)."""

    seek: bool
    start_s: float  # where decoding starts: the keyframe before times[0], or 0
    times: list[float] = field(default_factory=list)

    @property
    def cost_s(self) -> float:
        return self.times[-1] - self.start_s


def assign_runs(runs: list[Run], workers: int) -> list[list[Run]]:
    """Share runs out among decoders, longest first to the least loaded; each list in time order."""
    shares: list[list[Run]] = [[] for _ in range(max(1, min(workers, len(runs))))]
    load = [0.0] * len(shares)
    for run in sorted(runs, key=lambda r: -r.cost_s):
        i = load.index(min(load))
        shares[i].append(run)
        load[i] += run.cost_s + 1.0  # + a keyframe's worth: every run pays one
    return [sorted(share, key=lambda r: r.times[0]) for share in shares if share]


class SkipPlan:
    """Which frames no sample can show, judged from packet timestamps before decoding.

    The frame shown for ``t`` is the last one at or before ``t``, so a frame at ``p`` is needed
    only if no other frame lies in ``(p, t]`` for the first sample time ``t >= p``. Decoders may
    skip such frames when nothing refers to them (``skip_frame=NONREF``): the frames kept are
    bit-identical, and on typical H.264 (B-frames) a good part of the decoding goes away.
    Presentation order is decode order up to the reorder delay (at most 16 frames in H.264/HEVC),
    so the next packets and the recent ones show every neighbour of ``p``.
    """

    LOOKAHEAD = 16  # packets read ahead of the decoder

    def __init__(self, times: Iterable[float]) -> None:
        self.times = np.sort(np.asarray(list(times), dtype=np.float64))
        self.recent: deque[float] = deque(maxlen=2 * self.LOOKAHEAD)

    def needed(self, p: float | None, upcoming: Iterable[float | None]) -> bool:
        if p is None:
            return True
        j = int(np.searchsorted(self.times, p, side="left"))
        self.recent.append(p)
        if j == len(self.times):
            return False  # after every sample time
        t = self.times[j]
        return not any(q is not None and p < q <= t for q in (*self.recent, *upcoming))


class FrameSource(Protocol):
    def frames(self, stop_after: float | None) -> Iterator[Frame]:
        """Decoded frames from the current position; may end once every frame up to
        ``stop_after`` has come out."""

    def seek(self, t: float) -> bool:
        """To the keyframe at or before ``t``, decoder flushed; False if the container cannot."""

    def restart(self) -> None:
        """Reopen the input at its start."""


class RunWalker:
    """Executes runs on one frame source and yields ``(t, frame)`` for each sample time."""

    def __init__(self, source: FrameSource, frame_s: float) -> None:
        self._source = source
        self._frame_s = frame_s
        self._frames: Iterator[Frame] | None = None
        self._seekable = True
        self.seeks = 0

    def walk(self, runs: list[Run]) -> Iterator[tuple[float, Frame]]:
        last_s = runs[-1].times[-1] if runs else 0.0
        held: Frame | None = None  # last frame at or before the current time
        ahead: Frame | None = None  # first frame after it
        for run in runs:
            if run.seek and self._seekable:
                held, ahead = None, self._seek_to(run.times[0], run.times[-1], last_s)
            elif self._frames is None:
                self._frames = self._source.frames(run.times[-1] if self._seekable else last_s)
            for t in run.times:
                if ahead is not None and ahead[0] <= t:
                    held, ahead = ahead, None
                while ahead is None:
                    frame = next(self._frames, None) if self._frames is not None else None
                    if frame is None:
                        break
                    if frame[0] <= t:
                        held = frame
                    else:
                        ahead = frame
                choice = held if held is not None else ahead
                if choice is not None:
                    yield t, choice

    def _seek_to(self, t: float, stop_after: float, last_s: float) -> Frame | None:
        """Seek for ``t`` and return the first frame. Demuxers that seek by decode time can land on
        a keyframe shown after ``t``; then seek again further back (a few times at most). A
        container that cannot seek (raw streams, some MPEG-TS) is read once from the start."""
        target = t
        first: Frame | None = None
        for _ in range(4):
            self._frames = self._source.frames(stop_after) if self._source.seek(target) else None
            first = next(self._frames, None) if self._frames is not None else None
            if first is None:
                self._seekable = False
                self._source.restart()
                self._frames = self._source.frames(last_s)
                return next(self._frames, None)
            self.seeks += 1
            if first[0] <= t or target <= 0:
                return first
            target = max(0.0, target - 2 * max(first[0] - t, self._frame_s))
        return first
