"""Read and write annotation manifests as JSON Lines (``.jsonl``) or Parquet (``.parquet``).

Parquet stores the nested fields (ratings, sub-attributes, rationale, metadata) as JSON strings
in string columns: the schema stays flat and stable whatever dimensions or metadata a record has,
and any Arrow reader can still filter on ``video_id`` and ``uri``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from connectors.uris import OBJECT_SCHEMES, scheme_of
from ultravqa_ray.schemas.annotation import AnnotationRecord, ScoreScale

_NESTED = ("ratings", "raters", "sub_attributes", "rationale", "metadata")
PARQUET_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("uri", pa.string()),
        ("duration_s", pa.float64()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("fps", pa.float64()),
        *[(f"{name}_json", pa.string()) for name in _NESTED],
    ]
)


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file and the line or row."""


def write_manifest(records: Iterable[AnnotationRecord], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = list(records)
    if path.suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(rec.model_dump_json(exclude_none=True) + "\n")
    elif path.suffix == ".parquet":
        rows = []
        for rec in records:
            data = rec.model_dump(mode="json")
            row = {k: data[k] for k in ("video_id", "uri", "duration_s", "width", "height", "fps")}
            row.update({f"{k}_json": json.dumps(data[k], sort_keys=True) for k in _NESTED})
            rows.append(row)
        pq.write_table(pa.Table.from_pylist(rows, schema=PARQUET_SCHEMA), path)
    else:
        raise ManifestError(f"{path}: manifest must end in .jsonl or .parquet")
    return path


def read_manifest(path: str | Path, k: int = 5) -> list[AnnotationRecord]:
    """Read and validate every record; ratings must lie in 1..k and video ids be unique.

    ``path`` may be an ``s3://`` or ``gs://`` object (credentials and endpoint from the environment).
    """
    scale = ScoreScale(k=k)
    if scheme_of(str(path)) in OBJECT_SCHEMES:
        return _read_object_manifest(str(path), scale)
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found")
    if path.suffix == ".jsonl":
        raw = _jsonl_rows(path)
    elif path.suffix == ".parquet":
        raw = _parquet_rows(path)
    else:
        raise ManifestError(f"{path}: manifest must end in .jsonl or .parquet")
    return records_from_rows(raw, path, scale)


def records_from_rows(raw: Iterable[tuple[str, dict]], path: str | Path, scale: ScoreScale) -> list[AnnotationRecord]:
    """Validate ``(where, row)`` pairs as records on ``scale`` with unique video ids; errors name ``path where``."""
    records: list[AnnotationRecord] = []
    seen: set[str] = set()
    for where, row in raw:
        try:
            rec = AnnotationRecord.model_validate(row)
            rec.check_scale(scale)
        except (ValidationError, ValueError) as exc:
            raise ManifestError(f"{path} {where}: {exc}") from exc
        if rec.video_id in seen:
            raise ManifestError(f"{path} {where}: duplicate video_id {rec.video_id!r}")
        seen.add(rec.video_id)
        records.append(rec)
    return records


def resolve_uri(uri: str, manifest_path: str | Path) -> str:
    """A record's uri as an absolute path or URI: relative paths are relative to the manifest
    (its folder, or its object prefix for a manifest on ``s3://``/``gs://``)."""
    if "://" in uri or Path(uri).is_absolute():
        return uri
    if scheme_of(str(manifest_path)) in OBJECT_SCHEMES:
        return str(manifest_path).rsplit("/", 1)[0] + "/" + uri
    return str(Path(manifest_path).resolve().parent / uri)


def manifest_bytes(path: str | Path) -> bytes:
    """The bytes of a local or ``s3://``/``gs://`` manifest (hashed for caches and step logs)."""
    if scheme_of(str(path)) not in OBJECT_SCHEMES:
        return Path(path).read_bytes()
    from connectors.storage import object_filesystem

    uri = str(path)
    try:
        filesystem, key = object_filesystem(uri)
        with filesystem.open_input_stream(key) as fh:
            return fh.read()
    except FileNotFoundError as exc:
        raise ManifestError(f"{uri}: manifest not found") from exc
    except OSError as exc:
        raise ManifestError(f"{uri}: cannot read the manifest ({exc})") from exc


def _read_object_manifest(uri: str, scale: ScoreScale) -> list[AnnotationRecord]:
    if not uri.endswith((".jsonl", ".parquet")):
        raise ManifestError(f"{uri}: manifest must end in .jsonl or .parquet")
    data = manifest_bytes(uri)
    if uri.endswith(".jsonl"):
        raw = _json_lines(data.decode("utf-8").splitlines(), uri)
    else:
        raw = _table_rows(pq.read_table(pa.BufferReader(data)), uri)
    return records_from_rows(raw, uri, scale)


def _jsonl_rows(path: Path):
    with path.open(encoding="utf-8") as fh:
        yield from _json_lines(fh, str(path))


def _json_lines(lines: Iterable[str], path: str):
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield f"line {lineno}", json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path} line {lineno}: not valid JSON: {exc}") from exc


def _parquet_rows(path: Path):
    return _table_rows(pq.read_table(path), str(path))


def _table_rows(table: pa.Table, path: str):
    missing = {"video_id", "uri", "ratings_json"} - set(table.column_names)
    if missing:
        raise ManifestError(f"{path}: not an annotation manifest (missing columns {sorted(missing)})")
    for i, row in enumerate(table.to_pylist()):
        out = {k: v for k, v in row.items() if not k.endswith("_json") and v is not None}
        for name in _NESTED:
            text = row.get(f"{name}_json")
            if text is not None:
                value = json.loads(text)
                if value is not None:
                    out[name] = value
        yield f"row {i}", out
