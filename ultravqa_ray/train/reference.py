"""The reference pass: score the training set once with the frozen SFT model and store pi_ref.

ASO needs pi_ref(s | x, d) of the frozen SFT model for every training (video, dimension); computing
it once here, in a Ray Data actor pool over the same decoded-frame cache the trainer reads, keeps
the reference model out of the ASO training loop. Output: one Parquet file (default
``<manifest dir>/pi_ref.parquet``) with ``video_id`` and ``pi_ref`` (D x K floats, DIMENSIONS
order); its schema metadata names the model (name and weights digest), K and the dimensions.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.wire.dimensions import DIMENSIONS
from connectors.wire.messages import ModelRef
from ultravqa_ray.model.scorer import ScorerModel
from ultravqa_ray.train.config import ReferenceConfig
from ultravqa_ray.train.data import (
    CLIP_COLUMNS,
    IngestReport,
    cache_folder,
    ingest,
    load_records,
    manifest_rows,
    ok_dataset,
)
from ultravqa_ray.train.scoring import score_dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReferenceResult:
    path: Path
    n: int
    ingest: IngestReport
    wall_s: float


def default_output(config: ReferenceConfig) -> Path:
    return Path(config.output) if config.output else Path(config.data.manifest).resolve().parent / "pi_ref.parquet"


def write_reference(path: Path, probs: dict[str, np.ndarray], model: ModelRef, k: int) -> Path:
    """Write ``video_id -> (D, K)`` pi_ref with the metadata :func:`~ultravqa_ray.train.data.read_reference`
    checks: the model (name and revision), K and the dimensions in order."""
    meta = {"model": model.name, "revision": model.revision, "k": str(k),
            "dimensions": json.dumps([d.value for d in DIMENSIONS])}  # fmt: skip
    table = pa.table(
        {"video_id": list(probs), "pi_ref": [np.asarray(p).tolist() for p in probs.values()]},
        schema=pa.schema([("video_id", pa.string()), ("pi_ref", pa.list_(pa.list_(pa.float32())))], metadata=meta),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def reference_pass(config: ReferenceConfig) -> ReferenceResult:
    """Write pi_ref for every decodable video of the manifest; returns the file."""
    from ultravqa_ray.train.trainer import ensure_ray

    ensure_ray()
    started = time.perf_counter()
    records = load_records(config.data, config.model.k)
    report = ingest(
        manifest_rows(records, config.data.manifest), config.data.decode, cache_folder(config.data),
        batch_size=config.data.decode_batch_size, storage=config.data.storage,
    )  # fmt: skip
    probs, failed = score_dataset(
        ok_dataset(report.cache, ["video_id", *CLIP_COLUMNS]), config.model,
        actors=config.actors, batch_size=config.batch_size, cpus=config.cpus_per_actor, gpus=config.gpus_per_actor,
    )  # fmt: skip
    if failed:  # ASO needs pi_ref for every decoded video: a gap is not skipped silently
        vid, error = next(iter(failed.items()))
        raise RuntimeError(f"reference pass: the model failed on {len(failed)} videos (e.g. {vid}: {error})")
    ids = [r.video_id for r in records if r.video_id in probs]
    ref = ScorerModel(config.model).model_ref  # name + weights digest, without loading weights
    out = write_reference(default_output(config), {v: probs[v] for v in ids}, ref, config.model.k)
    log.info("reference pass: pi_ref of %d videos -> %s (%s)", len(ids), out, report.summary())
    return ReferenceResult(path=out, n=len(ids), ingest=report, wall_s=time.perf_counter() - started)
