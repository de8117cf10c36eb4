"""A bounded read of a Kafka topic into a Ray Data dataset: one read task per partition.

The range is *planned on the driver* before anything is read: :func:`plan_range` turns a start and
an end (an offset, a time, ``"earliest"``/``"latest"`` or explicit per-partition offsets) into a
list of :class:`PartitionRange` ``[start, end)`` with integers only. The plan is what a job logs
and what a re-run passes again, so "the same range" means the same records, whatever was produced
since (the end probe of :func:`_probe_ends` copes with Tansu's high watermark). :func:`read_range` (a :class:`KafkaRangeDatasource`) then reads each non-empty range in its own Ray task with a group-less
kafka-python consumer (``assign`` + ``seek``; nothing is committed, no group is joined).

Rows: ``key`` (binary, null when absent), ``value`` (binary), ``topic``, ``partition`` (int32),
``offset`` (int64), ``timestamp_ms`` (int64, null when the broker has none): the fields of
:class:`~connectors.kafka.source.ConsumedRecord`, so the core rebuilds records row by row.

Why not ``ray.data.read_kafka`` (Ray 2.60)? It does the same shape of work (one task per
partition, bytes key/value, offsets and timestamps, datetime starts via ``offsets_for_times``) and
its schema is close to ours, but:

- it is built on **confluent-kafka**, while this project's clients are kafka-python (the users'
  choice; confluent-kafka is a test-only dependency here, used as an independent checker). Using
  it would add a second Kafka client, with its own security option names, to every worker image;
- ``end_offset="latest"`` (and datetimes) are resolved *inside each read task*, when the task
  runs, so the range is not fixed when the job starts and a retried task can read further than its
  first attempt; the plan-then-read split here makes the bounds explicit and repeatable;
- it clamps every end offset to the broker's reported high watermark, and the development broker
  (Tansu 0.6) under-reports it for batched produces (see :func:`_probe_ends`), so on Tansu
  ``read_kafka`` silently reads *fewer* records than the range holds;
- our :class:`KafkaSettings` (SASL/SCRAM, TLS files, secrets from the environment) map directly to
  kafka-python; ``read_kafka`` takes its own ``KafkaAuthConfig``.

Where confluent-kafka is installed and the broker is a real Kafka, ``ray.data.read_kafka(topic,
start_offset={topic: {p: r.start}}, end_offset={topic: {p: r.end}})`` with the ranges of
:func:`plan_range` reads the same records; ``tests/connectors/test_ray_read.py`` checks both the
agreement and the Tansu shortfall.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pyarrow as pa
import ray.data
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from connectors.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)

SCHEMA = pa.schema(
    [
        ("key", pa.binary()),
        ("value", pa.binary()),
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("timestamp_ms", pa.int64()),
    ]
)
Bound = int | datetime | Literal["earliest", "latest"] | Mapping[int, int]


@dataclass(frozen=True)
class PartitionRange:
    """Offsets ``[start, end)`` of one partition."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def count(self) -> int:
        return max(0, self.end - self.start)


def plan_range(
    settings: KafkaSettings,
    topic: str,
    *,
    start: Bound = "earliest",
    end: Bound = "latest",
    partitions: Sequence[int] | None = None,
) -> list[PartitionRange]:
    """Resolve ``start``/``end`` to integer offsets per partition, clamped to what the log holds.

    An ``int`` applies to every partition; a ``datetime`` (timezone-aware) is the first offset at
    or after that time (the partition's end when nothing is that recent); a mapping gives offsets
    per partition (partitions it leaves out get the earliest / latest offset).
    """
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(**settings.consumer_kwargs(None))
    try:
        known = consumer.partitions_for_topic(topic)
        if not known:
            raise ValueError(f"topic {topic!r} does not exist or has no partitions")
        chosen = sorted(known) if partitions is None else list(partitions)
        missing = sorted(set(chosen) - set(known))
        if missing:
            raise ValueError(f"topic {topic!r} has no partition(s) {missing}; it has {sorted(known)}")
        tps = [TopicPartition(topic, p) for p in chosen]
        low = consumer.beginning_offsets(tps)
        high = _probe_ends(consumer, low, consumer.end_offsets(tps))

        def resolve(bound: Bound, tp: Any) -> int:
            if isinstance(bound, Mapping):
                value = bound.get(tp.partition)
                return (
                    resolve("earliest" if bound is start else "latest", tp) if value is None else int(value)
                )
            if bound == "earliest":
                return low[tp]
            if bound == "latest":
                return high[tp]
            if isinstance(bound, datetime):
                if bound.tzinfo is None:
                    raise ValueError(f"time bound {bound!r} must be timezone-aware")
                found = consumer.offsets_for_times({tp: int(bound.timestamp() * 1000)})[tp]
                return high[tp] if found is None else found.offset
            if isinstance(bound, int) and not isinstance(bound, bool):
                return bound
            raise ValueError(
                f"offset bound {bound!r}: use an int, a datetime, 'earliest', 'latest' or a mapping"
            )

        ranges = []
        for tp in tps:
            first = min(max(resolve(start, tp), low[tp]), high[tp])
            last = min(max(resolve(end, tp), first), high[tp])
            ranges.append(PartitionRange(topic, tp.partition, first, last))
    finally:
        consumer.close()
    log.info("planned %s: %s", topic, ", ".join(f"p{r.partition}[{r.start},{r.end})" for r in ranges))
    return ranges


