"""The batch scoring job end to end on real components: the Tansu broker, a moto S3 server,
local Ray and a tiny Qwen2.5-VL model saved and loaded with ``from_pretrained``.

Every input must come back exactly once per run, as a score event (key = video_id) or as a dead
letter with the right kind and the original bytes; the outputs are read back with an independent
client (confluent-kafka). A re-run of the same range writes the same keys again. A backfill of an
S3 prefix writes one Parquet row per object, and only for objects under that prefix.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from connectors.kafka import KafkaSettings, KafkaSink, OutgoingRecord, Topics, ensure_topics
from connectors.wire.dimensions import DIMENSIONS
from connectors.wire.messages import DeadLetter, ScoreEvent, UploadEvent
from tests.fixtures.clips import make_clip
from ultravqa_ray.model import ModelConfig
from ultravqa_ray.pipelines.score_batch import run_score_batch
from ultravqa_ray.pipelines.score_batch_config import ScoreBatchConfig
from ultravqa_ray.video import DecodeConfig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from ultravqa_ray.model import build_tiny_model

    return build_tiny_model("qwen2_5_vl", tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("videos")
    return [make_clip(folder / f"clip{i}.mp4", n_frames=12, size=(64, 48), gop=6) for i in range(3)]


def _config(tiny_model: Path, **fields) -> ScoreBatchConfig:
    base = {
        "model": ModelConfig(name_or_path=str(tiny_model), device="cpu"),
        "decode": DecodeConfig(num_frames=4, height=56, width=56),
        "progress": False,
        "resources": {
            "decode_batch_size": 2,
            "score_batch_size": 4,
            "score_num_cpus": 0.5,
            "decode_num_cpus": 0.5,
            # Ray may have started before moto: hand its (fake) credentials to the workers.
            "worker_env": {
                k: os.environ[k]
                for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")
                if k in os.environ
            },
        },
    }
    return ScoreBatchConfig.model_validate({**base, **fields})


def _upload(video_id: str, uri: str) -> bytes:
    return UploadEvent(video_id=video_id, uri=uri, event_time=datetime.now(UTC)).to_bytes()


def _read_topic(settings: KafkaSettings, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    """Every record of ``topic`` through confluent-kafka (an independent client), waiting for ``expected``.

    Partitions are assigned, not subscribed: no consumer group, so no JoinGroup wait on Tansu."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": settings.bootstrap_servers, "group.id": f"check-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
    })  # fmt: skip
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records, deadline = [], time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                records.append((message.key(), message.value()))
            elif message is None and len(records) >= expected:
                break
    finally:
        consumer.close()
    return records


