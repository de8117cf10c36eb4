"""The embedded broker answers the Kafka protocol: topics, producer, group consumer, commits."""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from connectors.kafka import EmbeddedBroker


def test_produce_and_consume_through_a_group(kafka_settings, topic_name):
    admin = KafkaAdminClient(**kafka_settings.admin_kwargs())
    admin.create_topics([NewTopic(topic_name, num_partitions=2, replication_factor=1)])
    admin.close()

    producer = KafkaProducer(**kafka_settings.producer_kwargs())
    sent = {f"v{i}".encode(): f"payload-{i}".encode() for i in range(20)}
    for key, value in sent.items():
        producer.send(topic_name, key=key, value=value)
    producer.flush()
    producer.close()

    group = f"g-{topic_name}"
    consumer = KafkaConsumer(topic_name, **kafka_settings.consumer_kwargs(group))
    started = time.monotonic()
    got: dict[bytes, bytes] = {}
    while len(got) < len(sent) and time.monotonic() - started < 30:
        for records in consumer.poll(timeout_ms=500).values():
            for rec in records:
                got[rec.key] = rec.value
    consumer.commit()
    join_and_read_s = time.monotonic() - started
    committed = {tp: consumer.committed(tp) for tp in consumer.assignment()}
    consumer.close()

    assert got == sent
    # The fast-join defaults keep the group join well under Tansu's half-session-timeout stall.
    assert join_and_read_s < 15, f"group join + read took {join_and_read_s:.1f}s"
    assert sum(committed.values()) == len(sent)

    # A new member of the same group starts after the committed offsets: nothing is re-read.
    again = KafkaConsumer(**kafka_settings.consumer_kwargs(group))
    again.assign([TopicPartition(topic_name, p) for p in (0, 1)])
    assert all(again.position(tp) == committed[tp] for tp in committed)
    again.close()


def test_broker_stops_cleanly_and_frees_its_port():
    broker = EmbeddedBroker().start()
    assert broker.is_running()
    port = broker.port
    broker.stop()
    assert not broker.is_running()
    # The port can be bound again once the process is gone.
    restarted = EmbeddedBroker(port=port).start()
    try:
        assert restarted.is_running()
    finally:
        restarted.stop()
