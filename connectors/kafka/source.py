"""A typed Kafka source over kafka-python with manual commits: what the scorers consume from.

Auto-commit is off. The caller polls a batch, writes every output, waits for the acknowledgements
(:meth:`connectors.kafka.sink.KafkaSink.send_all`) and only then calls :meth:`KafkaSource.commit` with the
records it handled, which commits ``offset + 1`` of the last of them per partition (DESIGN.md
section 6: at least once, never dropped). :meth:`pause` / :meth:`resume` give back-pressure without
leaving the group: a paused consumer keeps heartbeating but fetches nothing.

Records come out as :class:`ConsumedRecord`, a plain frozen dataclass, so the per-record logic in
the core never sees a client type.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from connectors.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumedRecord:
    """One consumed record, transport-neutral. A tombstone (null value) reads as ``b""``."""

    key: bytes | None
    value: bytes
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


def consumed(record: Any) -> ConsumedRecord:
    """Convert a kafka-python ``ConsumerRecord``."""
    timestamp = record.timestamp if record.timestamp is not None and record.timestamp >= 0 else None
    return ConsumedRecord(
        key=record.key,
        value=record.value if record.value is not None else b"",
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=timestamp,
    )


def next_offsets(records: Sequence[ConsumedRecord]) -> dict[tuple[str, int], int]:
    """``{(topic, partition): last offset + 1}`` over ``records``: what committing them means."""
    offsets: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        offsets[key] = max(offsets.get(key, 0), record.offset + 1)
    return offsets


class KafkaSource:
    """A group consumer of ``topics`` (``group_id=None``: no group, nothing can be committed)."""

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Sequence[str],
        group_id: str | None,
        *,
        max_poll_records: int = 64,
        isolation_level: str = "read_uncommitted",
    ) -> None:
        if isinstance(topics, str) or not topics:
            raise ValueError(f"topics must be a non-empty sequence of names, got {topics!r}")
        from kafka import KafkaConsumer

        self.topics = tuple(topics)
        self.group_id = group_id
        self._consumer = KafkaConsumer(
            *self.topics, max_poll_records=max_poll_records, isolation_level=isolation_level,
            **settings.consumer_kwargs(group_id),
        )
        self._timeout_ms = settings.request_timeout_ms

    def poll(self, timeout_s: float, max_records: int) -> list[ConsumedRecord]:
        """Up to ``max_records`` records, waiting at most ``timeout_s`` (offset order per partition)."""
        polled = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        return [
            consumed(r) for tp in sorted(polled, key=lambda tp: (tp.topic, tp.partition)) for r in polled[tp]
        ]

    def commit(self, records: Sequence[ConsumedRecord]) -> None:
        """Commit ``offset + 1`` per partition of ``records`` (only those partitions).

        Raises kafka-python's ``CommitFailedError`` when the group rebalanced meanwhile: the records
        are then re-delivered to the partition's new owner, which is the at-least-once contract.
        """
        if not records:
            return
        if self.group_id is None:
            raise RuntimeError("KafkaSource without a group_id cannot commit offsets")
        from kafka.structs import OffsetAndMetadata, TopicPartition

        offsets = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in next_offsets(records).items()
        }
        self._consumer.commit(offsets, timeout_ms=self._timeout_ms)

    def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset of one partition (None when nothing was committed)."""
        from kafka.structs import TopicPartition

        return self._consumer.committed(TopicPartition(topic, partition))

    def group_metadata(self):
        """The group's metadata, for a transactional producer's ``send_offsets_to_transaction``."""
        return self._consumer.group_metadata()

    def pause(self) -> None:
        """Stop fetching from every assigned partition (back-pressure); the group membership stays."""
        self._consumer.pause(*self._consumer.assignment())

    def resume(self) -> None:
        self._consumer.resume(*self._consumer.paused())

    def assignment(self) -> frozenset[tuple[str, int]]:
        """The ``(topic, partition)`` pairs this consumer owns now."""
        return frozenset((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def close(self) -> None:
        self._consumer.close(autocommit=False)

    def __enter__(self) -> KafkaSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
