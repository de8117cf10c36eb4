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

from connectors.kafka import Topics, ensure_topics
from connectors.kafka.sink import KafkaSink, OutgoingRecord
from connectors.wire.messages import DeadLetter, ScoreEvent, UploadEvent
from tests.fixtures.clips import make_clip
from tests.fixtures.serve import APP
from tests.pipelines.kafka_reader import committed, read_all
from ultravqa_ray.pipelines.serve_client import HandleClient, ScorerTargetConfig
from ultravqa_ray.pipelines.stream import Bridge, StreamConfig

PARTITIONS = 2


@pytest.fixture
def topics(kafka_settings, topic_name) -> Topics:
    t = Topics(uploads=f"{topic_name}-up", scores=f"{topic_name}-sc", dead_letters=f"{topic_name}-dl",
               moderation=f"{topic_name}-mod")  # fmt: skip
    ensure_topics(kafka_settings, t.all(), partitions=PARTITIONS)
    return t


@pytest.fixture(scope="module")
def good_clips(allowed_dir):
    return [make_clip(allowed_dir / f"stream-{i}.mp4", n_frames=12 + i, size=(80, 64)) for i in range(4)]


def upload(video_id: str, uri: str) -> bytes:
    return UploadEvent(video_id=video_id, uri=uri, event_time=datetime.now(UTC)).to_bytes()


def publish(settings, topic: str, items: list[tuple[str, bytes]]) -> dict[str, tuple[int, int]]:
    """Send ``(key, value)`` pairs; returns ``key -> (partition, offset)``."""
    with KafkaSink(settings) as sink:
        delivered = sink.send_all([OutgoingRecord(topic, k.encode(), v) for k, v in items])
    return {k: (d.partition, d.offset) for (k, _), d in zip(items, delivered, strict=True)}


def start_bridge(settings, topics, group: str, **overrides):
    config = StreamConfig(
        topics=topics, group_id=group, poll_timeout_s=0.2,
        scorer=ScorerTargetConfig(ray_address=None, app_name=APP, request_timeout_s=60), **overrides,
    )  # fmt: skip
    bridge = Bridge(config, HandleClient(config.scorer), settings=settings)
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,), daemon=True)
    thread.start()
    return bridge, stop, thread


def outputs_by_key(records) -> dict[str, list]:
    out: dict[str, list] = {}
    for msg in records:
        out.setdefault(msg.key().decode(), []).append(msg)
    return out


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
    bridge, stop, thread = start_bridge(kafka_settings, topics, f"g-{uuid.uuid4().hex[:6]}", max_in_flight=4)
    try:
        records = read_all(kafka_settings.bootstrap_servers, [topics.scores, topics.dead_letters], len(published))
    finally:
        stop.set()
        thread.join(60)
    by_key = outputs_by_key(records)
    assert set(by_key) == set(published), set(published) ^ set(by_key)
    assert all(len(v) == 1 for v in by_key.values()), {k: len(v) for k, v in by_key.items() if len(v) > 1}
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
    bridge, stop, thread = start_bridge(kafka_settings, topics, f"g-{uuid.uuid4().hex[:6]}", max_in_flight=8)
    try:
        deadline = time.monotonic() + 60
        while bridge.stats.consumed < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bridge.stats.written < 16, "the stream finished before the kill: make it longer"
        replicas = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                    if a["namespace"] == "serve" and a["name"].startswith(f"SERVE_REPLICA::{APP}#Scorer#")]  # fmt: skip
        assert len(replicas) == 1, replicas
        ray.kill(ray.get_actor(replicas[0], namespace="serve"), no_restart=True)
        records = read_all(kafka_settings.bootstrap_servers, [topics.scores, topics.dead_letters], 16, timeout_s=120)
    finally:
        stop.set()
        thread.join(60)
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

    bridge2, stop2, thread2 = start_bridge(kafka_settings, topics, group, max_in_flight=4)
    try:
        records = read_all(kafka_settings.bootstrap_servers, [topics.scores, topics.dead_letters], len(items))
    finally:
        stop2.set()
        thread2.join(60)
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
