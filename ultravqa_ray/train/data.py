"""Ray Data ingest for training: manifest -> decoded frames (cached as Parquet) -> worker shards.

``build_dataset(data_config)`` reads the annotation manifest on the driver (records are small),
decodes every clip once in Ray Data tasks with the shared decode step
(:func:`ultravqa_ray.video.batches.decode_batch`), and writes the decoded rows to a Parquet cache
keyed by the manifest's bytes and the decode settings, so later epochs, stages (reference pass,
ASO, GRPO) and re-submissions read frames instead of decoding again. Rows that failed to decode are
kept in the cache with their ``error_kind``; they are counted and reported
(:class:`IngestReport`, ``bad_videos.jsonl`` beside the cache) and filtered out, never fatal.

Columns of a training row (``batch_format="numpy"``): ``video_id``, the clip record's columns
(``frames`` ``(T, H, W, 3)`` uint8, ``timestamps_s`` ``(T,)`` and the ``decode`` JSON: the cache
stores the clip whole, so training sees the frame times serving sees), ``ratings`` ``(D, R)`` int (0 = no rating; D in DIMENSIONS order), ``rationale`` (JSON map
dimension -> text) and, when a reference folder is given, ``pi_ref`` ``(D, K)`` float32.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from connectors.wire.dimensions import DIMENSIONS, Dimension
from connectors.wire.messages import ModelRef
from ultravqa_ray.model.config import ModelConfig
from ultravqa_ray.model.scorer import ScorerModel
from ultravqa_ray.schemas.annotation import AnnotationRecord
from ultravqa_ray.schemas.manifest import manifest_bytes, read_manifest, resolve_uri
from ultravqa_ray.train.config import DataConfig
from ultravqa_ray.video.batches import decode_batch
from ultravqa_ray.video.config import DecodeConfig

log = logging.getLogger(__name__)

#: Bump when the cache's columns change: old caches are then decoded again, never misread.
CACHE_FORMAT = 2  # 2: the clip record whole (timestamps_s and decode kept)
CLIP_COLUMNS = ["frames", "timestamps_s", "decode"]


@dataclass(frozen=True)
class IngestReport:
    """What the ingest saw: how many videos, how many failed and why, where the cache is."""

    n_records: int
    n_ok: int
    bad: list[dict[str, str]] = field(default_factory=list)  # {video_id, error_kind, error}
    cache: str = ""
    decoded_now: bool = False
    decode_wall_s: float = 0.0
    decode_ms_total: float = 0.0

    @property
    def n_bad(self) -> int:
        return len(self.bad)

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for row in self.bad:
            kinds[row["error_kind"]] = kinds.get(row["error_kind"], 0) + 1
        detail = ", ".join(f"{k}={v}" for k, v in sorted(kinds.items()))
        return f"{self.n_ok} of {self.n_records} videos decoded" + (f"; skipped {self.n_bad} ({detail})" if detail else "")


def ratings_matrix(records: list[AnnotationRecord]) -> np.ndarray:
    """``(N, D, R)`` int64 ratings, 0 where a rater gave none; R = the most raters of any record."""
    width = max((len(v) for rec in records for v in rec.ratings.values()), default=1)
    out = np.zeros((len(records), len(DIMENSIONS), max(width, 1)), np.int64)
    for i, rec in enumerate(records):
        for j, dim in enumerate(DIMENSIONS):
            values = [v or 0 for v in rec.ratings.get(dim, [])]
            out[i, j, : len(values)] = values
    return out


def cache_key(manifest: str | Path, decode: DecodeConfig, limit: int | None) -> str:
    digest = hashlib.sha256(manifest_bytes(manifest))
    digest.update(decode.model_dump_json().encode())
    digest.update(str(limit).encode())
    digest.update(f"format={CACHE_FORMAT}".encode())
    return digest.hexdigest()[:16]


#: Where decoded frames of a manifest on object storage go when ``cache_dir`` is not set.
REMOTE_MANIFEST_CACHE = Path("~/.cache/ultravqa-ray/decoded")


def cache_folder(config: DataConfig) -> Path:
    if config.cache_dir:
        root = Path(config.cache_dir)
    elif "://" in config.manifest:
        root = REMOTE_MANIFEST_CACHE.expanduser()
    else:
        root = Path(config.manifest).resolve().parent / ".decoded"
    stem = Path(config.manifest.rsplit("/", 1)[-1]).stem
    return root / f"{stem}-{cache_key(config.manifest, config.decode, config.limit)}"


def load_records(config: DataConfig, k: int) -> list[AnnotationRecord]:
    records = read_manifest(config.manifest, k=k)
    return records[: config.limit] if config.limit else records


def manifest_rows(records: list[AnnotationRecord], manifest: str) -> list[dict[str, Any]]:
    ratings = ratings_matrix(records)
    return [
        {
            "video_id": rec.video_id,
            "uri": resolve_uri(rec.uri, manifest),
            "ratings": ratings[i],
            "rationale": json.dumps({d.value: t for d, t in rec.rationale.items()}),
        }
        for i, rec in enumerate(records)
    ]


def _decode(batch: dict[str, np.ndarray], config: DecodeConfig, storage: Mapping[str, Any]) -> dict:
    return decode_batch(batch, config, storage_kwargs=storage)


def decode_to_cache(
    rows: list[dict[str, Any]], decode: DecodeConfig, folder: Path, *, batch_size: int = 16,
    storage: Mapping[str, Any] | None = None,
) -> tuple[bool, float]:
    """Decode ``rows`` (``video_id``, ``uri``, extra columns) into a Parquet folder unless it is complete.

    Returns (decoded now, wall seconds). Failed rows are written too, with their ``error_kind``.
    """
    import ray

    if (folder / "_SUCCESS").exists():
        return False, 0.0
    if not rows:
        raise ValueError("nothing to decode: no rows")
    started = time.perf_counter()
    tmp = folder.with_name(f"{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    ds = ray.data.from_items(rows).map_batches(
        _decode,  # type: ignore[arg-type]  # fn_kwargs give the other arguments
        fn_kwargs={"config": decode, "storage": dict(storage or {})},
        batch_size=batch_size,
        batch_format="numpy",
    )
    ds.write_parquet(str(tmp))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    (folder / "_SUCCESS").write_text(json.dumps({"n": len(rows)}))
    wall = time.perf_counter() - started
    log.info("decoded %d videos into %s in %.1fs", len(rows), folder, wall)
    return True, wall


def ingest(rows: list[dict[str, Any]], decode: DecodeConfig, folder: Path, **kwargs: Any) -> IngestReport:
    """Decode into the cache (if needed), count and report failures (``bad_videos.jsonl``)."""
    decoded_now, wall = decode_to_cache(rows, decode, folder, **kwargs)
    n, bad, decode_ms = inspect_cache(folder)
    report = IngestReport(
        n_records=n, n_ok=n - len(bad), bad=bad, cache=str(folder), decoded_now=decoded_now,
        decode_wall_s=wall, decode_ms_total=decode_ms,
    )  # fmt: skip
    if bad:
        (folder.parent / f"{folder.name}.bad_videos.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in bad)
        )
        log.warning("ingest: %s", report.summary())
    if report.n_ok == 0:
        raise ValueError(f"no video could be decoded ({report.summary()})")
    return report


def ok_dataset(folder: str | Path, columns: list[str] | None = None):
    """The decoded rows of a cache folder that hold frames."""
    import ray

    return ray.data.read_parquet(str(folder)).map_batches(
        _keep_ok, fn_kwargs={"columns": columns}, batch_format="numpy"  # type: ignore[arg-type]  # fn_kwargs: the rest
    )


def inspect_cache(folder: Path) -> tuple[int, list[dict[str, str]], float]:
    """(rows, failed rows, summed decode ms) from the cache's small columns."""
    table = pq.read_table(str(folder), columns=["video_id", "error_kind", "error", "decode_ms"])
    rows = table.to_pylist()
    bad = [
        {"video_id": r["video_id"], "error_kind": r["error_kind"], "error": r["error"]}
        for r in rows
        if r["error_kind"]
    ]
    return len(rows), bad, float(sum(r["decode_ms"] for r in rows))


