"""Dead letters carry what fits; one output that cannot be written never blocks the others; topics
are checked at start; the broker keeps its data across a restart on S3 storage."""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest

from connectors.kafka import EmbeddedBroker, KafkaSettings, KafkaSink, OutgoingRecord
from connectors.kafka.serde import MAX_ERROR_CHARS, dead_letter_for
from connectors.kafka.source import ConsumedRecord
from connectors.kafka.topics import MissingTopicError, check_topics
from connectors.wire.errors import ErrorKind
from connectors.wire.messages import DeadLetter
from ultravqa_ray.pipelines.kafka_client import Output, OutputLost, deliver


def record(value: bytes, key: bytes | None = b"k") -> ConsumedRecord:
    return ConsumedRecord(key=key, value=value, topic="vqa.uploads", partition=1, offset=42)


def test_dead_letter_of_a_large_record_carries_first_bytes_size_and_hash():
    junk = bytes(range(256)) * 8192  # 2 MiB
    letter = DeadLetter.from_bytes(
        dead_letter_for(record(junk), ErrorKind.INVALID_MESSAGE, "x" * 5000, max_original_bytes=1000).to_bytes()
    )
    assert base64.b64decode(letter.value_b64) == junk[:1000]
    (cut,) = letter.truncated
    assert (cut.field, cut.size, cut.kept) == ("value", len(junk), 1000)
    assert cut.sha256 == hashlib.sha256(junk).hexdigest()
    assert len(letter.error) == MAX_ERROR_CHARS and letter.error.endswith("…")
    assert len(letter.to_bytes()) < 5000
    assert (letter.source.partition, letter.source.offset) == (1, 42)


def test_dead_letter_under_the_cap_carries_the_original_whole_and_no_truncation():
    letter = dead_letter_for(record(b"{bad json", key=b"v-1"), ErrorKind.INVALID_MESSAGE, "not JSON")
    assert base64.b64decode(letter.value_b64) == b"{bad json"
    assert base64.b64decode(letter.key_b64) == b"v-1"
    assert letter.truncated is None and b"truncated" not in letter.to_bytes()


def test_a_large_key_is_cut_too():
    letter = dead_letter_for(record(b"v", key=b"K" * 300), ErrorKind.INVALID_MESSAGE, "bad", max_original_bytes=100)
    assert [(c.field, c.size, c.kept) for c in letter.truncated] == [("key", 300, 100)]


def test_deliver_replaces_only_the_output_that_does_not_fit(kafka_settings, topic_name):
    small = kafka_settings.model_copy(update={"max_request_size": 4096})
    check_topics(small, [topic_name], create=True)
    outputs = [
        Output(OutgoingRecord(topic_name, b"a", b"fits"), "src@0", lambda exc: pytest.fail("not needed")),
        Output(OutgoingRecord(topic_name, b"b", b"x" * 10_000), "src@1",
               lambda exc: OutgoingRecord(topic_name, b"b", f"fallback: {type(exc).__name__}".encode())),
        Output(OutgoingRecord(topic_name, b"c", b"also fits"), "src@2", lambda exc: pytest.fail("not needed")),
    ]  # fmt: skip
    with KafkaSink(small) as sink:
        assert deliver(sink, outputs) == [1]
    got = read_topic(kafka_settings, topic_name, 3)
    assert got == {b"a": b"fits", b"b": b"fallback: MessageSizeTooLargeError", b"c": b"also fits"}


def test_deliver_raises_naming_the_source_when_even_the_fallback_fails(kafka_settings, topic_name):
    small = kafka_settings.model_copy(update={"max_request_size": 2048})
    check_topics(small, [topic_name], create=True)
    too_big = OutgoingRecord(topic_name, b"b", b"y" * 5000)
    with KafkaSink(small) as sink, pytest.raises(OutputLost, match=r"vqa\.uploads\[1\]@42"):
        deliver(sink, [Output(too_big, "vqa.uploads[1]@42", lambda exc: too_big)])


def test_missing_topics_are_named_or_created(kafka_settings):
    names = [f"m-{uuid.uuid4().hex[:8]}", f"m-{uuid.uuid4().hex[:8]}"]
    with pytest.raises(MissingTopicError, match=names[0]) as info:
        check_topics(kafka_settings, names, create=False)
    assert names[1] in str(info.value) and "create_topics" in str(info.value)
    assert check_topics(kafka_settings, names, create=True) == names
    assert check_topics(kafka_settings, names, create=False) == []


def read_topic(settings: KafkaSettings, topic: str, count: int, timeout_s: float = 30) -> dict[bytes, bytes]:
    from tests.pipelines.kafka_reader import read_all

    return {m.key(): m.value() for m in read_all(settings.bootstrap_servers, [topic], count, timeout_s=timeout_s)}


def test_broker_on_s3_storage_keeps_topics_records_and_offsets_across_a_restart(s3_server, tmp_path):
    """Tansu with ``s3://`` storage on the moto server: what the chaos suite's broker restart relies on."""
    import os

    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    bucket = f"tansu-{uuid.uuid4().hex[:8]}"
    s3_server.create_bucket(bucket)
    env = {"AWS_ENDPOINT": s3_server.url, "AWS_ALLOW_HTTP": "true",
           "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    broker = EmbeddedBroker(storage=f"s3://{bucket}/", env=env, log_path=tmp_path / "tansu.log").start()
    try:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        check_topics(settings, ["durable"], create=True, partitions=1)
        with KafkaSink(settings) as sink:
            sink.send_all([OutgoingRecord("durable", f"k{i}".encode(), b"v") for i in range(5)])
        consumer = KafkaConsumer(**settings.consumer_kwargs("g"))
        consumer.commit({TopicPartition("durable", 0): OffsetAndMetadata(3, "", -1)})
        consumer.close()
        broker.stop()
        broker.start()
        check_topics(settings, ["durable"], create=False)  # the topic is still there
        after = KafkaConsumer(**settings.consumer_kwargs("g"))
        tp = TopicPartition("durable", 0)
        assert after.committed(tp) == 3
        after.close()
        assert set(read_topic(settings, "durable", 5)) == {f"k{i}".encode() for i in range(5)}
    finally:
        broker.stop()
