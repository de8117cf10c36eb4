"""Which uploads to rate next, on hand-made score distributions and from a scores topic range.

Worked numbers (K = 5):
- one-hot probs have entropy 0, uniform probs entropy log 5, normalised 1;
- an upload whose quality dimensions expect 5, 5, 1, 1 (motion amplitude left out) maps them to
  1, 1, 0, 0 on [0, 1]: standard deviation 0.5, disagreement 0.5 / 0.5 = 1.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.kafka import KafkaSink, OutgoingRecord, ensure_topics
from connectors.wire.dimensions import DIMENSIONS, Dimension
from connectors.wire.messages import DecodeInfo, DimensionScore, ModelRef, ScoreEvent, Timings
from ultravqa_ray.cli.label_select import register
from ultravqa_ray.curation.select import (
    ScoredUpload,
    SelectConfig,
    allocate,
    disagreement,
    entropy,
    normalised_entropy,
    parse_topic_range,
    read_scores_parquet,
    read_scores_topic,
    select_uploads,
    stratum,
)
from ultravqa_ray.pipelines.score_batch import PARQUET_COLUMNS

T0 = datetime(2026, 12, 1, tzinfo=UTC)
UNIFORM = (0.2, 0.2, 0.2, 0.2, 0.2)


def sharp(score: int, k: int = 5, mass: float = 0.96) -> tuple[float, ...]:
    rest = (1 - mass) / (k - 1)
    return tuple(mass if s == score else rest for s in range(1, k + 1))


def upload(video_id: str, probs, when: datetime = T0) -> ScoredUpload:
    per_dim = probs if isinstance(probs, dict) else {d: probs for d in DIMENSIONS}
    return ScoredUpload(video_id, f"s3://videos/{video_id}.mp4", dict(per_dim), when)


def event(video_id: str, probs, when: datetime = T0) -> ScoreEvent:
    scores = {}
    for d in DIMENSIONS:
        p = list(probs)
        scores[d] = DimensionScore(
            score=sum(s * q for s, q in enumerate(p, 1)), label=p.index(max(p)) + 1, probs=p
        )
    return ScoreEvent(
        video_id=video_id,
        uri=f"s3://videos/{video_id}.mp4",
        model=ModelRef(name="tiny", revision="r1"),
        scores=scores,
        decode=DecodeInfo(frames=4, duration_s=1.0, width=64, height=48),
        timings_ms=Timings(decode=1, infer=1, total=2),
        produced_at=when,
    )


def test_uncertainty_numbers():
    assert normalised_entropy(UNIFORM) == pytest.approx(1.0)
    assert normalised_entropy((0, 0, 1, 0, 0)) == pytest.approx(0.0)
    split = {
        Dimension.MOTION_QUALITY: sharp(5, mass=1.0),
        Dimension.MOTION_AMPLITUDE: sharp(3, mass=1.0),
        Dimension.AESTHETIC_QUALITY: sharp(5, mass=1.0),
        Dimension.CONTENT_QUALITY: sharp(1, mass=1.0),
        Dimension.CLARITY_QUALITY: sharp(1, mass=1.0),
    }
    up = upload("split", split)
    assert entropy(up) == pytest.approx(0.0)
    assert disagreement(up) == pytest.approx(1.0)
    assert stratum(up) == 3  # quality mean (5 + 5 + 1 + 1) / 4 = 3
    assert disagreement(upload("agree", sharp(4, mass=1.0))) == pytest.approx(0.0)


def test_uncertain_upload_is_picked_first():
    confident, uncertain = upload("confident", sharp(4)), upload("uncertain", UNIFORM)
    picked, summary = select_uploads([confident, uncertain], [], SelectConfig(budget=1, random_share=0))
    assert [p.video_id for p in picked] == ["uncertain"]
    assert picked[0].selected_by == "uncertainty" and picked[0].uncertainty > 0.9
    both, _ = select_uploads([confident, uncertain], [], SelectConfig(budget=2, random_share=0))
    assert [p.video_id for p in both] == ["uncertain", "confident"]
    assert both[0].uncertainty > both[1].uncertainty


def test_disagreement_between_dimensions_counts():
    """Two uploads with the same entropy: the one whose dimensions disagree comes first."""
    split = {d: sharp(5 if i % 2 else 1) for i, d in enumerate(DIMENSIONS)}
    agreed, disagreeing = upload("agreed", sharp(3)), upload("disagreeing", split)
    assert entropy(agreed) == pytest.approx(entropy(disagreeing))
    picked, _ = select_uploads([agreed, disagreeing], [], SelectConfig(budget=1, random_share=0))
    assert picked[0].video_id == "disagreeing"
    none, _ = select_uploads([agreed, disagreeing], [], SelectConfig(budget=1, random_share=0, disagreement_weight=0))
    assert none[0].uncertainty == pytest.approx(entropy(agreed))


def test_stratified_share_is_respected():
    """40 candidates in bands 2 (20), 4 (10), 5 (10); budget 10, half random: 5 random draws are
    2.5, 1.25, 1.25 by proportion -> floors 2, 1, 1, the remainder to band 2 -> 3, 1, 1."""
    pool = [upload(f"b2-{i:02d}", sharp(2)) for i in range(20)]
    pool += [upload(f"b4-{i:02d}", sharp(4)) for i in range(10)]
    pool += [upload(f"b5-{i:02d}", sharp(5)) for i in range(10)]
    pool.append(upload("unsure", UNIFORM))  # band 3, the most uncertain
    config = SelectConfig(budget=10, random_share=0.5, seed=7)
    picked, summary = select_uploads(pool, [], config)
    random = [p for p in picked if p.selected_by == "random"]
    by_uncertainty = [p for p in picked if p.selected_by == "uncertainty"]
    assert len(picked) == 10 and len(random) == 5 and len(by_uncertainty) == 5
    assert len({p.video_id for p in picked}) == 10
    assert summary["random_per_stratum"] == {"2": 3, "3": 0, "4": 1, "5": 1}
    assert [p.stratum for p in random].count(2) == 3
    assert by_uncertainty[0].video_id == "unsure"
    again, _ = select_uploads(pool, [], config)
    assert [p.video_id for p in again] == [p.video_id for p in picked]  # same seed, same draw
    draws = {tuple(p.video_id for p in select_uploads(pool, [], config.model_copy(update={"seed": s}))[0]) for s in range(5)}
    assert len(draws) > 1  # the share is random, not a fixed pick


def test_allocation():
    assert allocate(5, {2: 20, 4: 10, 5: 10}) == {2: 3, 4: 1, 5: 1}
    assert allocate(3, {1: 1, 2: 100}) == {1: 0, 2: 3}
    assert allocate(4, {1: 1, 2: 2}) == {1: 1, 2: 2}  # capped at what the strata hold
    assert allocate(0, {1: 5}) == {1: 0}


def test_already_labelled_and_repeated_uploads():
    uncertain_old = upload("uncertain", UNIFORM, T0)
    uncertain_new = upload("uncertain", sharp(4), T0 + timedelta(hours=1))  # rescored: now sure
    middling = upload("middling", (0.1, 0.2, 0.4, 0.2, 0.1))
    picked, summary = select_uploads([uncertain_old, middling, uncertain_new], [], SelectConfig(budget=1, random_share=0))
    assert picked[0].video_id == "middling"  # the newest score event of 'uncertain' is sure
    assert summary["uploads"] == 2 and summary["score_events"] == 3
    skipped, summary = select_uploads([upload("a", UNIFORM), middling], ["a"], SelectConfig(budget=2, random_share=0.5))
    assert [p.video_id for p in skipped] == ["middling"]
    assert summary["already_labelled"] == 1 and summary["candidates"] == 1


def _label_select(argv: list[str]) -> int:
    """The 'label select' subcommand on a throw-away 'label' group (cli/label.py wires the real one)."""
    parser = argparse.ArgumentParser(prog="ultravqa-ray")
    label = parser.add_subparsers(dest="command").add_parser("label").add_subparsers(dest="action")
    register(label)
    args = parser.parse_args(["label", "select", *argv])
    return args.func(args)


def test_select_from_score_batch_parquet(tmp_path, capsys):
    rows = []
    for i, (vid, probs) in enumerate([("sure", sharp(5)), ("unsure", UNIFORM), ("mid", (0.1, 0.3, 0.3, 0.2, 0.1)), ("done", UNIFORM)]):
        rows.append({c: None for c in PARQUET_COLUMNS} | {
            "video_id": vid, "uri": f"s3://videos/{vid}.mp4", "status": "scored", "offset": i,
            "message": event(vid, probs).to_bytes().decode(),
        })  # fmt: skip
    rows.append({c: None for c in PARQUET_COLUMNS} | {"video_id": "bad", "status": "dead_letter", "message": "{}"})
    rows.append({c: None for c in PARQUET_COLUMNS} | {"video_id": "odd", "status": "scored", "message": "not json"})
    scores = tmp_path / "scores.parquet"
    pq.write_table(pa.Table.from_pylist(rows), scores)
    uploads, unreadable = read_scores_parquet(scores)
    assert sorted(u.video_id for u in uploads) == ["done", "mid", "sure", "unsure"] and unreadable == 1

    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text(json.dumps({"video_id": "done", "uri": "s3://videos/done.mp4", "ratings": {}}) + "\n")
    out = tmp_path / "select.jsonl"
    rc = _label_select(["--scores", str(scores), "--budget", "2", "--random-share", "0",
                        "--labelled", str(labelled), "--out", str(out)])  # fmt: skip
    assert rc == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["video_id"] for x in lines] == ["unsure", "mid"]
    assert all(x["uri"] == f"s3://videos/{x['video_id']}.mp4" for x in lines)
    summary = json.loads(capsys.readouterr().out)
    assert summary["selected"] == 2 and summary["already_labelled"] == 1 and summary["unreadable_events"] == 1


def test_bad_scores_argument(tmp_path):
    with pytest.raises(ValueError, match="give a .parquet file or kafka:TOPIC"):
        _label_select(["--scores", "scores.csv", "--budget", "1", "--out", str(tmp_path / "o.jsonl")])
    with pytest.raises(ValueError, match="not found"):
        _label_select(["--scores", str(tmp_path / "none.parquet"), "--budget", "1", "--out", str(tmp_path / "o.jsonl")])
    with pytest.raises(ValueError, match="needs a UTC offset"):
        parse_topic_range("kafka:s@2026-12-01T00:00:00..latest", "vqa.scores")
    with pytest.raises(ValueError, match="START..END"):
        parse_topic_range("kafka:s@5", "vqa.scores")
    assert parse_topic_range("kafka:", "vqa.scores") == ("vqa.scores", "earliest", "latest")
    assert parse_topic_range("kafka:s@2026-12-01T00:00:00Z..9", "x") == ("s", datetime(2026, 12, 1, tzinfo=UTC), 9)


def test_select_from_a_scores_topic_range(kafka_settings, topic_name, tmp_path, capsys, monkeypatch):
    ensure_topics(kafka_settings, [topic_name], partitions=1)
    produced = [("before", UNIFORM), ("sure", sharp(4)), ("unsure", UNIFORM), ("mid", (0.1, 0.3, 0.3, 0.2, 0.1))]
    with KafkaSink(kafka_settings) as sink:
        sink.send_all([OutgoingRecord(topic_name, v.encode(), event(v, p).to_bytes()) for v, p in produced])
        sink.send_all([OutgoingRecord(topic_name, b"junk", b"not a score event")])
        sink.send_all([OutgoingRecord(topic_name, b"after", event("after", UNIFORM).to_bytes())])
    # offsets 0..5: 'before' (0) and 'after' (5) lie outside [1, 5)
    uploads, unreadable = read_scores_topic(kafka_settings, topic_name, start=1, end=5)
    assert sorted(u.video_id for u in uploads) == ["mid", "sure", "unsure"] and unreadable == 1

    monkeypatch.setenv("ULTRAVQA_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    out = tmp_path / "select.jsonl"
    rc = _label_select(["--scores", f"kafka:{topic_name}@1..5", "--budget", "2", "--random-share", "0", "--out", str(out)])
    assert rc == 0
    assert [json.loads(x)["video_id"] for x in out.read_text().splitlines()] == ["unsure", "mid"]
    assert json.loads(capsys.readouterr().out)["unreadable_events"] == 1