def _probe_ends(
    consumer: Any, low: Mapping[Any, int], high: Mapping[Any, int], timeout_s: float = 5.0
) -> dict:
    """The true end offsets: the last record at or after the reported high watermark, plus one.

    Kafka reports the high watermark as the last offset + 1. Tansu 0.6 (the development broker)
    reports the *base offset of the last record batch* + 1, so a batch of three records written at
    offsets 2..4 shows as end 3. Fetching from ``high - 1`` returns that whole batch (and anything
    newer), which gives the real end on both; on Kafka it costs one small fetch per partition.
    """
    ends = dict(high)
    todo = {tp for tp in high if high[tp] > low[tp]}
    if not todo:
        return ends
    consumer.assign(sorted(todo, key=lambda tp: tp.partition))
    for tp in todo:
        consumer.seek(tp, high[tp] - 1)
    deadline = time.monotonic() + timeout_s
    while todo and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=200).items():
            if records:
                ends[tp] = max(ends[tp], records[-1].offset + 1)
                todo.discard(tp)
                consumer.pause(tp)
    if todo:
        log.warning("could not confirm the end offset of %s; using the reported high watermark", sorted(todo))
    consumer.assign([])
    return ends


def read_partition(
    settings: KafkaSettings, part: PartitionRange, *, block_rows: int = 1000, stall_timeout_s: float = 30.0
) -> Iterator[pa.Table]:
    """Yield the records of ``part`` as Arrow tables of at most ``block_rows`` rows (plain Python)."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    if part.count == 0:
        return
    tp = TopicPartition(part.topic, part.partition)
    consumer = KafkaConsumer(**settings.consumer_kwargs(None))
    try:
        consumer.assign([tp])
        consumer.seek(tp, part.start)
        rows: list[dict[str, Any]] = []
        position, last_progress = part.start, time.monotonic()
        while position < part.end:
            polled = consumer.poll(timeout_ms=500, max_records=block_rows).get(tp, [])
            for record in polled:
                if record.offset >= part.end:
                    break
                rows.append(_row(record))
            if polled:
                last_progress = time.monotonic()
            position = max(position, consumer.position(tp))
            if time.monotonic() - last_progress > stall_timeout_s:
                raise TimeoutError(
                    f"{part.topic}[{part.partition}]: stuck at offset {position} before {part.end} "
                    f"for {stall_timeout_s:g}s (records deleted, or the broker unreachable?)"
                )
            if len(rows) >= block_rows:
                yield pa.Table.from_pylist(rows, schema=SCHEMA)
                rows = []
        if rows:
            yield pa.Table.from_pylist(rows, schema=SCHEMA)
    finally:
        consumer.close(autocommit=False)


def read_range(
    settings: KafkaSettings,
    ranges: Sequence[PartitionRange],
    *,
    ray_remote_args: Mapping[str, Any] | None = None,
    block_rows: int = 1000,
) -> ray.data.Dataset:
    """A dataset of every record in ``ranges``; one read task per non-empty partition range."""
    datasource = KafkaRangeDatasource(settings, ranges, block_rows=block_rows)
    tasks = max(1, sum(1 for r in ranges if r.count > 0))
    # One block per task: without it Ray splits each task's output to reach its default
    # parallelism (100 blocks for one partition), which also stops the next map from fusing.
    return ray.data.read_datasource(
        datasource, override_num_blocks=tasks, ray_remote_args=dict(ray_remote_args or {})
    )


def _row(record: Any) -> dict[str, Any]:
    timestamp = record.timestamp if record.timestamp is not None and record.timestamp >= 0 else None
    return {
        "key": record.key,
        "value": record.value if record.value is not None else b"",
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": timestamp,
    }


def _make_read_task(settings: KafkaSettings, part: PartitionRange, block_rows: int) -> ReadTask:
    """A read task closing over plain values only (never the datasource itself)."""

    def read_fn() -> Iterator[pa.Table]:
        yield from read_partition(settings, part, block_rows=block_rows)

    metadata = BlockMetadata(num_rows=part.count, size_bytes=None, exec_stats=None, input_files=None)
    return ReadTask(read_fn, metadata, schema=SCHEMA)


class KafkaRangeDatasource(Datasource):
    """Ray Data datasource over planned partition ranges (see the module docstring)."""

    def __init__(self, settings: KafkaSettings, ranges: Sequence[PartitionRange], *, block_rows: int = 1000):
        super().__init__()
        if block_rows < 1:
            raise ValueError(f"block_rows must be >= 1, got {block_rows}")
        self._settings = settings
        self._ranges = [r for r in ranges if r.count > 0]
        self._block_rows = block_rows

    def get_name(self) -> str:
        return "KafkaRange"

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism: int, per_task_row_limit=None, data_context=None) -> list[ReadTask]:
        return [_make_read_task(self._settings, r, self._block_rows) for r in self._ranges]
