"""Does the broker implement Kafka transactions? A start-up check for ``delivery: exactly_once``.

Exactly-once from uploads to outputs needs two things of the broker: a transactional producer
that commits a chunk's outputs together with its input offsets (``send_offsets_to_transaction``),
and ``read_committed`` consumers that never see the records of an aborted transaction. The first
alone is not enough: a bridge that crashes mid-transaction has its transaction aborted by its
successor, and if aborted records stay visible, its outputs are duplicates.

:func:`check_transactions` tries exactly that on a probe topic: it writes a record in a transaction
and aborts it, writes a plain marker record after it, and reads the partition with a
``read_committed`` consumer from the aborted record on. A broker that implements transactions
(Apache Kafka 2.5 and later) skips the aborted record and delivers the marker; one that does not
raises :class:`TransactionsUnsupported` naming what it did. Measured here: Tansu 0.6 accepts every
transactional request (init, add partitions, offsets in the transaction, commit, abort) and
commits the offsets only with the transaction, but delivers aborted records to ``read_committed``
consumers (kafka-python and librdkafka alike), so the check refuses it.
"""

from __future__ import annotations

import logging
import time
import uuid

from connectors.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)


class TransactionsUnsupported(RuntimeError):
    """The broker cannot give exactly-once delivery (the reason says what it did)."""


def check_transactions(settings: KafkaSettings, probe_topic: str, timeout_s: float = 20.0) -> None:
    """Raise :class:`TransactionsUnsupported` unless an aborted record is hidden from ``read_committed``."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.errors import KafkaError
    from kafka.structs import TopicPartition

    token = uuid.uuid4().hex
    what = f"delivery: exactly_once needs a broker that implements Kafka transactions ({settings.bootstrap_servers})"
    try:
        producer = KafkaProducer(**settings.transactional_producer_kwargs(f"ultravqa-probe-{token}"))
    except KafkaError as exc:
        raise TransactionsUnsupported(f"{what}: no transactional producer ({type(exc).__name__}: {exc})") from exc
    try:
        producer.init_transactions()
        producer.begin_transaction()
        aborted = producer.send(probe_topic, key=b"probe", value=f"aborted-{token}".encode(), partition=0)
        aborted_offset = aborted.get(timeout=timeout_s).offset
        producer.abort_transaction()
        plain = KafkaProducer(**settings.producer_kwargs())
        try:
            plain.send(probe_topic, key=b"probe", value=f"marker-{token}".encode(), partition=0).get(timeout=timeout_s)
        finally:
            plain.close()
    except KafkaError as exc:
        raise TransactionsUnsupported(f"{what}: the broker refused a transaction ({type(exc).__name__}: {exc})") from exc
    finally:
        producer.close()

    consumer = KafkaConsumer(**{**settings.consumer_kwargs(None), "isolation_level": "read_committed"})
    tp = TopicPartition(probe_topic, 0)
    try:
        consumer.assign([tp])
        consumer.seek(tp, aborted_offset)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for record in consumer.poll(timeout_ms=500).get(tp, []):
                if record.value == f"aborted-{token}".encode():
                    raise TransactionsUnsupported(
                        f"{what}: it delivered an aborted transaction's record to a read_committed consumer "
                        f"({probe_topic}[0]@{record.offset}); use delivery: at_least_once on this broker"
                    )
                if record.value == f"marker-{token}".encode():
                    log.info("broker hides aborted transactions: exactly-once delivery available")
                    return
    finally:
        consumer.close()
    raise TransactionsUnsupported(f"{what}: the probe records on {probe_topic} were not read back in {timeout_s:.0f}s")
