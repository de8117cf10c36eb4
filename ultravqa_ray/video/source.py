"""The input before FFmpeg sees it: existence, size limit, leading bytes, seekability; and the
wall-clock deadline shared by everything that decodes it."""

from __future__ import annotations

import os
import stat
import tempfile
import threading
import time
from typing import IO, Any

from connectors.wire.errors import ErrorKind, ProcessingError
from ultravqa_ray.video.config import DecodeConfig
from ultravqa_ray.video.probe import SNIFF_BYTES

_SPOOL_IN_MEMORY = 64 << 20


class Deadline:
    """The decode's time limit, checked between packets and frames by every decoder thread; also
    carries a cancel flag so that one failing thread stops the others."""

    def __init__(self, timeout_s: float, name: str) -> None:
        self.timeout_s = timeout_s
        self.name = name
        self.at = time.monotonic() + timeout_s
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    def check(self, doing: str) -> None:
        if self._cancelled.is_set():
            raise ProcessingError(ErrorKind.INTERNAL, f"{self.name}: cancelled while {doing}")
        if time.monotonic() > self.at:
            raise ProcessingError(
                ErrorKind.TIMEOUT,
                f"{self.name}: gave up {doing} after the {self.timeout_s:g} s limit (timeout_s)",
            )


class InputSource:
    """Checks existence and size, reads the leading bytes, and makes file objects seekable.

    ``source`` is what ``av.open`` gets: a path string, or a seekable binary file positioned at 0.
    A non-seekable stream is copied to a spooled temporary file first (up to ``max_bytes``): an
    MP4 whose index sits at the end cannot be decoded without seeking.
    """

    def __init__(self, source: Any, name: str, config: DecodeConfig, size_bytes: int | None) -> None:
        self.name, self.config = name, config
        self._spool: IO[bytes] | None = None
        if isinstance(source, str | os.PathLike):
            self.source: Any = os.fspath(source)
            self.size, self.head = self._local(self.source)
        else:
            self.source, self.size, self.head = self._file(source, size_bytes)
        if self.size > config.max_bytes:
            raise ProcessingError(
                ErrorKind.TOO_LARGE,
                f"{name} is {self.size} bytes, over the limit of {config.max_bytes} bytes (max_bytes)",
            )

    @property
    def is_path(self) -> bool:
        """A path can be opened again, by several decoders at once; a file object cannot."""
        return isinstance(self.source, str)

    def __enter__(self) -> InputSource:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._spool is not None:
            self._spool.close()

    def _local(self, path: str) -> tuple[int, bytes]:
        try:
            info = os.stat(path)
            if stat.S_ISDIR(info.st_mode):
                raise ProcessingError(ErrorKind.NOT_FOUND, f"{self.name} is a directory, not a video file")
            with open(path, "rb") as file:
                head = file.read(SNIFF_BYTES)
        except FileNotFoundError as exc:
            raise ProcessingError(ErrorKind.NOT_FOUND, f"{self.name} does not exist") from exc
        except PermissionError as exc:
            raise ProcessingError(
                ErrorKind.FORBIDDEN, f"{self.name} cannot be read: permission denied"
            ) from exc
        return info.st_size, head

    def _file(self, file: IO[bytes], size_bytes: int | None) -> tuple[IO[bytes], int, bytes]:
        seekable = getattr(file, "seekable", None)
        if not (callable(seekable) and seekable()):
            file = self._spool_copy(file)
            size_bytes = None
        if size_bytes is None:
            size_bytes = file.seek(0, os.SEEK_END)
        file.seek(0)
        head = file.read(SNIFF_BYTES)
        file.seek(0)
        return file, int(size_bytes), bytes(head)

    def _spool_copy(self, file: IO[bytes]) -> IO[bytes]:
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115 - closed in __exit__
        self._spool = spool
        limit = self.config.max_bytes
        copied = 0
        while chunk := file.read(min(1 << 20, limit + 1 - copied)):
            spool.write(chunk)
            copied += len(chunk)
            if copied > limit:
                raise ProcessingError(
                    ErrorKind.TOO_LARGE, f"{self.name} is over the limit of {limit} bytes (max_bytes)"
                )
        spool.seek(0)
        return spool
