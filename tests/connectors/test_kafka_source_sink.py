"""KafkaSource / KafkaSink against the Tansu broker: only what was committed counts, the sink
waits for acknowledgements, pause stops fetching; serde turns bad uploads into invalid_message."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from connectors.kafka import (
    ConsumedRecord,
    DeliveryError,
    KafkaSettings,
    KafkaSink,
    KafkaSource,
    OutgoingRecord,
    dead_letter_for,
    decode_upload,
    encode_key,
    ensure_topics,
)
from connectors.wire.errors import ErrorKind, ProcessingError
from connectors.wire.messages import UploadEvent


def _poll_until(source: KafkaSource, n: int, timeout_s: float = 20.0) -> list[ConsumedRecord]:
    import time

    got: list[ConsumedRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        got.extend(source.poll(0.5, n - len(got)))
    return got


def test_commit_moves_only_past_the_given_records(kafka_settings: KafkaSettings, topic_name: str):
    ensure_topics(kafka_settings, [topic_name], partitions=1)
    with KafkaSink(kafka_settings) as sink:
        delivered = sink.send_all(
            OutgoingRecord(topic_name, encode_key(f"v{i}"), b"%d" % i) for i in range(5)
        )
    assert [d.offset for d in delivered] == [0, 1, 2, 3, 4]
    group = f"g-{uuid.uuid4().hex[:8]}"
    with KafkaSource(kafka_settings, [topic_name], group) as source:
        records = _poll_until(source, 5)
        assert [r.value for r in records] == [b"0", b"1", b"2", b"3", b"4"]
        assert records[0].key == b"v0" and records[0].timestamp_ms is not None
        source.commit(records[:3])
        assert source.committed(topic_name, 0) == 3
        assert source.assignment() == frozenset({(topic_name, 0)})
    with KafkaSource(kafka_settings, [topic_name], group) as again:  # a restart resumes after the commit
        assert [r.value for r in _poll_until(again, 2)] == [b"3", b"4"]


def test_pause_stops_fetching_until_resume(kafka_settings: KafkaSettings, topic_name: str):
    ensure_topics(kafka_settings, [topic_name], partitions=1)
    with (
        KafkaSource(kafka_settings, [topic_name], f"g-{uuid.uuid4().hex[:8]}") as source,
        KafkaSink(kafka_settings) as sink,
    ):
        sink.send_all([OutgoingRecord(topic_name, None, b"first")])
        assert [r.value for r in _poll_until(source, 1)] == [b"first"]
        source.pause()
        sink.send_all([OutgoingRecord(topic_name, None, b"second")])
        assert source.poll(1.5, 10) == []
        source.resume()
        assert [r.value for r in _poll_until(source, 1)] == [b"second"]


def test_send_message_and_failed_acknowledgement(kafka_settings: KafkaSettings, topic_name: str):
    ensure_topics(kafka_settings, [topic_name], partitions=1)
    event = UploadEvent(video_id="v", uri="/x.mp4", event_time="2026-01-01T00:00:00Z")
    with KafkaSink(kafka_settings) as sink:
        sink.send_message(topic_name, encode_key(event.video_id), event).get(timeout=10)
        with pytest.raises(DeliveryError, match="not acknowledged"):
            sink.send_all([OutgoingRecord(topic_name, None, b"x" * (2 * 1024 * 1024))], timeout_s=10)


def test_commit_without_group_is_refused(kafka_settings: KafkaSettings, topic_name: str):
    ensure_topics(kafka_settings, [topic_name], partitions=1)
    with (
        KafkaSource(kafka_settings, [topic_name], None) as source,
        pytest.raises(RuntimeError, match="group_id"),
    ):
        source.commit([ConsumedRecord(None, b"", topic_name, 0, 0)])


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (b"", "empty"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "Invalid JSON"),
        (json.dumps({"video_id": "v"}).encode(), "uri: Field required"),
        (
            json.dumps({"video_id": "v", "uri": "/a", "event_time": "2026-01-01T00:00:00Z", "x": 1}).encode(),
            "x:",
        ),
    ],
)
def test_decode_upload_names_the_problem(value: bytes, needle: str):
    with pytest.raises(ProcessingError) as info:
        decode_upload(value)
    assert info.value.kind is ErrorKind.INVALID_MESSAGE and needle in info.value.message


def test_dead_letter_keeps_the_original_bytes():
    record = ConsumedRecord(b"k", b"\x00raw", "t", 1, 7)
    letter = dead_letter_for(record, ErrorKind.NOT_FOUND, "gone")
    assert base64.b64decode(letter.value_b64) == b"\x00raw" and base64.b64decode(letter.key_b64) == b"k"
    assert (letter.source.topic, letter.source.partition, letter.source.offset) == ("t", 1, 7)
