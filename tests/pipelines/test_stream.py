"""The Kafka bridge end to end: the session broker, local Ray, the Scorer deployment (tiny model).

Every upload, good or bad, must come out as exactly one score event or dead letter, read back with
an independent client (confluent-kafka); killing the Scorer replica mid-stream loses nothing;
stopping the bridge and starting another loses nothing and duplicates only uncommitted records.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest

from connectors.wire.messages import DeadLetter, ScoreEvent, UploadEvent
from tests.fixtures.bridge import (
    PARTITIONS,
    assert_one_output_each,
    outputs_by_key,
    publish,
    running_bridge,
    start_bridge,
    upload,
)
from tests.fixtures.clips import make_clip
from tests.fixtures.serve import APP
from tests.pipelines.kafka_reader import committed, read_all
from ultravqa_ray.pipelines.serve_client import HandleClient, ScorerTargetConfig
from ultravqa_ray.pipelines.stream import Bridge, StreamConfig


@pytest.fixture(scope="module")
def good_clips(allowed_dir):
    return [make_clip(allowed_dir / f"stream-{i}.mp4", n_frames=12 + i, size=(80, 64)) for i in range(4)]


def run_once_each(settings, topics, expected: int, **overrides):
    """Run a bridge until ``expected`` outputs arrived; returns it and the outputs by key (one each)."""
    with running_bridge(settings, topics, **overrides) as bridge:
        records = read_all(settings.bootstrap_servers, [topics.scores, topics.dead_letters], expected)
    by_key = outputs_by_key(records)
    assert_one_output_each(by_key)
    return bridge, by_key


def assert_committed_to_end(settings, bridge, topic: str, where: dict[str, tuple[int, int]]) -> None:
    """The group's offsets are at the end of each partition: everything was committed after the acks."""
    ends = Counter(p for p, _ in where.values())
    assert committed(settings.bootstrap_servers, bridge.config.group_id, topic, PARTITIONS) == {
        p: ends[p] for p in range(PARTITIONS)
    }


def test_every_upload_ends_as_exactly_one_score_event_or_dead_letter(
    serve_app, kafka_settings, topics, good_clips, allowed_dir, bad_inputs, clip_dir, tmp_path
):
    outside = make_clip(tmp_path / "outside.mp4", n_frames=5)  # a real video, not on the allow-list
    notes = shutil.copy(bad_inputs["text"], allowed_dir / "stream-notes.mp4")
    big = make_clip(allowed_dir / "stream-big.mp4", n_frames=2, size=(1280, 960))  # > max_pixels
    good = [(f"good-{i}", upload(f"good-{i}", str(p))) for i, p in enumerate(good_clips * 2)]
    bad = {
        "bad-json": (b"{this is not json", "invalid_message"),
        "bad-field": (b'{"video_id": "bad-field", "uri": "x.mp4", "event_time": "2026-01-01T00:00:00Z", '
                      b'"colour": "red"}', "invalid_message"),  # fmt: skip
        "bad-text": (upload("bad-text", str(notes)), "not_a_video"),
        "bad-missing": (upload("bad-missing", str(allowed_dir / "gone.mp4")), "not_found"),
        "bad-forbidden": (upload("bad-forbidden", str(outside)), "forbidden"),
        "bad-big": (upload("bad-big", str(big)), "too_large"),
        "bad-truncated": (upload("bad-truncated", str(bad_inputs["truncated"])), "corrupt_video"),
    }
    published = publish(kafka_settings, topics.uploads, good + [(k, v) for k, (v, _) in bad.items()])
    with running_bridge(kafka_settings, topics, max_in_flight=4) as bridge:
        records = read_all(kafka_settings.bootstrap_servers, [topics.scores, topics.dead_letters], len(published))
    by_key = outputs_by_key(records)
    assert_one_output_each(by_key, published)
    for key, _ in good:
        (msg,) = by_key[key]
        assert msg.topic() == topics.scores
        assert len(ScoreEvent.from_bytes(msg.value()).scores) == 5
    for key, (value, kind) in bad.items():
        (msg,) = by_key[key]
        assert msg.topic() == topics.dead_letters, key
        letter = DeadLetter.from_bytes(msg.value())
        assert (key, letter.error_kind.value) == (key, kind), letter.error
        assert letter.value_b64 and __import__("base64").b64decode(letter.value_b64) == value
        assert (letter.source.partition, letter.source.offset) == published[key]
    assert bridge.stats.consumed == len(published) and bridge.stats.retries == 0
    # Everything was committed after the acks: the group's offsets are at the end of each partition.
    ends = Counter(p for p, _ in published.values())
    assert committed(kafka_settings.bootstrap_servers, f"{bridge.config.group_id}", topics.uploads, PARTITIONS) == {
        p: ends[p] for p in range(PARTITIONS)
    }


