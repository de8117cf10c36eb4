"""Wire messages validate both ways, and the exported JSON Schemas match the models."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from connectors.wire import (
    DIMENSIONS,
    DeadLetter,
    DecodeInfo,
    Dimension,
    DimensionScore,
    ErrorKind,
    ModelRef,
    ModerationEvent,
    ScoreEvent,
    SourceRef,
    Timings,
    UploadEvent,
)
from connectors.wire.schema_export import SCHEMA_DIR, render_schemas

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_exported_schemas_are_current():
    rendered = render_schemas()
    on_disk = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.schema.json")}
    assert set(on_disk) == set(rendered), "run: python -m connectors.wire.schema_export"
    for name, text in rendered.items():
        assert on_disk[name] == text, f"{name} is stale: run python -m connectors.wire.schema_export"


def test_dimensions_are_the_five_in_design_order():
    assert [d.value for d in DIMENSIONS] == [
        "motion_quality",
        "motion_amplitude",
        "aesthetic_quality",
        "content_quality",
        "clarity_quality",
    ]
    assert Dimension.CLARITY_QUALITY.label == "Clarity Quality"


def test_upload_event_round_trip_and_defaults():
    event = UploadEvent(video_id="v1", uri="s3://bucket/v1.mp4", event_time=NOW)
    back = UploadEvent.from_bytes(event.to_bytes())
    assert back == event
    assert back.schema_version == 1
    assert back.requested_dimensions() == DIMENSIONS
    subset = UploadEvent(
        video_id="v1", uri="x.mp4", event_time=NOW, dimensions=["clarity_quality", "motion_quality"]
    )
    assert subset.requested_dimensions() == (Dimension.MOTION_QUALITY, Dimension.CLARITY_QUALITY)


@pytest.mark.parametrize(
    "payload, needle",
    [
        (b"{not json", "Invalid JSON"),
        (b'{"video_id": "v", "event_time": "2026-01-01T00:00:00Z"}', "uri"),
        (b'{"video_id": "v", "uri": "a", "event_time": "2026-01-01T00:00:00Z", "colour": 1}', "colour"),
        (b'{"video_id": "v", "uri": "a", "event_time": "2026-01-01T00:00:00"}', "timezone"),
        (b'{"schema_version": 2, "video_id": "v", "uri": "a", "event_time": "2026-01-01T00:00:00Z"}', "schema_version"),
        (b'{"video_id": "v", "uri": "a", "event_time": "2026-01-01T00:00:00Z", "dimensions": ["beauty"]}', "dimensions"),
        (b'{"video_id": "", "uri": "a", "event_time": "2026-01-01T00:00:00Z"}', "video_id"),
    ],
)
def test_invalid_upload_events_are_refused_with_the_field_named(payload, needle):
    with pytest.raises(ValidationError) as err:
        UploadEvent.from_bytes(payload)
    assert needle in str(err.value)


def _score(probs):
    k = len(probs)
    score = sum((i + 1) * p for i, p in enumerate(probs))
    label = max(range(k), key=lambda i: probs[i]) + 1
    return DimensionScore(score=score, label=label, probs=probs)


def test_score_event_round_trip_any_k():
    probs10 = [0.1] * 10
    event = ScoreEvent(
        video_id="v1",
        uri="file:///v1.mp4",
        model=ModelRef(name="tiny", revision="abc123"),
        scores={Dimension.CLARITY_QUALITY: _score([0.1, 0.2, 0.4, 0.2, 0.1]), Dimension.MOTION_QUALITY: _score(probs10)},
        decode=DecodeInfo(frames=8, duration_s=4.0, width=176, height=144, fps=25.0),
        timings_ms=Timings(decode=10, infer=20, total=31),
        produced_at=NOW,
    )
    back = ScoreEvent.from_bytes(event.to_bytes())
    assert back == event
    assert back.scores[Dimension.CLARITY_QUALITY].score == pytest.approx(3.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"score": 3.0, "label": 3, "probs": [0.5, 0.6, 0.0]},  # does not sum to 1
        {"score": 3.0, "label": 4, "probs": [0.2, 0.6, 0.2]},  # label outside 1..K
        {"score": 0.5, "label": 1, "probs": [1.0, 0.0]},  # score below 1
        {"score": 1.0, "label": 1, "probs": [1.0]},  # K < 2
    ],
)
def test_inconsistent_dimension_scores_are_refused(kwargs):
    with pytest.raises(ValidationError):
        DimensionScore(**kwargs)


def test_dead_letter_keeps_the_original_bytes():
    raw = b"\xff\xfe not utf-8"
    letter = DeadLetter(
        key_b64=base64.b64encode(b"v1").decode(),
        value_b64=base64.b64encode(raw).decode(),
        error_kind=ErrorKind.INVALID_MESSAGE,
        error="value is not UTF-8 JSON",
        source=SourceRef(topic="uploads", partition=0, offset=7),
        failed_at=NOW,
    )
    back = DeadLetter.from_bytes(letter.to_bytes())
    assert base64.b64decode(back.value_b64) == raw
    assert json.loads(letter.to_bytes())["error_kind"] == "invalid_message"


def test_moderation_event_actions_are_closed():
    ok = ModerationEvent(video_id="v", action="block", rule="clarity_quality < 1.5", scores={"clarity_quality": 1.2})
    assert ModerationEvent.from_bytes(ok.to_bytes()) == ok
    with pytest.raises(ValidationError):
        ModerationEvent(video_id="v", action="delete", rule="r", scores={})
