"""List inputs for a backfill: every object under a prefix, or the rows of a manifest file.

A backfill names *where* the videos are (``s3://bucket/prefix/``, ``gs://bucket/dir/``, a local
directory or ``file://`` URI) or hands a manifest (JSON Lines or Parquet with ``video_id`` and
``uri``; relative URIs are relative to the manifest, DESIGN.md section 2). Both give the same
thing: a sorted list of :class:`ManifestEntry`. A listed object's ``video_id`` is its path relative
to the prefix (``clips/a.mp4``), so listing the same prefix twice gives the same ids and keys.

The prefix itself is checked against the allow-list; every object under an allowed prefix is
allowed too, except local symlinks that leave the root, which the decoder's own check refuses.
Directory markers (keys ending in ``/``) are skipped; everything else is listed, so a stray
non-video object ends as a ``not_a_video`` row instead of silently disappearing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from connectors.allow_list import AllowList, resolve_local
from connectors.storage import object_filesystem
from connectors.uris import OBJECT_SCHEMES, require_supported
from connectors.wire.errors import ErrorKind, ProcessingError


@dataclass(frozen=True)
class ManifestEntry:
    """One input of a batch job."""

    video_id: str
    uri: str
    size_bytes: int | None = None


def list_prefix(
    prefix: str,
    *,
    base_dir: str | Path | None = None,
    s3_endpoint_override: str | None = None,
    allow: AllowList | None = None,
    suffixes: Sequence[str] | None = None,
) -> list[ManifestEntry]:
    """Every file under ``prefix`` (recursively), sorted by URI; ``suffixes`` filters by ending.

    Raises ``ProcessingError``: ``forbidden`` outside the allow-list, ``not_found`` for a missing
    local directory (an empty object-store prefix simply lists nothing).
    """
    from pyarrow import fs

    scheme = require_supported(prefix)
    if allow is not None:
        allow.check(prefix, base_dir=base_dir)
    if scheme in OBJECT_SCHEMES:
        filesystem, root = object_filesystem(prefix, s3_endpoint_override=s3_endpoint_override)
        root = root.rstrip("/")
        head = f"{scheme}://"
    else:
        local = resolve_local(prefix, scheme, base_dir)
        if not local.is_dir():
            raise ProcessingError(ErrorKind.NOT_FOUND, f"{prefix} is not a directory")
        filesystem, root, head = fs.LocalFileSystem(), str(local), ""
    try:
        infos = filesystem.get_file_info(fs.FileSelector(root, recursive=True, allow_not_found=True))
    except PermissionError as exc:
        raise ProcessingError(ErrorKind.FORBIDDEN, f"listing {prefix} was denied ({exc})") from exc
    except OSError as exc:
        raise ProcessingError(ErrorKind.INTERNAL, f"cannot list {prefix}: {exc}") from exc
    wanted = tuple(s.lower() for s in suffixes) if suffixes else None
    entries = [
        ManifestEntry(video_id=info.path[len(root) :].lstrip("/"), uri=head + info.path, size_bytes=info.size)
        for info in infos
        if info.type == fs.FileType.File
        and not info.path.endswith("/")
        and (wanted is None or info.path.lower().endswith(wanted))
    ]
    return sorted(entries, key=lambda e: e.uri)


def read_manifest_entries(path: str | Path) -> list[ManifestEntry]:
    """``video_id`` and ``uri`` of every row of a ``.jsonl`` or ``.parquet`` manifest.

    Other columns (ratings, metadata) are ignored. A row without a string ``video_id`` and ``uri``,
    or a repeated ``video_id``, raises ``ValueError`` naming the file and the row: a manifest is
    operator input, so it is refused whole rather than half-scored.
    """
    path = Path(path)
    entries: list[ManifestEntry] = []
    seen: set[str] = set()
    for where, row in _rows(path):
        video_id, uri = row.get("video_id"), row.get("uri")
        if not isinstance(video_id, str) or not video_id or not isinstance(uri, str) or not uri:
            raise ValueError(f"{path} {where}: needs non-empty string fields video_id and uri")
        if video_id in seen:
            raise ValueError(f"{path} {where}: duplicate video_id {video_id!r}")
        seen.add(video_id)
        if "://" not in uri and not Path(uri).is_absolute():
            uri = str(path.resolve().parent / uri)
        entries.append(ManifestEntry(video_id=video_id, uri=uri))
    return entries


def _rows(path: Path) -> Iterator[tuple[str, dict]]:
    if not path.is_file():
        raise ValueError(f"{path}: manifest not found")
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path} line {lineno}: not valid JSON: {exc}") from exc
                if not isinstance(row, dict):
                    raise ValueError(f"{path} line {lineno}: not a JSON object")
                yield f"line {lineno}", row
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=["video_id", "uri"])
        for i, row in enumerate(table.to_pylist()):
            yield f"row {i}", row
    else:
        raise ValueError(f"{path}: manifest must end in .jsonl or .parquet")