def test_kafka_range_every_input_accounted_once(
    ray_local, kafka_settings, s3_server, clips, tiny_model, tmp_path
):
    prefix = uuid.uuid4().hex[:8]
    topics = Topics(uploads=f"{prefix}.uploads", scores=f"{prefix}.scores", dead_letters=f"{prefix}.dead")
    ensure_topics(kafka_settings, [topics.uploads, topics.scores, topics.dead_letters], partitions=2)
    s3_clip = s3_server.upload("vqa-in", "uploads/s3clip.mp4", clips[1])
    s3_text = s3_server.upload("vqa-in", "uploads/readme.mp4", b"not a video at all\n" * 10)
    secret = s3_server.upload("vqa-secret", "x.mp4", clips[2])
    uploads = [
        (b"local-0", _upload("local-0", str(clips[0])), "scored"),
        (b"s3-1", _upload("s3-1", s3_clip), "scored"),
        (b"rel-2", _upload("rel-2", clips[2].name), "scored"),  # relative to storage.base_dir
        (b"bad-json", b'{"video_id": "bad-json", "uri": ', "invalid_message"),
        (
            b"no-uri",
            json.dumps({"video_id": "no-uri", "event_time": "2026-01-01T00:00:00Z"}).encode(),
            "invalid_message",
        ),
        (b"outside", _upload("outside", secret), "forbidden"),
        (b"dotdot", _upload("dotdot", f"{clips[0].parent}/../../etc/passwd"), "forbidden"),
        (b"missing", _upload("missing", "s3://vqa-in/uploads/missing.mp4"), "not_found"),
        (b"text", _upload("text", s3_text), "not_a_video"),
    ]
    with KafkaSink(kafka_settings) as sink:
        sink.send_all(
            [OutgoingRecord(topics.uploads, b"before", _upload("before", str(clips[0])))]
        )  # outside the range
        delivered = sink.send_all(OutgoingRecord(topics.uploads, key, value) for key, value, _ in uploads)
        sink.send_all(
            [OutgoingRecord(topics.uploads, b"after", _upload("after", str(clips[0])))]
        )  # outside too
    start, end = {}, {}
    for d in delivered:
        start[d.partition] = min(start.get(d.partition, d.offset), d.offset)
        end[d.partition] = max(end.get(d.partition, 0), d.offset + 1)
    config = _config(
        tiny_model,
        input={"kind": "kafka", "kafka": {"start": start, "end": end, "partitions": sorted(start)}},
        output={"kafka": True, "parquet": str(tmp_path / "out" / "scores.parquet")},
        kafka=kafka_settings,
        topics=topics,
        storage={"allow": [str(clips[0].parent), "s3://vqa-in/uploads/"], "s3_endpoint_override": s3_server.endpoint,
                 "base_dir": str(clips[0].parent)},
    )  # fmt: skip

    summary = run_score_batch(config)
    assert summary.inputs == len(uploads) and summary.scored == 3
    assert summary.dead_lettered == {"forbidden": 2, "invalid_message": 2, "not_a_video": 1, "not_found": 1}
    assert summary.videos_per_s > 0

    expected_kinds = {key: kind for key, _, kind in uploads}
    originals = {key: value for key, value, _ in uploads}
    scores = _read_topic(kafka_settings, topics.scores, 3)
    letters = _read_topic(kafka_settings, topics.dead_letters, 6)
    assert sorted(k for k, _ in scores) == sorted(k for k, v in expected_kinds.items() if v == "scored")
    for key, value in scores:
        event = ScoreEvent.from_bytes(value)
        assert event.video_id == key.decode() and set(event.scores) == set(DIMENSIONS)
        assert all(1 <= s.score <= 5 for s in event.scores.values())
    assert Counter(k for k, _ in letters) == Counter(k for k, v in expected_kinds.items() if v != "scored")
    by_offset = {(d.partition, d.offset): key for d, (key, _, _) in zip(delivered, uploads, strict=True)}
    for key, value in letters:
        letter = DeadLetter.from_bytes(value)
        assert letter.error_kind.value == expected_kinds[key], (key, letter.error)
        assert base64.b64decode(letter.value_b64) == originals[key]  # the original bytes, untouched
        assert base64.b64decode(letter.key_b64) == key
        assert letter.source.topic == topics.uploads
        assert by_offset[(letter.source.partition, letter.source.offset)] == key
    table = pq.read_table(tmp_path / "out" / "scores.parquet")
    assert table.num_rows == len(uploads)
    assert sorted(table.column("status").to_pylist()) == sorted(
        "scored" if k == "scored" else "dead_letter" for k in expected_kinds.values()
    )

    # Re-running the same planned range writes the same keys again (no new, none missing).
    again = run_score_batch(config.override(["output.parquet=null"]))
    assert (again.scored, again.dead_lettered) == (summary.scored, summary.dead_lettered)
    assert Counter(k for k, _ in _read_topic(kafka_settings, topics.scores, 6)) == Counter(
        {k: 2 for k, _ in scores}
    )


def test_backfill_s3_prefix_writes_one_parquet_row_per_object(
    ray_local, s3_server, clips, tiny_model, tmp_path
):
    bucket = f"backfill-{uuid.uuid4().hex[:6]}"
    s3_server.upload(bucket, "videos/a.mp4", clips[0])
    s3_server.upload(bucket, "videos/day2/b.mp4", clips[1])
    s3_server.upload(bucket, "videos/notes.txt", b"hello")
    s3_server.upload(bucket, "videos-old/c.mp4", clips[2])  # beside the prefix, not under it
    out = tmp_path / "backfill.parquet"
    config = _config(
        tiny_model,
        input={"kind": "prefix", "prefix": f"s3://{bucket}/videos/"},
        output={"kafka": False, "parquet": str(out)},
        storage={"allow": [f"s3://{bucket}/videos/"], "s3_endpoint_override": s3_server.endpoint},
        dimensions=["clarity_quality", "motion_quality"],
    )
    summary = run_score_batch(config)
    assert (summary.inputs, summary.scored, summary.dead_lettered) == (3, 2, {"not_a_video": 1})
    rows = {r["video_id"]: r for r in pq.read_table(out).to_pylist()}
    assert set(rows) == {"a.mp4", "day2/b.mp4", "notes.txt"}
    assert rows["notes.txt"]["status"] == "dead_letter" and rows["notes.txt"]["error_kind"] == "not_a_video"
    assert f"s3://{bucket}/videos/notes.txt" in rows["notes.txt"]["uri"]
    for vid in ("a.mp4", "day2/b.mp4"):
        assert rows[vid]["status"] == "scored" and 1 <= rows[vid]["score_clarity_quality"] <= 5
        assert (
            rows[vid]["score_aesthetic_quality"] is None
            or rows[vid]["score_aesthetic_quality"] != rows[vid]["score_aesthetic_quality"]
        )
        assert ScoreEvent.from_bytes(rows[vid]["message"]).uri == f"s3://{bucket}/videos/{vid}"


