"""Batch scoring on Ray Data: a range of upload events, a manifest or a bucket prefix, scored once.

    inputs ──> parse (Kafka only) ──> decode (CPU tasks, decode_batch) ──> score (actor pool) ──> driver
                                                                                                 ├─> scores / dead-letter topics
                                                                                                 └─> Parquet, one row per input

- **Inputs.** A Kafka range is planned first (:func:`connectors.kafka.ray_read.plan_range`: integer
  ``[start, end)`` per partition, logged and reported) and read with one task per partition. A
  manifest or a prefix listing becomes one row per entry, ``video_id`` = the manifest's id or the
  object's path under the prefix.
- **Decode** runs :func:`ultravqa_ray.video.decode_batch` in CPU tasks; frames travel as Arrow
  tensor columns. The allow-list of ``storage`` is checked before anything is read.
- **Score** runs in an actor pool, each actor holding one :class:`ScorerModel` (``concurrency``
  actors, ``num_gpus`` each; one GPU per actor when the cluster has GPUs and nothing is set).
- **Outputs** are written from the driver as result batches stream in: score events keyed by
  ``video_id`` and dead letters (the original key and bytes for Kafka records, the manifest row for
  files), every batch acknowledged before the next is counted; an output that cannot be written
  as it is (too large, refused) is replaced by a dead letter carrying what fits
  (:func:`.kafka_client.deliver`), and only if even that fails does the job stop; Parquet is written once at the
  end. The outputs are small (JSON), so the driver is not a bottleneck next to decoding and the model.

Every input ends as exactly one output: the job counts them and fails loudly if any is missing.
Re-running the same plan writes the same keys (downstream de-duplicates by ``(video_id, model)``)
and replaces the Parquet file.
"""

from __future__ import annotations

import base64
import logging
import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.kafka import KafkaSink, OutgoingRecord
from connectors.kafka.ray_read import PartitionRange, plan_range, read_range
from connectors.kafka.serde import dead_letter_for, dead_letter_for_input
from connectors.kafka.source import ConsumedRecord
from connectors.listing import list_prefix, read_manifest_entries
from connectors.storage import object_filesystem
from connectors.wire.errors import ErrorKind
from connectors.wire.messages import DeadLetter
from ultravqa_ray.model.store import forwarded_env
from ultravqa_ray.pipelines.kafka_client import FALLBACK_ORIGINAL_BYTES, Output, deliver, describe_failure
from ultravqa_ray.pipelines.score_batch_config import ScoreBatchConfig
from ultravqa_ray.pipelines.score_batch_stages import (
    OUTPUT_COLUMNS,
    ScoreActor,
    decode_inputs,
    entry_rows,
    parse_uploads,
)

log = logging.getLogger(__name__)
PARQUET_COLUMNS = tuple(c for c in OUTPUT_COLUMNS if c not in ("out_key",))


