"""The batch job's sink: an output that cannot be written is replaced by its dead letter, the rest
of the batch is written once, and the summary counts what was really written."""

from __future__ import annotations

import json

from connectors.kafka import Topics, ensure_topics
from connectors.wire.messages import DeadLetter
from tests.pipelines.test_score_batch import _config, _read_topic, clips, tiny_model  # noqa: F401 - fixtures
from ultravqa_ray.pipelines.score_batch import run_score_batch


def test_score_events_too_large_for_the_producer_become_internal_dead_letters(
    ray_local, kafka_settings, clips, tiny_model, tmp_path, topic_name  # noqa: F811
):
    topics = Topics(uploads=f"{topic_name}.up", scores=f"{topic_name}.sc", dead_letters=f"{topic_name}.dl")
    ensure_topics(kafka_settings, [topics.scores, topics.dead_letters], partitions=2)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"video_id": f"v{i}", "uri": str(p)}) + "\n" for i, p in enumerate(clips[:2]))
                        + json.dumps({"video_id": "gone", "uri": str(tmp_path / "gone.mp4")}) + "\n")  # fmt: skip
    small = kafka_settings.model_copy(update={"max_request_size": 1024})  # a score event is ~1.5 KB
    config = _config(tiny_model, input={"kind": "manifest", "manifest": str(manifest)}, output={"kafka": True},
                     kafka=small, topics=topics)  # fmt: skip
    summary = run_score_batch(config)
    assert summary.inputs == 3 and summary.scored == 0
    assert summary.dead_lettered == {"internal": 2, "not_found": 1}
    letters = {k.decode(): DeadLetter.from_bytes(v) for k, v in _read_topic(kafka_settings, topics.dead_letters, 3)}
    assert set(letters) == {"v0", "v1", "gone"}
    for key in ("v0", "v1"):
        assert letters[key].error_kind.value == "internal"
        assert "score event could not be written (MessageSizeTooLargeError" in letters[key].error
        assert letters[key].source.path == str(manifest)
    assert letters["gone"].error_kind.value == "not_found"
    assert _read_topic(kafka_settings, topics.scores, 0, timeout_s=3) == []
