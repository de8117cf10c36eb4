"""Listing a prefix (local directory, moto S3, the GCS emulator) and reading a manifest into
(video_id, uri) entries."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.listing import ManifestEntry, list_prefix, read_manifest_entries
from connectors.storage import AllowList
from connectors.wire.errors import ErrorKind, ProcessingError


def test_local_directory(tmp_path: Path):
    root = tmp_path / "videos"
    (root / "b").mkdir(parents=True)
    for name in ("a.mp4", "b/c.MP4", "b/notes.txt"):
        (root / name).write_bytes(b"x" * 3)
    entries = list_prefix(str(root))
    assert [e.video_id for e in entries] == ["a.mp4", "b/c.MP4", "b/notes.txt"]
    assert entries[0] == ManifestEntry("a.mp4", str(root / "a.mp4"), 3)
    assert [e.video_id for e in list_prefix(f"file://{root}", suffixes=[".mp4"])] == ["a.mp4", "b/c.MP4"]
    with pytest.raises(ProcessingError) as info:
        list_prefix(str(tmp_path / "nope"))
    assert info.value.kind is ErrorKind.NOT_FOUND


def test_s3_prefix_respects_folder_boundaries(s3_server):
    for key in ("pre/x.mp4", "pre/sub/y.mp4", "prefix-other/z.mp4", "other/w.mp4"):
        s3_server.upload("listing", key, b"data")
    entries = list_prefix("s3://listing/pre/", s3_endpoint_override=s3_server.endpoint)
    assert [(e.video_id, e.uri) for e in entries] == [
        ("sub/y.mp4", "s3://listing/pre/sub/y.mp4"),
        ("x.mp4", "s3://listing/pre/x.mp4"),
    ]
    assert [e.video_id for e in list_prefix("s3://listing/pre", s3_endpoint_override=s3_server.endpoint)] == [
        "sub/y.mp4",
        "x.mp4",
    ]
    assert list_prefix("s3://listing/empty/", s3_endpoint_override=s3_server.endpoint) == []
    with pytest.raises(ProcessingError) as info:
        list_prefix(
            "s3://listing/other/",
            s3_endpoint_override=s3_server.endpoint,
            allow=AllowList.parse(["s3://listing/pre/"]),
        )
    assert info.value.kind is ErrorKind.FORBIDDEN


def test_gs_prefix_respects_folder_boundaries(gcs_server):
    """The GCS emulator, reached through ``STORAGE_EMULATOR_HOST`` (no endpoint argument)."""
    for key in ("pre/x.mp4", "pre/sub/y.mp4", "prefix-other/z.mp4", "other/w.mp4"):
        gcs_server.upload("listing", key, b"data")
    entries = list_prefix("gs://listing/pre/")
    assert [(e.video_id, e.uri, e.size_bytes) for e in entries] == [
        ("sub/y.mp4", "gs://listing/pre/sub/y.mp4", 4),
        ("x.mp4", "gs://listing/pre/x.mp4", 4),
    ]
    assert [e.video_id for e in list_prefix("gs://listing/pre")] == ["sub/y.mp4", "x.mp4"]
    assert list_prefix("gs://listing/empty/") == []


def test_manifest_entries(tmp_path: Path):
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(
        json.dumps({"video_id": "a", "uri": "videos/a.mp4", "ratings": {}})
        + "\n\n"
        + json.dumps({"video_id": "b", "uri": "s3://b/k.mp4"})
        + "\n"
    )
    assert read_manifest_entries(jsonl) == [
        ManifestEntry("a", str(tmp_path / "videos" / "a.mp4")),
        ManifestEntry("b", "s3://b/k.mp4"),
    ]
    parquet = tmp_path / "m.parquet"
    pq.write_table(pa.table({"video_id": ["p"], "uri": ["/abs/p.mp4"], "extra": [1]}), parquet)
    assert read_manifest_entries(parquet) == [ManifestEntry("p", "/abs/p.mp4")]
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"video_id": "a", "uri": "/a"}\n{"video_id": "a", "uri": "/b"}\n')
    with pytest.raises(ValueError, match="line 2: duplicate video_id"):
        read_manifest_entries(dup)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"video_id": "a"}\n')
    with pytest.raises(ValueError, match="line 1: needs"):
        read_manifest_entries(bad)
