"""Annotation manifests in and out of the rationale writer: comments read beside each record,
rationales written back for every rated dimension, relative uris kept pointing at the same files."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from connectors.wire.dimensions import Dimension
from ultravqa_ray.curation.rationales import RationaleWriter
from ultravqa_ray.data.pooled import pool
from ultravqa_ray.schemas.annotation import AnnotationRecord


def rationales_for_records(
    items: Sequence[tuple[AnnotationRecord, Mapping[Dimension, Sequence[str]]]],
    writer: RationaleWriter,
) -> list[AnnotationRecord]:
    """The records with ``rationale`` rewritten for every rated dimension from its pooled judgment.

    ``metadata["rationale_source"]`` says, per dimension, whether the text came from the model
    (``llm``) or the template. The records are written elsewhere with :func:`rebase_uris`.
    """
    jobs = [(i, d, pool(rec, d, writer.config.k, comments)) for i, (rec, comments) in enumerate(items) for d in rec.dimensions()]
    written = writer.write([j for _, _, j in jobs])
    texts: dict[int, dict[Dimension, tuple[str, str]]] = {}
    for (i, d, _), result in zip(jobs, written, strict=True):
        texts.setdefault(i, {})[d] = result
    out = []
    for i, (rec, _) in enumerate(items):
        mine = texts.get(i, {})
        metadata = {**rec.metadata, "rationale_source": {d.value: s for d, (_, s) in mine.items()}}
        out.append(rec.model_copy(update={"rationale": {d: t for d, (t, _) in mine.items()}, "metadata": metadata}))
    return out


def rebase_uris(records: Sequence[AnnotationRecord], source: str | Path, target: str | Path) -> list[AnnotationRecord]:
    """Relative uris (relative to the manifest ``source``) made relative to the manifest ``target``."""
    from ultravqa_ray.schemas.manifest import resolve_uri

    here, there = Path(source).resolve().parent, Path(target).resolve().parent
    if here == there:
        return list(records)
    out = []
    for rec in records:
        if "://" in rec.uri or Path(rec.uri).is_absolute():
            out.append(rec)
        else:
            out.append(rec.model_copy(update={"uri": os.path.relpath(resolve_uri(rec.uri, source), there)}))
    return out


def read_annotated(path: str | Path, k: int = 5) -> list[tuple[AnnotationRecord, dict[Dimension, list[str]]]]:
    """Annotation records and their rater comments (optional ``comments: {dimension: [str, ...]}``).

    The record schema has no comment field yet, so the comments are taken off each row (JSON Lines
    key ``comments``, Parquet column ``comments_json``) before the rest is validated as usual.
    """
    from pydantic import TypeAdapter, ValidationError

    from connectors.wire.errors import describe_validation_error
    from ultravqa_ray.schemas.annotation import ScoreScale
    from ultravqa_ray.schemas.manifest import ManifestError, _jsonl_rows, _parquet_rows, records_from_rows

    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    if path.suffix == ".jsonl":
        rows = list(_jsonl_rows(path))
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = list(_parquet_rows(path))
        names = pq.read_schema(path).names
        if "comments_json" in names:
            column = pq.read_table(path, columns=["comments_json"])["comments_json"].to_pylist()
            for (_, row), text in zip(rows, column, strict=True):
                if text is not None:
                    row["comments"] = json.loads(text)
    else:
        raise ManifestError(f"{path}: manifest must end in .jsonl or .parquet")
    comments_type = TypeAdapter(dict[Dimension, list[str]])
    comments = []
    for where, row in rows:
        try:
            comments.append(comments_type.validate_python(row.pop("comments", None) or {}))
        except ValidationError as exc:
            raise ManifestError(f"{path} {where}: comments: {describe_validation_error(exc)}") from exc
    return list(zip(records_from_rows(rows, path, ScoreScale(k=k)), comments, strict=True))
