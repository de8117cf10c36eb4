"""A typed Kafka sink over kafka-python: send records, wait for every acknowledgement.

The producer is durable (``acks=all``, retries, one request in flight per connection so order is
kept per partition; see :meth:`KafkaSettings.producer_kwargs`). :meth:`KafkaSink.send_all` is the
commit-after-ack rule in one call: it sends a batch, flushes, waits for each acknowledgement and
raises :class:`DeliveryError` naming every failure, so the caller commits input offsets only when
it returns. :meth:`KafkaSink.send_each` is the per-record form: one result per record (where it
was written, or why not), so a caller can replace the one output that cannot be written (too large,
refused) instead of failing the whole batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)


class _Message(Protocol):
    def to_bytes(self) -> bytes: ...


@dataclass(frozen=True)
class OutgoingRecord:
    """One record to write."""

    topic: str
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Delivered:
    """Where an acknowledged record was written."""

    topic: str
    partition: int
    offset: int


class DeliveryError(RuntimeError):
    """At least one record was not acknowledged; nothing of the batch may be committed."""

    def __init__(self, failures: list[tuple[OutgoingRecord, BaseException]]) -> None:
        self.failures = failures
        first = failures[0]
        super().__init__(
            f"{len(failures)} record(s) not acknowledged, first to {first[0].topic!r}: "
            f"{type(first[1]).__name__}: {first[1]}"
        )


class KafkaSink:
    """A producer; use it as a context manager or call :meth:`close`."""

    def __init__(self, settings: KafkaSettings, *, transactional_id: str | None = None) -> None:
        from kafka import KafkaProducer

        kwargs = settings.producer_kwargs() if transactional_id is None else settings.transactional_producer_kwargs(transactional_id)
        self._producer = KafkaProducer(**kwargs)
        self._ack_timeout_s = settings.request_timeout_ms / 1000
        self.transactional = transactional_id is not None
        if self.transactional:
            self._producer.init_transactions()  # fences an older producer with the same id

    # -- transactions (transactional_id given) ----------------------------------------------------

    def begin(self) -> None:
        self._producer.begin_transaction()

    def send_offsets(self, offsets: dict[tuple[str, int], int], group_metadata) -> None:
        """Commit ``{(topic, partition): next offset}`` with the transaction (not before it)."""
        from kafka.structs import OffsetAndMetadata, TopicPartition

        self._producer.send_offsets_to_transaction(
            {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}, group_metadata
        )

    def commit(self) -> None:
        self._producer.commit_transaction()

    def abort(self) -> None:
        self._producer.abort_transaction()

    def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        """Queue one record; returns kafka-python's future (``.get(timeout)`` waits for the ack)."""
        return self._producer.send(topic, key=key, value=value)

    def send_message(self, topic: str, key: bytes | None, message: _Message) -> Any:
        return self.send(topic, key, message.to_bytes())

    def send_each(
        self, records: Iterable[OutgoingRecord], timeout_s: float | None = None
    ) -> list[Delivered | BaseException]:
        """Send ``records``, wait for each; one result per record, in order (never raises for a record).

        A record refused before sending (larger than ``max_request_size``, producer closed) or
        refused by the broker (too large, unknown topic, timeout) gives its exception.
        """
        timeout = self._ack_timeout_s if timeout_s is None else timeout_s
        pending: list[Any] = []  # the producer's futures, or the exception that refused a record
        for record in records:
            try:
                pending.append(self.send(record.topic, record.key, record.value))
            except Exception as exc:  # refused before sending (too large, serialisation, closed)
                pending.append(exc)
        self._producer.flush(timeout=timeout)
        results: list[Delivered | BaseException] = []
        for future in pending:
            if isinstance(future, BaseException):
                results.append(future)
                continue
            try:
                meta = future.get(timeout=timeout)
            except Exception as exc:  # kafka-python raises KafkaError subclasses and timeouts
                results.append(exc)
            else:
                results.append(Delivered(meta.topic, meta.partition, meta.offset))
        return results

    def send_all(self, records: Iterable[OutgoingRecord], timeout_s: float | None = None) -> list[Delivered]:
        """Send ``records`` and wait until each is acknowledged; raises :class:`DeliveryError`."""
        records = list(records)
        results = self.send_each(records, timeout_s)
        failures = [(r, x) for r, x in zip(records, results, strict=True) if isinstance(x, BaseException)]
        if failures:
            raise DeliveryError(failures)
        return [x for x in results if isinstance(x, Delivered)]

    def flush(self, timeout_s: float | None = None) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        self._producer.close(timeout=timeout_s)

    def __enter__(self) -> KafkaSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