@dataclass
class BatchSummary:
    """What a run did: the JSON the CLI prints and the job logs."""

    inputs: int
    scored: int = 0
    dead_lettered: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    videos_per_s: float = 0.0
    source: str = ""
    plan: list[dict[str, Any]] = field(default_factory=list)
    parquet: str | None = None
    kafka_records: int = 0

    @property
    def outputs(self) -> int:
        return self.scored + sum(self.dead_lettered.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_score_batch(config: ScoreBatchConfig) -> BatchSummary:
    """Run the job described by ``config``; see the module docstring."""
    import ray

    if not ray.is_initialized():
        ray.init(address=config.resources.address)
    if not config.storage.allow:
        log.warning("storage.allow is empty: every URI is allowed (development only)")
    started = time.perf_counter()
    dataset, summary = _inputs(config)
    if summary.inputs == 0:
        log.info("nothing to score in %s", summary.source)
        _write_parquet(config, [], summary)
        return summary
    dataset = _decode_and_score(dataset, config)
    sink = KafkaSink(config.kafka_settings()) if config.output.kafka else None
    tables: list[pa.Table] = []
    dead: Counter[str] = Counter()
    bar = _progress(config, summary.inputs)
    try:
        for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
            n = len(batch["status"])
            replaced: list[int] = []
            if sink is not None:
                replaced = deliver(sink, _outputs(batch, config))  # raises OutputLost: the job stops
                summary.kafka_records += n
            if config.output.parquet:
                tables.append(pa.table({c: _arrow_column(batch[c]) for c in PARQUET_COLUMNS}))
            scored = int(np.sum(batch["status"] == "scored"))
            summary.scored += scored
            dead.update(
                str(k) for k, s in zip(batch["error_kind"], batch["status"], strict=True) if s != "scored"
            )
            for i in replaced:  # a score event replaced by its dead letter counts as `internal`
                if batch["status"][i] == "scored":
                    summary.scored -= 1
                    dead[ErrorKind.INTERNAL.value] += 1
            bar.update(n)
    finally:
        bar.close()
        if sink is not None:
            sink.close()
    summary.dead_lettered = dict(sorted(dead.items()))
    summary.wall_s = time.perf_counter() - started
    summary.videos_per_s = summary.inputs / summary.wall_s if summary.wall_s > 0 else 0.0
    _write_parquet(config, tables, summary)
    if summary.outputs != summary.inputs:
        raise RuntimeError(
            f"{summary.inputs} inputs but {summary.outputs} outputs: some inputs were lost or doubled"
        )
    log.info(
        "scored %d, dead-lettered %s, %.1f videos/s",
        summary.scored,
        summary.dead_lettered or "none",
        summary.videos_per_s,
    )
    return summary


def _inputs(config: ScoreBatchConfig):
    import ray.data

    source = config.input
    if source.kind == "kafka":
        settings = config.kafka_settings()
        topic = config.topics.uploads
        plan = plan_range(
            settings,
            topic,
            start=source.kafka.start,
            end=source.kafka.end,
            partitions=source.kafka.partitions,
        )
        summary = BatchSummary(
            inputs=sum(r.count for r in plan), source=f"kafka:{topic}", plan=[asdict(r) for r in plan]
        )
        dataset: Any = read_range(settings, plan, ray_remote_args={"num_cpus": 0.25}).map_batches(
            parse_uploads, batch_format="numpy", num_cpus=0.25
        )
        return dataset, summary
    if source.kind == "manifest":
        assert source.manifest is not None  # checked by the config
        entries, where = read_manifest_entries(source.manifest), str(source.manifest)
    else:
        opts = config.storage.open_kwargs()
        assert source.prefix is not None  # checked by the config
        entries = list_prefix(
            source.prefix, base_dir=opts["base_dir"], s3_endpoint_override=opts["s3_endpoint_override"],
            allow=opts["allow"], suffixes=source.suffixes,
        )  # fmt: skip
        where = str(source.prefix)
    rows = entry_rows(entries, where, config.dimensions)
    summary = BatchSummary(inputs=len(rows), source=f"{source.kind}:{where}")
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 64))) if rows else None
    return dataset, summary


def _decode_and_score(dataset, config: ScoreBatchConfig):
    import ray
    import ray.data

    res = config.resources
    num_gpus = res.num_gpus
    if num_gpus is None:
        num_gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    env = {**forwarded_env(), **res.worker_env}  # an s3:// model: the driver's endpoint and model cache
    runtime_env = {"env_vars": env} if env else None
    decoded = dataset.map_batches(
        decode_inputs,
        batch_format="numpy",
        batch_size=res.decode_batch_size,
        num_cpus=res.decode_num_cpus,
        runtime_env=runtime_env,
        # Ray Data fuses a task stage into a following actor stage with the same resources; a
        # remote-args function keeps decoding in its own CPU tasks, overlapping with scoring.
        ray_remote_args_fn=None if res.fuse_decode else _no_extra_args,
        fn_kwargs={"config": config.decode, "storage_kwargs": config.storage.open_kwargs()},
    )
    return decoded.map_batches(
        ScoreActor,
        batch_format="numpy",
        batch_size=res.score_batch_size,
        compute=ray.data.ActorPoolStrategy(size=res.concurrency),
        num_cpus=res.score_num_cpus,
        num_gpus=num_gpus,
        runtime_env=runtime_env,
        fn_constructor_kwargs={
            "model_config": config.model,
            "max_original_bytes": config.output.dead_letter_max_original_bytes,
        },
    )


