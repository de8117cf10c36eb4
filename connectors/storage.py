"""Open an input URI as a seekable binary file: local paths, ``file://``, ``s3://``, ``gs://``.

Object-store files are opened through :mod:`pyarrow.fs` as random-access files, so a container
whose index sits at the end (an MP4 with ``moov`` last) can be read without downloading it first.
Credentials come from the usual environment (``AWS_*`` variables, config files, instance roles,
``GOOGLE_APPLICATION_CREDENTIALS``), never from the URI; ``$STORAGE_EMULATOR_HOST`` points ``gs://`` at
a Cloud Storage emulator, as it does for Google's client libraries. Failures are :class:`ProcessingError`:
a missing object is ``not_found``, a refused one ``forbidden``, an unknown scheme
``invalid_message``.

An :class:`~connectors.allow_list.AllowList` (``allow=``) is checked before any byte is read; a
local input is then opened once, at the symlink-free path the check approved, without following a
symlink (``O_NOFOLLOW``), and the opened file itself is checked: a regular file whose real path is
the approved one. A link swapped in after the check (for the file or for a folder above it) is
refused as ``forbidden``. Readers that want a path (PyAV opens paths natively) get the descriptor's
own path (``/proc/self/fd/N``), which names the opened file and never the name again. :class:`StorageSettings`
is the typed configuration services load (allow-list, S3 endpoint, base directory) and turn into
the keyword arguments of :func:`open_input` / ``decode_uri`` with :meth:`StorageSettings.open_kwargs`.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.allow_list import AllowList
from connectors.uris import SUPPORTED_SCHEMES, local_path, require_supported
from connectors.wire.errors import ErrorKind, ProcessingError

__all__ = [
    "SUPPORTED_SCHEMES",
    "GCS_EMULATOR_ENV",
    "AllowList",
    "OpenedInput",
    "StorageSettings",
    "object_filesystem",
    "open_input",
]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_DENIED_MARKERS = ("accessdenied", "access denied", "forbidden", "403", "permission denied")


@dataclass
class OpenedInput:
    """An open, seekable input. Close it (or use it as a context manager) when done."""

    uri: str
    file: BinaryIO
    size_bytes: int
    local_path: Path | None = None  # a path to the opened local file itself (/proc/self/fd/N), for native readers

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> OpenedInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_input(
    uri: str,
    *,
    base_dir: str | Path | None = None,
    s3_endpoint_override: str | None = None,
    allow: AllowList | None = None,
) -> OpenedInput:
    """Open ``uri`` for reading; a relative path resolves against ``base_dir`` (else the cwd).

    ``allow`` (None admits everything) is checked first: a URI outside it raises ``forbidden``.
    """
    scheme = require_supported(uri)
    approved = allow.check(uri, base_dir=base_dir) if allow is not None else None
    try:
        if scheme in ("", "file"):
            if approved is None:  # nothing to enforce (no list, or allow-all): the path as given
                return _open_local(uri, local_path(uri, scheme, base_dir), checked=False)
            return _open_local(uri, approved, checked=True)  # the very path the check approved
        return _open_object(uri, scheme, s3_endpoint_override)
    except ProcessingError:
        raise
    except FileNotFoundError as exc:
        raise ProcessingError(ErrorKind.NOT_FOUND, f"{uri} does not exist ({_reason(exc)})") from exc
    except IsADirectoryError as exc:
        raise ProcessingError(ErrorKind.NOT_FOUND, f"{uri} is a directory, not a file") from exc
    except PermissionError as exc:
        raise ProcessingError(ErrorKind.FORBIDDEN, f"access to {uri} was denied ({_reason(exc)})") from exc
    except OSError as exc:
        reason = _reason(exc)
        if any(marker in reason.lower() for marker in _DENIED_MARKERS):
            raise ProcessingError(ErrorKind.FORBIDDEN, f"access to {uri} was denied ({reason})") from exc
        raise ProcessingError(ErrorKind.INTERNAL, f"cannot open {uri}: {reason}") from exc
    except ValueError as exc:  # pyarrow: malformed bucket or path
        raise ProcessingError(ErrorKind.INVALID_MESSAGE, f"malformed URI {uri!r}: {exc}") from exc


_FD_DIR = Path("/proc/self/fd")


def _open_local(uri: str, path: Path, *, checked: bool) -> OpenedInput:
    """Open ``path`` once. ``checked``: the allow-list approved this symlink-free path, so a symlink
    met now was swapped in after the check and is refused, as is a file whose real path moved."""
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | (getattr(os, "O_NOFOLLOW", 0) if checked else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if checked and exc.errno == errno.ELOOP:
            raise ProcessingError(
                ErrorKind.FORBIDDEN, f"{uri} is refused: it became a symbolic link after the allow-list check"
            ) from exc
        raise
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        if not stat.S_ISREG(info.st_mode):
            raise ProcessingError(ErrorKind.NOT_A_VIDEO, f"{uri} is not a regular file")
        own = _FD_DIR / str(fd)
        if checked and own.exists() and Path(os.readlink(own)) != path:  # a folder above was swapped
            raise ProcessingError(
                ErrorKind.FORBIDDEN,
                f"{uri} is refused: the file opened is {os.readlink(own)!r}, not the approved {str(path)!r}",
            )
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    native = own if own.exists() else (path if not checked else None)
    return OpenedInput(uri=uri, file=file, size_bytes=info.st_size, local_path=native)


#: The variable Google's client libraries read to reach a Cloud Storage emulator (``host:port`` or
#: ``http://host:port``); set, ``gs://`` goes there without credentials, as those libraries do.
GCS_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"


def object_filesystem(uri: str, *, s3_endpoint_override: str | None = None) -> tuple[Any, str]:
    """``(pyarrow FileSystem, "bucket/key")`` for an ``s3://`` or ``gs://`` URI (credentials from env).

    An endpoint override (``s3_endpoint_override`` for S3, ``$STORAGE_EMULATOR_HOST`` for GCS) builds
    the filesystem for that endpoint; without one, pyarrow picks store and credentials from the URI
    and the environment (``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``...).
    """
    from pyarrow import fs  # lazily: only object-store inputs need the AWS/GCS SDKs

    scheme, _, path = uri.partition("://")
    scheme = scheme.lower()
    endpoint_override = {"s3": s3_endpoint_override, "gs": os.environ.get(GCS_EMULATOR_ENV)}.get(scheme)
    if not endpoint_override:
        return fs.FileSystem.from_uri(uri)
    endpoint, http_scheme = _split_endpoint(endpoint_override)
    if scheme == "s3":
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return fs.S3FileSystem(endpoint_override=endpoint, scheme=http_scheme, region=region), path
    # pyarrow's own GCS URI options cannot say "no credentials", so an emulator URI would wait on
    # the metadata server for a token; build the filesystem instead.
    return fs.GcsFileSystem(endpoint_override=endpoint, scheme=http_scheme, anonymous=True), path


def _open_object(uri: str, scheme: str, endpoint_override: str | None) -> OpenedInput:
    filesystem, path = object_filesystem(uri, s3_endpoint_override=endpoint_override)
    bucket, _, key = path.partition("/")
    if not bucket or not key or key.endswith("/"):
        raise ProcessingError(ErrorKind.INVALID_MESSAGE, f"{uri!r} does not name an object (bucket/key)")
    file = filesystem.open_input_file(path)
    return OpenedInput(uri=uri, file=file, size_bytes=file.size())


def _split_endpoint(endpoint: str) -> tuple[str, str]:
    """``http://host:port`` keeps its scheme; a bare ``host:port`` is http on loopback, else https."""
    for http_scheme in ("http", "https"):
        prefix = f"{http_scheme}://"
        if endpoint.startswith(prefix):
            return endpoint[len(prefix) :].rstrip("/"), http_scheme
    host = urlsplit(f"//{endpoint}").hostname or ""
    return endpoint, "http" if host in _LOOPBACK else "https"


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class StorageSettings(BaseModel):
    """Where inputs may come from and how to reach them (one block of a service's config)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow: list[str] = Field(
        default_factory=list,
        description="Allowed s3://bucket/prefix/, gs://bucket/ and local roots; empty allows all (dev only).",
    )
    s3_endpoint_override: str | None = Field(
        None, description="host:port or http(s)://host:port of an S3-compatible store (MinIO, moto)."
    )
    base_dir: str | None = Field(None, description="Directory that relative input paths resolve against.")

    @field_validator("allow")
    @classmethod
    def _parseable(cls, value: list[str]) -> list[str]:
        AllowList.parse(value)  # fail at load time, naming the bad entry
        return value

    def allow_list(self) -> AllowList:
        return AllowList.parse(self.allow) if self.allow else AllowList.any()

    def open_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`open_input`, ``decode_uri`` and ``decode_batch(storage_kwargs=)``."""
        return {
            "allow": self.allow_list(),
            "s3_endpoint_override": self.s3_endpoint_override,
            "base_dir": Path(self.base_dir) if self.base_dir else None,
        }