def test_cli_runs_a_manifest_from_the_shipped_yaml(ray_local, clips, tiny_model, tmp_path, capsys):
    from ultravqa_ray.cli import main

    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "".join(json.dumps({"video_id": f"v{i}", "uri": str(p)}) + "\n" for i, p in enumerate(clips[:2]))
        + json.dumps({"video_id": "gone", "uri": "missing.mp4"})
        + "\n"
    )
    out = tmp_path / "m.parquet"
    code = main([
        "score-batch", "--config", str(REPO / "jobs" / "configs" / "score_batch.yaml"),
        "--set", "input.kind=manifest", "--set", f"input.manifest={manifest}",
        "--set", "output.kafka=false", "--set", f"output.parquet={out}",
        "--set", f"model.name_or_path={tiny_model}", "--set", "model.device=cpu",
        "--set", "decode.num_frames=4", "--set", "decode.height=56", "--set", "decode.width=56",
        "--set", "progress=false", "--set", f"storage.allow=[{tmp_path}, {clips[0].parent}]",
    ])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["scored"] == 2 and summary["dead_lettered"] == {"not_found": 1}
    assert pq.read_table(out).num_rows == 3


def test_config_file_and_validation():
    config = ScoreBatchConfig.load(
        REPO / "jobs" / "configs" / "score_batch.yaml",
        ["input.kafka.start={0: 10, 1: 12}", "input.kafka.end=2026-12-01T00:00:00+00:00", "resources.concurrency=2"],
    )
    assert config.input.kind == "kafka" and config.input.kafka.start == {0: 10, 1: 12}
    assert config.input.kafka.end.tzinfo is not None and config.resources.concurrency == 2
    assert config.storage.allow_list().allow_all  # the shipped file leaves the allow-list to the deployment
    with pytest.raises(ValueError, match="input.prefix"):
        ScoreBatchConfig.load(REPO / "jobs" / "configs" / "score_batch.yaml", ["input.kind=prefix"])
    with pytest.raises(ValueError, match="output.kafka=true or output.parquet"):
        ScoreBatchConfig.load(REPO / "jobs" / "configs" / "score_batch.yaml", ["output.kafka=false"])
    with pytest.raises(ValueError, match="allow-list entry"):
        ScoreBatchConfig.load(REPO / "jobs" / "configs" / "score_batch.yaml", ["storage.allow=[relative/dir]"])


def test_dead_letters_carry_at_most_the_configured_original_bytes():
    """``output.dead_letter_max_original_bytes``: a 200 kB malformed record becomes a dead letter with
    its first bytes, its size and its hash; a small one is carried whole. No model is needed: rows
    that failed to parse never reach it."""
    import hashlib

    import numpy as np

    from ultravqa_ray.pipelines.score_batch_stages import decode_inputs, parse_uploads, score_decoded

    big, small = b"{" + b"x" * 200_000, b"[]"
    rows = {"key": [b"big", b"small"], "value": [big, small], "topic": ["in", "in"], "partition": [0, 1],
            "offset": [7, 8]}  # fmt: skip
    batch = decode_inputs(parse_uploads({k: np.asarray(v, dtype=object) for k, v in rows.items()}), DecodeConfig())
    out = score_decoded(batch, scorer=None, max_original_bytes=1000)  # type: ignore[arg-type]
    letters = [DeadLetter.from_bytes(bytes(m)) for m in out["message"]]
    assert [x.error_kind.value for x in letters] == ["invalid_message", "invalid_message"]
    (cut,) = letters[0].truncated
    assert (cut.field, cut.size, cut.kept) == ("value", len(big), 1000)
    assert cut.sha256 == hashlib.sha256(big).hexdigest() and base64.b64decode(letters[0].value_b64) == big[:1000]
    assert letters[1].truncated is None and base64.b64decode(letters[1].value_b64) == small
    with pytest.raises(ValueError, match="dead_letter_max_original_bytes"):
        ScoreBatchConfig.model_validate({"input": {"kind": "manifest", "manifest": "m.jsonl"}, "model": {"name_or_path": "m"},
                                         "output": {"dead_letter_max_original_bytes": -1}})  # fmt: skip
