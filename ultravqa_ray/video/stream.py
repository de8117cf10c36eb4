"""One open container and its chosen video stream: packets in, frames out.

Decoding errors, per-frame limits and the deadline become :class:`ProcessingError` here. Frames
are yielded as ``(seconds from the stream start, av.VideoFrame)`` and never converted: only the
frames a sample needs are, by the caller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import av
import numpy as np

from connectors.wire.errors import ErrorKind, ProcessingError
from ultravqa_ray.video import probe
from ultravqa_ray.video.config import DecodeConfig
from ultravqa_ray.video.sampling import Frame, SkipPlan
from ultravqa_ray.video.source import Deadline, InputSource

_SKIPS_NONREF = {"h264", "hevc"}  # decoders whose skip_frame=NONREF skips exactly the unreferenced frames


class StreamDecoder:
    """Opens ``source``, picks and checks the video stream (or reuses ``info`` from another
    decoder of the same source), and decodes it with ``threads`` threads. Closes on exit."""

    def __init__(
        self,
        source: InputSource,
        config: DecodeConfig,
        deadline: Deadline,
        *,
        threads: int,
        info: probe.StreamInfo | None = None,
    ) -> None:
        self.source, self.config, self.deadline, self.name = source, config, deadline, source.name
        self.threads = threads
        self._open()
        try:
            if info is None:
                self.stream = probe.select_video_stream(self.container, self.name)
                info = probe.stream_info(self.container, self.stream)
                probe.check_declared(info, self.name, config)  # frame size and declared duration
            else:
                self.stream = self.container.streams[info.index]  # type: ignore[assignment]  # the video stream probed before
        except BaseException:
            self.container.close()
            raise
        self.info = info
        self._configure()
        self.frame_s = 1.0 / info.fps if info.fps else 0.04
        self.times: Iterable[float] | None = None  # the sample times, once known: frames() skips others
        self._tb = float(info.time_base)

    def __enter__(self) -> StreamDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.container.close()

    def clone(self, threads: int) -> StreamDecoder:
        """Another decoder of the same file (paths only), for sharing out runs."""
        twin = StreamDecoder(self.source, self.config, self.deadline, threads=threads, info=self.info)
        twin.times = self.times
        return twin

    def _open(self) -> None:
        self.container = probe.open_container(self.source.source, self.name, self.source.head, self.config)
        self.deadline.check("opening the container")

    def _configure(self) -> None:
        for other in self.container.streams:
            if other.index != self.stream.index:
                other.discard = av.stream.Discard.all  # the demuxer drops their packets
        cc = self.stream.codec_context
        cc.thread_type = "AUTO" if self.threads != 1 else "NONE"
        cc.thread_count = self.threads

    def restart(self) -> None:
        """Reopen at the start (for containers that cannot seek)."""
        self.container.close()
        self._open()
        self.stream = self.container.streams[self.info.index]  # type: ignore[assignment]  # the probed video stream
        self._configure()

    def seek(self, t: float) -> bool:
        """To the keyframe at or before ``t``; False if this container cannot seek."""
        ticks = self.info.start_pts + int(t / self._tb)
        try:
            self.container.seek(ticks, stream=self.stream, backward=True)
        except av.error.FFmpegError:
            return False
        return True

    def frames(self, stop_after: float | None = None) -> Iterator[Frame]:
        """Decoded frames from the current position.

        Frames that no sample time needs are skipped when nothing refers to them (see
        :class:`SkipPlan`). Once every packet shown at or before ``stop_after`` has been sent, the
        decoder is drained instead of fed: the frames still inside it come out, and nothing after
        them is decoded (the caller seeks next, or is done).
        """
        cc = self.stream.codec_context
        skip = SkipPlan(self.times) if self.times is not None and self.info.codec in _SKIPS_NONREF else None
        window: deque[tuple[av.Packet, float | None]] = deque()  # read ahead, with presentation times
        packets = self._packets()
        last_s = -self.frame_s
        sent = False
        while True:
            while len(window) <= SkipPlan.LOOKAHEAD and (packet := next(packets, None)) is not None:
                window.append((packet, self._time(packet.pts)))
            if not window:
                return
            if sent and stop_after is not None and all(q is not None and q > stop_after for _, q in window):
                packet, packet_s = None, None  # drain
            else:
                packet, packet_s = window.popleft()
                if skip is not None:
                    needed = packet.size == 0 or skip.needed(packet_s, (q for _, q in window))
                    cc.skip_frame = "DEFAULT" if needed else "NONREF"
            try:
                decoded = cc.decode(packet)
            except av.error.FFmpegError as exc:
                raise self._failure(exc, f"decoding near {max(last_s, 0.0):.2f} s") from exc
            sent = True
            for frame in decoded:
                at = self._time(frame.pts) if frame.pts is not None else None
                last_s = at if at is not None else last_s + self.frame_s
                self._check_frame(frame, last_s)
                yield last_s, frame
            if packet is None:
                return

    def scan(self) -> tuple[float, np.ndarray]:
        """Duration and keyframe times from one demux pass (no decoding). Restart afterwards."""
        ends: list[float] = []
        keys: list[float] = []
        count = 0
        for packet in self._packets():
            stamp = packet.pts if packet.pts is not None else packet.dts
            if packet.size == 0 or stamp is None:
                count += packet.size > 0
                continue
            count += 1
            start = self._time(stamp)
            assert start is not None  # stamp is not None
            ends.append(start + (packet.duration or 0) * self._tb)
            if packet.is_keyframe:
                keys.append(start)
            if ends[-1] > self.config.max_duration_s:
                raise self._too_long(ends[-1])
        duration = max(ends) if ends else count * self.frame_s
        return duration, np.unique(np.array(keys or [0.0]) - (min(keys) if keys else 0.0))

    def _packets(self) -> Iterator[av.Packet]:
        packets = self.container.demux(self.stream)
        while True:
            self.deadline.check("decoding")
            try:
                packet = next(packets, None)
            except av.error.FFmpegError as exc:
                raise self._failure(exc, "reading packets") from exc
            if packet is None:
                return
            yield packet

    def _time(self, pts: int | None) -> float | None:
        """Seconds from the stream start (float arithmetic: Fractions cost ~1 µs a frame)."""
        return None if pts is None else (pts - self.info.start_pts) * self._tb

    def _check_frame(self, frame: av.VideoFrame, frame_s: float) -> None:
        self.deadline.check("decoding")
        if frame.width * frame.height > self.config.max_pixels:
            raise ProcessingError(
                ErrorKind.TOO_LARGE,
                f"{self.name}: a decoded frame is {frame.width}x{frame.height}, over the limit of "
                f"{self.config.max_pixels} pixels (max_pixels)",
            )
        if frame_s > self.config.max_duration_s:
            raise self._too_long(frame_s)

    def _too_long(self, at_s: float) -> ProcessingError:
        return ProcessingError(
            ErrorKind.TOO_LONG,
            f"{self.name} runs past {at_s:.1f} s, over the limit of {self.config.max_duration_s:g} s (max_duration_s)",
        )

    def _failure(self, exc: Exception, doing: str) -> ProcessingError:
        detail = getattr(exc, "strerror", None) or str(exc)
        if isinstance(exc, av.error.MemoryError):
            return ProcessingError(ErrorKind.TOO_LARGE, f"{self.name}: out of memory {doing}: {detail}")
        return ProcessingError(
            ErrorKind.CORRUPT_VIDEO,
            f"{self.name}: the {self.info.codec} stream is damaged ({doing}): {detail}",
        )