def read_reference(
    folder: str | Path, *, model: ModelRef | None = None, k: int, dimensions: Sequence[Dimension] = DIMENSIONS
) -> dict[str, np.ndarray]:
    """``video_id -> (D, K)`` pi_ref from the reference pass's Parquet file, checked first.

    The file's metadata (written by :func:`ultravqa_ray.train.reference.reference_pass`) must name
    the same K, the same dimensions in the same order and, when ``model`` is given, the same model
    revision (weights digest): a pi_ref of another model or scale is refused with both named.
    """
    path = Path(folder)
    if not path.exists():
        raise FileNotFoundError(f"reference folder {path} not found: run the reference pass first")
    meta = {key.decode(): value.decode() for key, value in (pq.read_schema(str(path)).metadata or {}).items()}
    if "k" not in meta or "dimensions" not in meta or "revision" not in meta:
        raise ValueError(f"pi_ref {path} has no model/k/dimensions metadata: run the reference pass again")
    problems = []
    if int(meta["k"]) != k:
        problems.append(f"K={meta['k']} in the file, K={k} for this run")
    want = [Dimension(d).value for d in dimensions]
    if json.loads(meta["dimensions"]) != want:
        problems.append(f"dimensions {meta['dimensions']} in the file, {json.dumps(want)} for this run")
    if model is not None and meta["revision"] != model.revision:
        problems.append(
            f"model revision {meta['revision']} ({meta.get('model', '?')}) in the file, "
            f"{model.revision} ({model.name}) for this run"
        )
    if problems:
        raise ValueError(f"pi_ref {path} does not belong to this run: " + "; ".join(problems))
    table = pq.read_table(str(path), columns=["video_id", "pi_ref"])
    ids = table.column("video_id").to_pylist()
    values = np.asarray(table.column("pi_ref").to_pylist(), dtype=np.float32)  # (N, D, K)
    return dict(zip(ids, values, strict=True))


