"""Which inputs a service may read: buckets, key prefixes and local roots.

Upload events come from outside, so the URI in a message must never let a sender read whatever the
service's credentials can reach. An :class:`AllowList` names what may be opened:

- ``s3://bucket/prefix/`` or ``gs://bucket/`` (a whole bucket). A prefix is a *folder*:
  ``s3://b/pre`` admits ``s3://b/pre/x.mp4`` but not ``s3://b/prefix-other/x.mp4``.
- ``/srv/videos`` or ``file:///srv/videos``: a local root, compared after resolving symlinks, so a
  link inside the root that points outside it is refused, and so is ``/srv/videos/../etc/passwd``.

Object keys are checked as written *and* percent-decoded (``%2e%2e``, ``%2F``), both must lie
inside; ``.`` and ``..`` segments, backslashes, query strings and fragments are refused outright,
because S3-compatible stores, proxies and ``pyarrow.fs.FileSystem.from_uri`` may interpret them.
A refusal is ``ProcessingError(forbidden)`` naming the URI and the allow-list, raised before any
byte is read. :meth:`AllowList.any` admits everything (development only).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from connectors.uris import OBJECT_SCHEMES, local_path, require_supported, scheme_of, split_object
from connectors.wire.errors import ErrorKind, ProcessingError

_TRAVERSAL_SEGMENTS = ("..", ".")


@dataclass(frozen=True)
class _ObjectRule:
    scheme: str
    bucket: str
    prefix: str  # without a trailing slash; "" admits the whole bucket

    def admits(self, scheme: str, bucket: str, key: str) -> bool:
        if (scheme, bucket) != (self.scheme, self.bucket):
            return False
        return not self.prefix or key == self.prefix or key.startswith(self.prefix + "/")


@dataclass(frozen=True)
class AllowList:
    """An immutable allow-list; build it with :meth:`parse` or :meth:`any`."""

    entries: tuple[str, ...]
    local_roots: tuple[Path, ...] = ()
    object_rules: tuple[_ObjectRule, ...] = ()
    allow_all: bool = False

    @classmethod
    def any(cls) -> AllowList:
        """Admit every URI (development; services log a warning when they run with it)."""
        return cls(entries=("*",), allow_all=True)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Parse entries; raises ``ValueError`` naming a malformed one. No entries admit nothing."""
        given = tuple(str(e).strip() for e in entries)
        roots: list[Path] = []
        rules: list[_ObjectRule] = []
        for entry in given:
            scheme = scheme_of(entry)
            if scheme in OBJECT_SCHEMES:
                _, bucket, key = split_object(entry)
                if not bucket or any(c in entry for c in "?#\\%"):
                    raise ValueError(f"allow-list entry {entry!r} must be {scheme}://bucket/[prefix/]")
                if any(seg in _TRAVERSAL_SEGMENTS for seg in key.split("/")):
                    raise ValueError(f"allow-list entry {entry!r} must not contain '.' or '..' segments")
                rules.append(_ObjectRule(scheme, bucket, key.rstrip("/")))
            elif scheme in ("", "file"):
                path = local_path(entry, scheme, None) if entry else Path()
                if not path.is_absolute():
                    raise ValueError(f"allow-list entry {entry!r} must be an absolute path or file:// URI")
                roots.append(Path(os.path.realpath(path)))
            else:
                raise ValueError(
                    f"allow-list entry {entry!r}: unsupported scheme {scheme!r} (s3, gs, file, path)"
                )
        return cls(entries=given, local_roots=tuple(roots), object_rules=tuple(rules))

    def describe(self) -> str:
        return "[" + ", ".join(self.entries) + "]" if self.entries else "[] (nothing allowed)"

    def check(self, uri: str, *, base_dir: str | Path | None = None) -> Path | None:
        """Raise ``ProcessingError(forbidden)`` unless ``uri`` lies inside the allow-list.

        Returns the symlink-free path approved for a local ``uri`` (open that one, never the name
        again: :func:`connectors.storage.open_input` does), else None (an object, or :meth:`any`).
        """
        scheme = require_supported(uri)
        if self.allow_all:
            return None
        if scheme in OBJECT_SCHEMES:
            self._check_object(uri)
            return None
        real = resolve_local(uri, scheme, base_dir)
        if not any(real == root or real.is_relative_to(root) for root in self.local_roots):
            self._refuse(uri, f"resolves to {str(real)!r}, outside every allowed local root")
        return real

    def allows(self, uri: str, *, base_dir: str | Path | None = None) -> bool:
        try:
            self.check(uri, base_dir=base_dir)
        except ProcessingError:
            return False
        return True

    def _check_object(self, uri: str) -> None:
        scheme, bucket, key = split_object(uri)
        if "?" in uri or "#" in uri:
            self._refuse(uri, "query strings and fragments are not allowed in object URIs")
        decoded = _fully_unquoted(key)
        for form in (key, decoded):
            if "\\" in form or any(seg in _TRAVERSAL_SEGMENTS for seg in form.split("/")):
                self._refuse(uri, "'.' / '..' path segments and backslashes are not allowed")
        for form in (key, decoded):
            if not any(rule.admits(scheme, bucket, form) for rule in self.object_rules):
                self._refuse(uri, "outside every allowed bucket/prefix")

    def _refuse(self, uri: str, why: str) -> None:
        raise ProcessingError(
            ErrorKind.FORBIDDEN, f"{uri!r} is refused: {why}; allow-list is {self.describe()}"
        )


def resolve_local(uri: str, scheme: str, base_dir: str | Path | None) -> Path:
    """The absolute, symlink-free path a local URI names (what the allow-list compares)."""
    path = local_path(uri, scheme, base_dir)
    return Path(os.path.realpath(path))


def _fully_unquoted(text: str, rounds: int = 4) -> str:
    for _ in range(rounds):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text
