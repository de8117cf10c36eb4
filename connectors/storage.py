"""Open an input URI as a seekable binary file: local paths, ``file://``, ``s3://``, ``gs://``.

Object-store files are opened through :mod:`pyarrow.fs` as random-access files, so a container
whose index sits at the end (an MP4 with ``moov`` last) can be read without downloading it first.
Credentials come from the usual environment (``AWS_*`` variables, config files, instance roles,
``GOOGLE_APPLICATION_CREDENTIALS``), never from the URI. Failures are :class:`ProcessingError`:
a missing object is ``not_found``, a refused one ``forbidden``, an unknown scheme
``invalid_message``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from connectors.wire.errors import ErrorKind, ProcessingError

SUPPORTED_SCHEMES = ("", "file", "s3", "gs")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_DENIED_MARKERS = ("accessdenied", "access denied", "forbidden", "403", "permission denied")


@dataclass
class OpenedInput:
    """An open, seekable input. Close it (or use it as a context manager) when done."""

    uri: str
    file: BinaryIO
    size_bytes: int
    local_path: Path | None = None  # set for files on local disk, which decoders may open natively

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> OpenedInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_input(
    uri: str, *, base_dir: Path | None = None, s3_endpoint_override: str | None = None
) -> OpenedInput:
    """Open ``uri`` for reading; a relative path resolves against ``base_dir`` (else the cwd)."""
    if not isinstance(uri, str) or not uri.strip():
        raise ProcessingError(ErrorKind.INVALID_MESSAGE, f"input URI must be a non-empty string, got {uri!r}")
    scheme = _scheme(uri)
    if scheme not in SUPPORTED_SCHEMES:
        raise ProcessingError(
            ErrorKind.INVALID_MESSAGE,
            f"unsupported URI scheme {scheme!r} in {uri!r}; use a local path, file://, s3:// or gs://",
        )
    try:
        if scheme in ("", "file"):
            return _open_local(uri, _local_path(uri, scheme, base_dir))
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


def _scheme(uri: str) -> str:
    head, sep, _ = uri.partition("://")
    if not sep or "/" in head or not head.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return ""
    return head.lower()


def _local_path(uri: str, scheme: str, base_dir: Path | None) -> Path:
    if scheme == "file":
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise ProcessingError(
                ErrorKind.INVALID_MESSAGE, f"file:// URI {uri!r} names a remote host {parts.netloc!r}"
            )
        return Path(unquote(parts.path))
    path = Path(uri).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path


def _open_local(uri: str, path: Path) -> OpenedInput:
    file = open(path, "rb")  # noqa: SIM115 - handed to the caller, closed by OpenedInput
    try:
        size = os.fstat(file.fileno()).st_size
    except BaseException:
        file.close()
        raise
    return OpenedInput(uri=uri, file=file, size_bytes=size, local_path=path.resolve())


def _open_object(uri: str, scheme: str, endpoint_override: str | None) -> OpenedInput:
    from pyarrow import fs  # lazily: only object-store inputs need the AWS/GCS SDKs

    if scheme == "s3" and endpoint_override:
        endpoint, http_scheme = _split_endpoint(endpoint_override)
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        filesystem = fs.S3FileSystem(endpoint_override=endpoint, scheme=http_scheme, region=region)
        path = uri[len("s3://") :]
    else:
        filesystem, path = fs.FileSystem.from_uri(uri)
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