def _keep_ok(batch: dict[str, np.ndarray], columns: list[str] | None) -> dict[str, np.ndarray]:
    keep = np.asarray([kind == "" for kind in batch["error_kind"]], dtype=bool)
    return {n: batch[n][keep] for n in (columns or batch)}


def _attach_reference(batch: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict:
    batch["pi_ref"] = np.stack([reference[str(v)] for v in batch["video_id"]]).astype(np.float32)
    return batch


def build_dataset(config: DataConfig, k: int = 5, model: ModelConfig | None = None):
    """The decoded, filtered training dataset and its :class:`IngestReport`.

    With ``config.reference``, pi_ref is checked against K, the dimensions and (``model`` given)
    the model's revision, then attached as a column.
    """
    records = load_records(config, k)
    if not records:
        raise ValueError(f"{config.manifest}: the manifest has no records")
    report = ingest(
        manifest_rows(records, config.manifest), config.decode, cache_folder(config),
        batch_size=config.decode_batch_size, storage=config.storage,
    )  # fmt: skip
    ds = ok_dataset(report.cache, ["video_id", *CLIP_COLUMNS, "ratings", "rationale"])
    if config.reference:
        expected = None if model is None else ScorerModel(model).model_ref  # weights digest, no loading
        reference = read_reference(config.reference, model=expected, k=k)
        bad_ids = {row["video_id"] for row in report.bad}
        ids = [r.video_id for r in records]
        missing = [v for v in ids if v not in bad_ids and v not in reference]
        if missing:
            raise ValueError(
                f"reference {config.reference} has no pi_ref for {len(missing)} videos (e.g. {missing[0]}): "
                "run the reference pass on this manifest"
            )
        ds = ds.map_batches(_attach_reference, fn_kwargs={"reference": reference}, batch_format="numpy")
    return ds, report
