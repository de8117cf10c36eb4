"""Open a container without trusting it: sniff, open with pixel limits, pick the video stream, read
its metadata and keyframe layout, and turn every FFmpeg failure into a :class:`ProcessingError`.

The checks that stop a hostile upload before any frame is decoded live here: the declared frame
size (``max_pixels`` is also handed to FFmpeg so that its own stream probing cannot allocate a
giant frame) and the declared duration.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from connectors.wire.errors import ErrorKind, ProcessingError
from ultravqa_ray.video.config import DecodeConfig

# Leading bytes of the containers a video upload may come in; an open failure on a file that starts
# like one of these is a broken video (corrupt_video), on anything else it is not a video at all.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "MP4/MOV"),
    (4, b"moov", "MP4/MOV"),
    (4, b"mdat", "MP4/MOV"),
    (4, b"free", "MP4/MOV"),
    (4, b"wide", "MP4/MOV"),
    (4, b"skip", "MP4/MOV"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (0, b"RIFF", "AVI"),
    (0, b"FLV", "FLV"),
    (0, b"OggS", "Ogg"),
    (0, b"\x00\x00\x01\xba", "MPEG-PS"),
    (0, b"\x30\x26\xb2\x75", "ASF/WMV"),
    (0, b"\x00\x00\x00\x01", "H.264/HEVC elementary stream"),
    (0, b"GIF8", "GIF"),
)
SNIFF_BYTES = 512
_TS_PACKET = 188


def sniff_container(head: bytes) -> str | None:
    """The container family that ``head`` (the first bytes of a file) starts like, or None."""
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    if len(head) > 2 * _TS_PACKET and all(head[i] == 0x47 for i in range(0, len(head), _TS_PACKET)):
        return "MPEG-TS"
    return None


@dataclass(frozen=True)
class StreamInfo:
    """What the container declares about the chosen video stream (times relative to its start)."""

    index: int
    codec: str
    width: int  # coded size, before rotation
    height: int
    sample_aspect: float  # pixel aspect ratio (1.0 for square pixels)
    fps: float | None
    duration_s: float | None
    start_pts: int
    time_base: Fraction
    frame_count: int | None


def open_container(source: Any, name: str, head: bytes, config: DecodeConfig) -> av.container.InputContainer:
    """``av.open`` with FFmpeg's own pixel limit set; every failure becomes a ProcessingError."""
    kwargs: dict[str, Any] = {"options": {"max_pixels": str(config.max_pixels)}}
    if not isinstance(source, str):
        kwargs["buffer_size"] = config.read_buffer_bytes
    try:
        return av.open(source, mode="r", **kwargs)
    except (FileNotFoundError, av.error.FileNotFoundError) as exc:
        raise ProcessingError(ErrorKind.NOT_FOUND, f"{name} does not exist") from exc
    except (PermissionError, av.error.PermissionError) as exc:
        raise ProcessingError(ErrorKind.FORBIDDEN, f"access to {name} was denied") from exc
    except (av.error.FFmpegError, EOFError) as exc:
        raise open_failure(name, head, exc) from exc


def open_failure(name: str, head: bytes, exc: BaseException) -> ProcessingError:
    detail = getattr(exc, "strerror", None) or str(exc)
    if not head:
        return ProcessingError(ErrorKind.NOT_A_VIDEO, f"{name} is empty (0 bytes)")
    family = sniff_container(head)
    if family is None:
        return ProcessingError(
            ErrorKind.NOT_A_VIDEO,
            f"{name} is not a video: no known container format recognised (starts with {head[:8]!r}): {detail}",
        )
    return ProcessingError(
        ErrorKind.CORRUPT_VIDEO,
        f"{name} looks like {family} but cannot be opened (truncated or damaged?): {detail}",
    )


def select_video_stream(container: av.container.InputContainer, name: str) -> av.video.stream.VideoStream:
    """The main video stream: the largest picture among real video streams (cover art excluded,
    thumbnail tracks lose on size); a file with audio only is not a video."""
    candidates = [
        s
        for s in container.streams.video
        if not (s.disposition & av.stream.Disposition.attached_pic) and s.codec_context is not None
    ]
    if not candidates:
        kinds = sorted(
            {f"{s.type}:{s.codec_context.name if s.codec_context else '?'}" for s in container.streams}
        )
        found = ", ".join(kinds) if kinds else "no streams"
        raise ProcessingError(ErrorKind.NOT_A_VIDEO, f"{name} has no video stream (found {found})")
    try:
        best = container.streams.best("video")
    except (av.error.FFmpegError, ValueError):
        best = None

    def rank(s: av.video.stream.VideoStream) -> tuple[int, bool, int]:  # largest picture, then FFmpeg's pick
        return (s.codec_context.width * s.codec_context.height, s is best, -s.index)

    return max(candidates, key=rank)


def stream_info(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> StreamInfo:
    cc = stream.codec_context
    time_base = stream.time_base or Fraction(1, 90000)
    start_pts = stream.start_time if stream.start_time is not None else 0
    fps = None
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < float(rate) <= 1000:
            fps = float(rate)
            break
    duration_s = None
    if stream.duration and stream.duration > 0:
        duration_s = float(stream.duration * time_base)
    elif container.duration and container.duration > 0:
        duration_s = container.duration / av.time_base
    frame_count = stream.frames or None
    if duration_s is None and frame_count and fps:
        duration_s = frame_count / fps
    sar = cc.sample_aspect_ratio
    return StreamInfo(
        index=stream.index,
        codec=cc.name,
        width=cc.width,
        height=cc.height,
        sample_aspect=float(sar) if sar and float(sar) > 0 else 1.0,
        fps=fps,
        duration_s=duration_s,
        start_pts=start_pts,
        time_base=time_base,
        frame_count=frame_count,
    )


def check_declared(info: StreamInfo, name: str, config: DecodeConfig) -> None:
    """Refuse before decoding what the container itself says is over a limit."""
    if info.width <= 0 or info.height <= 0:
        raise ProcessingError(
            ErrorKind.CORRUPT_VIDEO,
            f"{name}: the {info.codec} stream declares no usable frame size "
            f"(over max_pixels={config.max_pixels} or damaged)",
        )
    if info.width * info.height > config.max_pixels:
        raise ProcessingError(
            ErrorKind.TOO_LARGE,
            f"{name}: frame size {info.width}x{info.height} is over the limit of "
            f"{config.max_pixels} pixels (max_pixels)",
        )
    if info.duration_s is not None and info.duration_s > config.max_duration_s:
        raise ProcessingError(
            ErrorKind.TOO_LONG,
            f"{name} lasts {info.duration_s:.1f} s, over the limit of {config.max_duration_s:g} s (max_duration_s)",
        )


def keyframe_times(stream: av.video.stream.VideoStream, info: StreamInfo) -> np.ndarray | None:
    """Keyframe presentation times (s, relative to the stream start) from the demuxer's index.

    MP4 indexes every sample by decode time; the presentation time of a keyframe is its decode
    time plus the stream's reordering delay, taken from the first keyframe (which starts the
    stream). Matroska indexes keyframes by presentation time. An empty index (MPEG-TS, raw
    streams) gives None and the caller falls back to one sequential pass. Only the choice between
    seeking and decoding on depends on these times, never which frame is returned.
    """
    try:
        stamps = [e.timestamp for e in stream.index_entries if e.is_keyframe and not e.is_discard]
    except (AttributeError, av.error.FFmpegError):
        return None
    if not stamps:
        return None
    ticks = np.asarray(stamps, dtype=np.float64)
    return np.unique((ticks - ticks[0]) * float(info.time_base))  # the first keyframe starts the stream