def _no_extra_args() -> dict[str, Any]:
    return {}


def _outputs(batch: dict[str, np.ndarray], config: ScoreBatchConfig) -> list[Output]:
    topics = config.topics
    outputs = []
    for i, (status, key, message) in enumerate(zip(batch["status"], batch["out_key"], batch["message"], strict=True)):
        topic = topics.scores if status == "scored" else topics.dead_letters
        where = _where(batch, i)
        outputs.append(Output(OutgoingRecord(topic, key, bytes(message)), where, _fallback(batch, i, config)))
    return outputs


def _where(batch: dict[str, np.ndarray], i: int) -> str:
    topic = str(batch["topic"][i] or "")
    if topic:
        return f"{topic}[{int(batch['partition'][i])}]@{int(batch['offset'][i])}"
    return f"{batch['source_path'][i]}: {batch['video_id'][i]}"


def _fallback(batch: dict[str, np.ndarray], i: int, config: ScoreBatchConfig):
    """The dead letter written instead of row ``i``'s output when that cannot be written.

    A dead letter is re-cut to :data:`FALLBACK_ORIGINAL_BYTES` of its original (or the configured cap, when
    smaller); for a score event
    the original upload is not on the driver, so the fallback carries its source (topic, partition,
    offset or manifest path) and no original bytes.
    """
    key = batch["out_key"][i]
    key = bytes(key) if key is not None else None
    cap = min(config.output.dead_letter_max_original_bytes, FALLBACK_ORIGINAL_BYTES)

    def build(exc: BaseException) -> OutgoingRecord:
        if batch["status"][i] == "scored":
            kind, value = ErrorKind.INTERNAL, b""
            reason = f"score event could not be written ({describe_failure(exc)}); the input is at its source"
        else:
            old = DeadLetter.from_bytes(bytes(batch["message"][i]))
            kind, value = old.error_kind, base64.b64decode(old.value_b64)
            reason = f"{old.error} [dead letter cut: {describe_failure(exc)}]"
        topic = str(batch["topic"][i] or "")
        if topic:
            record = ConsumedRecord(key, value, topic, int(batch["partition"][i]), int(batch["offset"][i]))
            letter = dead_letter_for(record, kind, reason, max_original_bytes=cap)
        else:
            letter = dead_letter_for_input(key=key, value=value, kind=kind, message=reason,
                                           path=str(batch["source_path"][i]), max_original_bytes=cap)  # fmt: skip
        return OutgoingRecord(config.topics.dead_letters, key, letter.to_bytes())

    return build


def _arrow_column(values: np.ndarray) -> pa.Array:
    if values.dtype == object:
        first = next((v for v in values if v is not None), "")
        if isinstance(first, bytes | bytearray):
            return pa.array([v.decode("utf-8") if v is not None else None for v in values], pa.string())
        return pa.array(values.tolist(), pa.string())
    return pa.array(values)


def _write_parquet(config: ScoreBatchConfig, tables: list[pa.Table], summary: BatchSummary) -> None:
    target = config.output.parquet
    if not target:
        return
    table = pa.concat_tables(tables) if tables else _empty_table()
    table = table.sort_by([("video_id", "ascending"), ("offset", "ascending")])
    if "://" in target and not target.startswith("file://"):
        filesystem, path = object_filesystem(target, s3_endpoint_override=config.storage.s3_endpoint_override)
        pq.write_table(table, path, filesystem=filesystem)
    else:
        local = Path(target.removeprefix("file://"))
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, local)  # a re-run replaces the file whole, never half
    summary.parquet = target


def _empty_table() -> pa.Table:
    def kind(column: str) -> pa.DataType:
        if column in ("partition", "offset"):
            return pa.int64()
        return pa.float64() if column.endswith("_ms") or column.startswith("score_") else pa.string()

    return pa.schema([pa.field(c, kind(c)) for c in PARQUET_COLUMNS]).empty_table()


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(config: ScoreBatchConfig, total: int):
    if not config.progress:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="video", desc="score-batch", file=sys.stderr, dynamic_ncols=True)


__all__ = ["BatchSummary", "PartitionRange", "ScoreBatchConfig", "run_score_batch"]
