"""Decode a fixed number of frames from a video, safely: the one entry point of ``ultravqa_ray.video``.

:func:`decode_video` takes a local path or a seekable binary file (an object-store file from
:func:`connectors.storage.open_input`), samples frames (uniformly over the duration, or at a fixed
rate with a cap), and returns a fixed-shape uint8 RGB array with its metadata. Whether it seeks to
each sample or decodes in one pass is decided from the stream's keyframe layout (see
:mod:`ultravqa_ray.video.sampling`). Limits on bytes, duration, frame size and wall time are checked
before and during decoding; every failure is a :class:`ProcessingError` with an error kind and a
message naming the problem, and nothing else escapes.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

import numpy as np
from av.video.reformatter import VideoReformatter

from connectors.storage import open_input
from connectors.wire.errors import ErrorKind, ProcessingError
from ultravqa_ray.video import probe
from ultravqa_ray.video.clip import VideoClip
from ultravqa_ray.video.config import DecodeConfig
from ultravqa_ray.video.frames import frame_to_rgb, quarter_turns
from ultravqa_ray.video.sampling import Run, RunWalker, SeekPlanner, assign_runs, sample_times
from ultravqa_ray.video.source import Deadline, InputSource
from ultravqa_ray.video.stream import StreamDecoder

#: The decoder's output is the clip record (the older name, kept for callers).
DecodedVideo = VideoClip


def decode_uri(uri: str, config: DecodeConfig, **storage_kwargs: Any) -> VideoClip:
    """Open ``uri`` with :func:`connectors.storage.open_input` and decode it."""
    with open_input(uri, **storage_kwargs) as opened:
        source: str | BinaryIO = str(opened.local_path) if opened.local_path else opened.file
        return decode_video(source, config, size_bytes=opened.size_bytes, name=uri)


def decode_video(
    source: str | os.PathLike[str] | BinaryIO,
    config: DecodeConfig,
    *,
    size_bytes: int | None = None,
    name: str | None = None,
) -> VideoClip:
    """Sample ``config.output_frames`` frames from ``source``; raises :class:`ProcessingError` only.

    ``size_bytes`` spares a size query on file objects; ``name`` is what messages call the input.
    """
    if name is None:
        name = (
            os.fspath(source) if isinstance(source, str | os.PathLike) else getattr(source, "name", "input")
        )
        name = str(name)
    try:
        return _decode(source, name, config, size_bytes)
    except ProcessingError:
        raise
    except MemoryError as exc:
        raise ProcessingError(ErrorKind.TOO_LARGE, f"{name}: ran out of memory while decoding") from exc
    except Exception as exc:  # a fault of ours: say so, never let it escape unexplained
        raise ProcessingError(
            ErrorKind.INTERNAL, f"{name}: unexpected {type(exc).__name__} while decoding: {exc}"
        ) from exc


def _decode(source: Any, name: str, config: DecodeConfig, size_bytes: int | None) -> VideoClip:
    deadline = Deadline(config.timeout_s, name)
    with (
        InputSource(source, name, config, size_bytes) as opened,
        StreamDecoder(opened, config, deadline, threads=config.threads) as decoder,
    ):
        info = decoder.info
        keyframes = None
        if info.duration_s is None:  # nothing declared: one demux pass (no decoding), then restart
            duration, keyframes = decoder.scan()
            info = decoder.info = replace(info, duration_s=duration)
            probe.check_declared(info, name, config)
            decoder.restart()
        elif config.seek_policy != "sequential":
            keyframes = probe.keyframe_times(decoder.stream, info)
        times = sample_times(info.duration_s or 0.0, config)
        decoder.times = times
        runs = SeekPlanner(config.seek_policy, keyframes, info.fps).plan(times)
        shares = assign_runs(runs, config.threads if opened.is_path else 1)
        if len(shares) == 1:
            results = [_walk(decoder, shares[0], config)]
        else:
            results = _walk_parallel(decoder, shares, config, deadline)
    picked = _merge(results)
    if not picked:
        raise ProcessingError(
            ErrorKind.CORRUPT_VIDEO, f"{name}: the {info.codec} stream has no decodable frames"
        )
    turns = next(r.turns for r in results if r.picked)
    strategy = "seek" if any(r.seeks for r in results) else "sequential"
    return _assemble(picked, turns, info, config, strategy)


@dataclass
class _WalkResult:
    picked: list[tuple[float, float, np.ndarray]]  # (sample time, frame time, RGB image)
    turns: int
    seeks: int


def _walk(decoder: StreamDecoder, runs: list[Run], config: DecodeConfig) -> _WalkResult:
    """Decode one share of the runs; convert each chosen frame once (nothing else is converted)."""
    walker = RunWalker(decoder, decoder.frame_s)
    reformatter = VideoReformatter()
    picked: list[tuple[float, float, np.ndarray]] = []
    turns = 0
    for t, (frame_s, frame) in walker.walk(runs):
        if picked and frame_s == picked[-1][1]:
            picked.append((t, frame_s, picked[-1][2]))
            continue
        if not picked:
            turns = quarter_turns(frame)
        picked.append((t, frame_s, frame_to_rgb(frame, config, decoder.info.sample_aspect, reformatter)))
    return _WalkResult(picked, turns, walker.seeks)


def _walk_parallel(
    decoder: StreamDecoder, shares: list[list[Run]], config: DecodeConfig, deadline: Deadline
) -> list[_WalkResult]:
    """Independent runs on separate single-threaded decoders of the same file, one thread each
    (FFmpeg releases the GIL while decoding): GOP-level parallelism, which scales better than
    frame threading when each run is short."""

    def work(share: list[Run]) -> _WalkResult:
        try:
            with decoder.clone(threads=1) as twin:
                return _walk(twin, share, config)
        except BaseException:
            deadline.cancel()  # the other threads stop at their next packet
            raise

    with ThreadPoolExecutor(max_workers=len(shares), thread_name_prefix="decode") as pool:
        futures = [pool.submit(work, share) for share in shares]
        wait(futures)
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:  # the first real failure, not a cancellation it caused
        real = [e for e in errors if e is not None]
        raise next((e for e in real if "cancelled while" not in str(e)), real[0])
    return [f.result() for f in futures]


def _merge(results: list[_WalkResult]) -> list[tuple[float, np.ndarray]]:
    """Shares back in sample-time order: (frame time, image) per sample time that has a frame."""
    merged = sorted((item for r in results for item in r.picked), key=lambda item: item[0])
    return [(frame_s, image) for _, frame_s, image in merged]


def _assemble(
    picked: list[tuple[float, np.ndarray]],
    turns: int,
    info: probe.StreamInfo,
    config: DecodeConfig,
    strategy: str,
) -> VideoClip:
    count = config.output_frames
    used = picked[:count]
    padded = used + [used[-1]] * (count - len(used))  # fps mode on a short clip: repeat the last
    width, height = (info.height, info.width) if turns % 2 else (info.width, info.height)
    return VideoClip(
        frames=np.stack([image for _, image in padded]),
        timestamps_s=np.array([t for t, _ in padded], dtype=np.float64),
        duration_s=float(info.duration_s or 0.0),
        fps=info.fps,
        width=width,
        height=height,
        rotation=turns * 90,
        frames_used=len({frame_s for frame_s, _ in used}),
        strategy=strategy,
        codec=info.codec,
    )