def test_killing_the_scorer_replica_mid_stream_loses_nothing(serve_app, kafka_settings, topics, good_clips):
    import ray

    items = [(f"k-{i}", upload(f"k-{i}", str(good_clips[i % 4]))) for i in range(16)]
    published = publish(kafka_settings, topics.uploads, items)
    with running_bridge(kafka_settings, topics, max_in_flight=8) as bridge:
        deadline = time.monotonic() + 60
        while bridge.stats.consumed < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bridge.stats.written < 16, "the stream finished before the kill: make it longer"
        replicas = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                    if a["namespace"] == "serve" and a["name"].startswith(f"SERVE_REPLICA::{APP}#Scorer#")]  # fmt: skip
        assert len(replicas) == 1, replicas
        ray.kill(ray.get_actor(replicas[0], namespace="serve"), no_restart=True)
        records = read_all(kafka_settings.bootstrap_servers, [topics.scores, topics.dead_letters], 16, timeout_s=120)
    by_key = outputs_by_key(records)
    assert set(by_key) == set(published)
    assert all(m.topic() == topics.scores for msgs in by_key.values() for m in msgs)  # none dead-lettered
    assert bridge.stats.retries >= 1  # the kill was felt, and retried


def test_stop_and_restart_mid_stream_loses_nothing_and_duplicates_only_uncommitted(
    serve_app, kafka_settings, topics, good_clips
):
    items = [(f"r-{i}", upload(f"r-{i}", str(good_clips[i % 4]))) for i in range(24)]
    published = publish(kafka_settings, topics.uploads, items)
    group = f"g-{uuid.uuid4().hex[:6]}"
    bridge, stop, thread = start_bridge(kafka_settings, topics, group, max_in_flight=4, drain_timeout_s=0)
    deadline = time.monotonic() + 60
    while bridge.stats.written < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()  # an abrupt stop: no drain, records in flight stay uncommitted
    thread.join(60)
    first_written = bridge.stats.written
    assert 0 < first_written < len(items)
    at_stop = committed(kafka_settings.bootstrap_servers, group, topics.uploads, PARTITIONS)

    with running_bridge(kafka_settings, topics, group, max_in_flight=4) as bridge2:
        records = read_all(kafka_settings.bootstrap_servers, [topics.scores, topics.dead_letters], len(items))
    by_key = outputs_by_key(records)
    assert set(by_key) == set(published)  # nothing lost
    for key, msgs in by_key.items():
        partition, offset = published[key]
        if len(msgs) > 1:  # a duplicate only for a record the first bridge had not committed
            assert offset >= at_stop.get(partition, 0), (key, offset, at_stop)
    # The second bridge started from the committed offsets, not from the beginning.
    assert bridge2.stats.consumed == sum(1 for p, o in published.values() if o >= max(at_stop.get(p, 0), 0))


