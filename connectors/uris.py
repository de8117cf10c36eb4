"""Parse input URIs once, the same way for opening, allow-list checks and listings.

A URI is a local path (absolute, or relative to a base directory), ``file://`` (local host only,
percent-decoded), ``s3://bucket/key`` or ``gs://bucket/key``. Everything here is pure string and
path work: nothing is opened, no client is created.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from connectors.wire.errors import ErrorKind, ProcessingError

SUPPORTED_SCHEMES = ("", "file", "s3", "gs")
OBJECT_SCHEMES = ("s3", "gs")


def scheme_of(uri: str) -> str:
    """The lower-case scheme of ``uri``, or ``""`` for a plain path."""
    head, sep, _ = uri.partition("://")
    if not sep or "/" in head or not head.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return ""
    return head.lower()


def require_supported(uri: str) -> str:
    """Validate that ``uri`` is a non-empty string with a supported scheme; returns the scheme."""
    if not isinstance(uri, str) or not uri.strip():
        raise ProcessingError(ErrorKind.INVALID_MESSAGE, f"input URI must be a non-empty string, got {uri!r}")
    scheme = scheme_of(uri)
    if scheme not in SUPPORTED_SCHEMES:
        raise ProcessingError(
            ErrorKind.INVALID_MESSAGE,
            f"unsupported URI scheme {scheme!r} in {uri!r}; use a local path, file://, s3:// or gs://",
        )
    return scheme


def local_path(uri: str, scheme: str, base_dir: str | Path | None) -> Path:
    """The local path ``uri`` names (not resolved): ``file://`` is percent-decoded, a plain path is not."""
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


def split_object(uri: str) -> tuple[str, str, str]:
    """``(scheme, bucket, key)`` of an ``s3://`` or ``gs://`` URI, as written (no decoding)."""
    scheme = scheme_of(uri)
    if scheme not in OBJECT_SCHEMES:
        raise ValueError(f"{uri!r} is not an s3:// or gs:// URI")
    bucket, _, key = uri[len(scheme) + 3 :].partition("/")
    return scheme, bucket, key


def video_id_for(uri: str) -> str:
    """The ``video_id`` of an input named without one: the last segment of its path, extension kept.

    The one rule of docs/contracts.md ("video_id"): ``/data/a.mp4``, ``file:///data/a.mp4`` and
    ``s3://bucket/x/a.mp4`` are all ``a.mp4`` (``file://`` percent-decoded, object keys as written);
    a listing uses the path under the listed prefix, which is the same for a file at its root. A URI
    with no file name (``s3://bucket/``) is its own id.
    """
    scheme = scheme_of(uri)
    path = unquote(urlsplit(uri).path) if scheme == "file" else (uri[len(scheme) + 3 :] if scheme else uri)
    name = path.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]
    return name or uri
