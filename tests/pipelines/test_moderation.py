"""Moderation rules fire as written, reload when the file changes, and the consumer turns score
events into moderation events on the session broker (read back with confluent-kafka)."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from connectors.kafka import Topics, ensure_topics
from connectors.kafka.sink import KafkaSink, OutgoingRecord
from connectors.wire.dimensions import DIMENSIONS
from connectors.wire.messages import DeadLetter, DecodeInfo, ModelRef, ModerationEvent, ScoreEvent, Timings
from tests.pipelines.kafka_reader import read_all
from ultravqa_ray.pipelines.moderation import ModerationConfig, Moderator, ReloadingRules, RuleSet

RULES = """
default_action: allow
rules:
  - name: blurry
    action: block
    when: {clarity_quality: {below: 1.5}}
  - name: thin-content
    action: review
    when: {content_quality: {below: 2.5}}
  - name: shaky-and-static
    action: review
    when: {motion_quality: {below: 2}, motion_amplitude: {at_least: 4}}
"""


def event(video_id: str, **scores: float) -> ScoreEvent:
    """A score event with the given expected scores (3.0 for the others); probs match the score."""

    def dim(score: float):
        low = int(score)
        frac = score - low
        probs = [0.0] * 5
        probs[low - 1] += 1 - frac
        if frac:
            probs[low] += frac
        return {"score": score, "label": low if frac < 0.5 else low + 1, "probs": probs}

    return ScoreEvent(
        video_id=video_id, uri=f"/v/{video_id}.mp4", model=ModelRef(name="m", revision="r"),
        scores={d.value: dim(scores.get(d.value, 3.0)) for d in DIMENSIONS},
        decode=DecodeInfo(frames=8, duration_s=1, width=64, height=64), timings_ms=Timings(decode=1, infer=1, total=2),
    )  # fmt: skip


@pytest.fixture
def rules_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


def test_rules_fire_as_written(rules_file):
    rules = RuleSet.load(rules_file)
    ok = rules.decide(event("ok"))
    assert (ok.action, ok.rule) == ("allow", "default")
    blurry = rules.decide(event("b", clarity_quality=1.2, content_quality=2.0))  # block beats review
    assert (blurry.action, blurry.rule) == ("block", "blurry: block when clarity_quality < 1.5")
    assert blurry.scores["clarity_quality"] == pytest.approx(1.2)
    assert rules.decide(event("edge", clarity_quality=1.5)).action == "allow"  # below is strict
    thin = rules.decide(event("t", content_quality=2.4))
    assert (thin.action, thin.rule) == ("review", "thin-content: review when content_quality < 2.5")
    both = rules.decide(event("s", motion_quality=1.5, motion_amplitude=4.0))
    assert both.rule == "shaky-and-static: review when motion_quality < 2 and motion_amplitude >= 4"
    assert rules.decide(event("s2", motion_quality=1.5, motion_amplitude=3.9)).action == "allow"  # both must hold


def test_a_dimension_not_scored_never_fires(rules_file):
    full = event("p", clarity_quality=1.0)
    partial = full.model_copy(update={"scores": {"content_quality": full.scores["content_quality"]}})
    assert RuleSet.load(rules_file).decide(partial).action == "allow"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("rules: [{name: x, action: delete, when: {clarity_quality: {below: 1}}}]", "action"),
        ("rules: [{name: x, action: block, when: {sharpness: {below: 1}}}]", "sharpness"),
        ("rules: [{name: x, action: block, when: {clarity_quality: {}}}]", "below"),
        ("rules: [{name: x, action: block, when: {}}]", "when"),
    ],
)
def test_bad_rules_files_name_the_problem(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=words):
        RuleSet.load(path)


def test_rules_reload_when_the_file_changes_and_survive_a_broken_edit(rules_file):
    rules = ReloadingRules(rules_file, reload_interval_s=0.0)
    assert rules.current().decide(event("v", clarity_quality=1.8)).action == "allow"
    rules_file.write_text(RULES.replace("below: 1.5", "below: 2.0"))
    os.utime(rules_file, ns=(1, 2_000_000_000_000_000_000))  # a distinct mtime even within one tick
    assert rules.current().decide(event("v", clarity_quality=1.8)).action == "block"
    rules_file.write_text("rules: [oops")
    os.utime(rules_file, ns=(1, 3_000_000_000_000_000_000))
    assert rules.current().decide(event("v", clarity_quality=1.8)).action == "block"  # previous rules kept


def test_moderation_consumer_end_to_end_with_a_live_rules_change(kafka_settings, topic_name, rules_file):
    topics = Topics(uploads=f"{topic_name}-up", scores=f"{topic_name}-sc", dead_letters=f"{topic_name}-dl",
                    moderation=f"{topic_name}-mod")  # fmt: skip
    ensure_topics(kafka_settings, topics.all(), partitions=2)
    first = [event("a"), event("b", clarity_quality=1.1), event("c", content_quality=2.0)]
    with KafkaSink(kafka_settings) as sink:
        sink.send_all([OutgoingRecord(topics.scores, e.video_id.encode(), e.to_bytes()) for e in first]
                      + [OutgoingRecord(topics.scores, b"junk", b'{"video_id": "junk"}')])  # fmt: skip
    config = ModerationConfig(topics=topics, group_id=f"m-{uuid.uuid4().hex[:6]}", poll_timeout_s=0.2,
                              reload_interval_s=0.1)  # fmt: skip
    moderator = Moderator(config, ReloadingRules(rules_file, config.reload_interval_s), settings=kafka_settings)
    stop = threading.Event()
    thread = threading.Thread(target=moderator.run, args=(stop,), daemon=True)
    thread.start()
    try:
        got = read_all(kafka_settings.bootstrap_servers, [topics.moderation, topics.dead_letters], 4, timeout_s=60)
        actions = {m.key().decode(): ModerationEvent.from_bytes(m.value()).action for m in got
                   if m.topic() == topics.moderation}  # fmt: skip
        assert actions == {"a": "allow", "b": "block", "c": "review"}
        (junk,) = [m for m in got if m.topic() == topics.dead_letters]
        assert DeadLetter.from_bytes(junk.value()).error_kind.value == "invalid_message"

        rules_file.write_text(RULES.replace("below: 2.5", "below: 3.5"))  # now "d" (content 3.0) is thin
        os.utime(rules_file, ns=(1, 2_000_000_000_000_000_000))
        time.sleep(0.3)
        with KafkaSink(kafka_settings) as sink:
            sink.send_all([OutgoingRecord(topics.scores, b"d", event("d").to_bytes())])
        got = read_all(kafka_settings.bootstrap_servers, [topics.moderation], 4, timeout_s=60)
        latest = {m.key().decode(): ModerationEvent.from_bytes(m.value()) for m in got}
        assert latest["d"].action == "review" and "content_quality < 3.5" in latest["d"].rule
    finally:
        stop.set()
        thread.join(30)


def test_moderation_poison_records_never_stop_the_partition(kafka_settings, topic_name, rules_file):
    """A 2 MB junk record and a tombstone among score events: each gets its one output (the junk a
    dead letter with its first bytes, size and hash), and every offset is committed."""
    import hashlib

    from confluent_kafka import Producer

    from tests.pipelines.kafka_reader import committed

    topics = Topics(uploads=f"{topic_name}-up", scores=f"{topic_name}-sc", dead_letters=f"{topic_name}-dl",
                    moderation=f"{topic_name}-mod")  # fmt: skip
    ensure_topics(kafka_settings, topics.all(), partitions=2)
    junk = b"\x00junk" * 400_000
    producer = Producer({"bootstrap.servers": kafka_settings.bootstrap_servers, "message.max.bytes": 8_000_000})
    for key, value in [(b"a", event("a").to_bytes()), (b"junk", junk), (b"tomb", None), (b"b", event("b").to_bytes())]:
        producer.produce(topics.scores, key=key, value=value, partition=0)
    producer.flush(30)
    config = ModerationConfig(topics=topics, group_id=f"m-{uuid.uuid4().hex[:6]}", poll_timeout_s=0.2,
                              dead_letter_max_original_bytes=1000)  # fmt: skip
    moderator = Moderator(config, ReloadingRules(rules_file), settings=kafka_settings)
    stop = threading.Event()
    thread = threading.Thread(target=moderator.run, args=(stop,), daemon=True)
    thread.start()
    try:
        got = read_all(kafka_settings.bootstrap_servers, [topics.moderation, topics.dead_letters], 4, timeout_s=60)
    finally:
        stop.set()
        thread.join(30)
    assert sorted(m.key().decode() for m in got) == ["a", "b", "junk", "tomb"]
    letters = {m.key().decode(): DeadLetter.from_bytes(m.value()) for m in got if m.topic() == topics.dead_letters}
    assert set(letters) == {"junk", "tomb"}
    (cut,) = letters["junk"].truncated
    assert (cut.size, cut.kept, cut.sha256) == (len(junk), 1000, hashlib.sha256(junk).hexdigest())
    assert committed(kafka_settings.bootstrap_servers, config.group_id, topics.scores, 2)[0] == 4