def test_two_bridges_in_one_group_share_the_partitions(serve_app, kafka_settings, topics, good_clips):
    group = f"g-{uuid.uuid4().hex[:6]}"
    first, stop1, thread1 = start_bridge(kafka_settings, topics, group, max_in_flight=4)
    second, stop2, thread2 = start_bridge(kafka_settings, topics, group, max_in_flight=4)
    try:
        deadline = time.monotonic() + 60
        while not (first.ready()[0] and second.ready()[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert first.ready()[0] and second.ready()[0], (first.ready(), second.ready())
        items = [(f"s-{i}", upload(f"s-{i}", str(good_clips[i % 4]))) for i in range(12)]
        published = publish(kafka_settings, topics.uploads, items)
        assert {p for p, _ in published.values()} == set(range(PARTITIONS))  # both partitions used
        records = read_all(kafka_settings.bootstrap_servers, [topics.scores, topics.dead_letters], len(items))
    finally:
        stop1.set()
        stop2.set()
        thread1.join(60)
        thread2.join(60)
    assert sorted(m.key().decode() for m in records) == sorted(published)  # each exactly once
    assert first.stats.consumed > 0 and second.stats.consumed > 0
    assert first.stats.consumed + second.stats.consumed == len(items)


def test_stream_cli_probes_scores_and_stops_cleanly_on_sigterm(serve_app, kafka_settings, topics, good_clips,
                                                               ray_env, tmp_path):  # fmt: skip
    """``ultravqa-ray stream --config FILE --health-port P`` in a subprocess joining the session's Ray."""
    import os
    import signal
    import subprocess
    import sys

    import ray
    import requests
    import yaml

    from connectors.kafka.broker import free_port

    port = free_port()
    config = {"topics": topics.model_dump(), "group_id": f"g-{uuid.uuid4().hex[:6]}", "poll_timeout_s": 0.2,
              "scorer": {"ray_address": ray.get_runtime_context().gcs_address, "app_name": APP}}  # fmt: skip
    (tmp_path / "stream.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, **ray_env, ULTRAVQA_KAFKA_BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ultravqa_ray.cli", "stream", "--config", str(tmp_path / "stream.yaml"),
         "--health-port", str(port), "--health-host", "127.0.0.1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline, ready = time.monotonic() + 90, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        assert ready is not None and ready.status_code == 200, proc.stdout.read().decode()[-3000:] if proc.poll() else ready
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        published = publish(kafka_settings, topics.uploads, [(f"cli-{i}", upload(f"cli-{i}", str(good_clips[i])))
                                                              for i in range(3)])  # fmt: skip
        records = read_all(kafka_settings.bootstrap_servers, [topics.scores, topics.dead_letters], 3)
        assert {m.key().decode() for m in records} == set(published)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.stdout.read().decode()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_http_client_mode_maps_answers_to_outcomes(serve_app, serve_http, good_clips, allowed_dir):
    """The bridge's ``scorer.mode: http``: scores, input errors as outcomes, transport errors raised."""
    import requests

    from ultravqa_ray.pipelines.serve_client import HttpClient

    client = HttpClient(ScorerTargetConfig(mode="http", url=f"{serve_http}/score-test", request_timeout_s=60))
    client.ping()
    ok = client.score(UploadEvent(video_id="h", uri=str(good_clips[0]), event_time=datetime.now(UTC)))
    assert ok.ok and ok.event.video_id == "h" and len(ok.event.scores) == 5
    missing = client.score(UploadEvent(video_id="m", uri=str(allowed_dir / "nope.mp4"), event_time=datetime.now(UTC)))
    assert (missing.ok, missing.error_kind.value) == (False, "not_found") and "nope.mp4" in missing.error
    from connectors.kafka.broker import free_port

    dead = HttpClient(ScorerTargetConfig(mode="http", url=f"http://127.0.0.1:{free_port()}", request_timeout_s=5))
    with pytest.raises(requests.ConnectionError):  # retried by the bridge, never dead-lettered at once
        dead.score(UploadEvent(video_id="x", uri="/x.mp4", event_time=datetime.now(UTC)))


def test_poison_records_never_stop_a_partition(serve_app, kafka_settings, topics, good_clips):
    """A 2 MB junk record, a tombstone and garbage bytes among good uploads: each gets its one output,
    the junk's dead letter carries its first bytes, size and hash, and every offset is committed."""
    import base64
    import hashlib

    from confluent_kafka import Producer

    junk = bytes(range(256)) * 8192  # 2 MiB, over the producer's default 1 MiB record limit
    good = [(f"p-good-{i}", upload(f"p-good-{i}", str(good_clips[i]))) for i in range(3)]
    producer = Producer({"bootstrap.servers": kafka_settings.bootstrap_servers, "message.max.bytes": 8_000_000})
    where: dict[str, tuple[int, int]] = {}

    def sent(err, msg):
        assert err is None, err
        where[msg.key().decode()] = (msg.partition(), msg.offset())

    for key, value in [good[0], ("p-junk", junk), good[1], ("p-tomb", None), ("p-bytes", b"\xff\xfe\x00"), good[2]]:
        producer.produce(topics.uploads, key=key.encode(), value=value, on_delivery=sent)
    producer.flush(30)
    bridge, by_key = run_once_each(kafka_settings, topics, len(where), max_in_flight=4, dead_letter_max_original_bytes=4096)
    assert set(by_key) == set(where)
    letter = DeadLetter.from_bytes(by_key["p-junk"][0].value())
    assert letter.error_kind.value == "invalid_message"
    assert base64.b64decode(letter.value_b64) == junk[:4096]
    assert [(t.field, t.size, t.sha256) for t in letter.truncated] == [("value", len(junk), hashlib.sha256(junk).hexdigest())]
    for key in ("p-tomb", "p-bytes"):
        assert DeadLetter.from_bytes(by_key[key][0].value()).error_kind.value == "invalid_message"
    assert all(by_key[k][0].topic() == topics.scores for k, _ in good)
    assert_committed_to_end(kafka_settings, bridge, topics.uploads, where)


def test_stream_cli_stops_naming_partition_and_offset_when_even_a_dead_letter_cannot_be_written(
    serve_app, kafka_settings, topics, ray_env, tmp_path
):
    """With a producer limit (1 KiB) that no dead letter fits, the bridge stops at once: exit 1, its
    last line names the record, nothing is committed, and nothing of Ray is written under HOME."""
    import os
    import subprocess
    import sys

    import ray
    import yaml

    published = publish(kafka_settings, topics.uploads, [("f-junk", b"j" * 5000)])
    group = f"g-{uuid.uuid4().hex[:6]}"
    config = {"topics": topics.model_dump(), "group_id": group, "poll_timeout_s": 0.2,
              "kafka": {"max_request_size": 1024, "request_timeout_ms": 5000},
              "scorer": {"ray_address": ray.get_runtime_context().gcs_address, "app_name": APP}}  # fmt: skip
    (tmp_path / "stream.yaml").write_text(yaml.safe_dump(config))
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, **ray_env, HOME=str(home), ULTRAVQA_KAFKA_BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers)
    done = subprocess.run([sys.executable, "-m", "ultravqa_ray.cli", "stream", "--config", str(tmp_path / "stream.yaml")],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    partition, offset = published["f-junk"]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ultravqa-ray stream:") and f"{topics.uploads}[{partition}]@{offset}" in last, last
    assert committed(kafka_settings.bootstrap_servers, group, topics.uploads, PARTITIONS)[partition] < 0
    assert not (home / ".ray").exists(), list(home.rglob("*"))
    assert "Started a local Ray instance" not in done.stderr  # no ray.init() on the way out


def test_exactly_once_is_refused_on_this_broker_with_a_clear_reason(serve_app, kafka_settings, topics):
    """Tansu 0.6 delivers aborted transactions' records to read_committed consumers: the start-up
    check sees it and the bridge refuses to run, naming why, before consuming anything."""
    from connectors.kafka.transactions import TransactionsUnsupported

    config = StreamConfig(topics=topics, group_id=f"g-{uuid.uuid4().hex[:6]}", delivery="exactly_once",
                          transaction_check_topic=f"{topics.uploads}-txn", create_topics=True,
                          scorer=ScorerTargetConfig(ray_address=None, app_name=APP))  # fmt: skip
    bridge = Bridge(config, HandleClient(config.scorer), settings=kafka_settings)
    with pytest.raises(TransactionsUnsupported, match="aborted transaction's record to a read_committed consumer"):
        bridge.run(threading.Event())
    assert bridge.stats.consumed == 0


def test_exactly_once_writes_outputs_and_offsets_in_one_transaction(serve_app, kafka_settings, topics, good_clips):
    """The transactional write path (the broker check skipped, as for a verified broker): each upload
    gets one output, and the group's offsets are committed by the transactions, to the end."""
    items = [(f"x-{i}", upload(f"x-{i}", str(good_clips[i % 4]))) for i in range(6)] + [("x-bad", b"{nope")]
    published = publish(kafka_settings, topics.uploads, items)
    bridge, by_key = run_once_each(kafka_settings, topics, len(items), max_in_flight=4, delivery="exactly_once",
                                   transaction_check=False)  # fmt: skip
    assert set(by_key) == set(published)
    assert_committed_to_end(kafka_settings, bridge, topics.uploads, published)
