"""Turn Kafka upload records into score events or dead letters: the per-record logic, no transport.

Every record ends as exactly one output (DESIGN.md section 6): a :class:`ScoreEvent` on success,
otherwise a :class:`DeadLetter` carrying the original key and value bytes, the error kind and a
message. Records are scored in batches; a failure of one record never affects another.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.kafka.serde import dead_letter_for, decode_upload
from connectors.kafka.source import ConsumedRecord
from connectors.wire.errors import ErrorKind, ProcessingError
from connectors.wire.messages import DeadLetter, ScoreEvent, UploadEvent
from ultravqa_ray.model import ScorerModel
from ultravqa_ray.pipelines.events import score_event
from ultravqa_ray.video import DecodeConfig, DecodedVideo, decode_uri

InputRecord = ConsumedRecord  # the transport-neutral view of one consumed record


@dataclass(frozen=True)
class Output:
    """What to write for one input: the key, and a score event or a dead letter."""

    key: bytes | None
    message: ScoreEvent | DeadLetter

    @property
    def is_score(self) -> bool:
        return isinstance(self.message, ScoreEvent)


def dead_letter(record: InputRecord, kind: ErrorKind, message: str) -> Output:
    return Output(record.key, dead_letter_for(record, kind, message))


def parse_upload(record: InputRecord) -> UploadEvent:
    """Validate the record value; raises ``ProcessingError(invalid_message)`` naming the problem."""
    return decode_upload(record.value)


def process_records(
    records: Sequence[InputRecord],
    scorer: ScorerModel,
    decode_config: DecodeConfig,
    *,
    storage_kwargs: Mapping[str, Any] | None = None,
) -> list[Output]:
    """Score a batch of upload records; one output per record, in the same order.

    ``storage_kwargs`` go to :func:`connectors.storage.open_input` (allow-list, S3 endpoint).
    """
    outputs: list[Output | None] = [None] * len(records)
    ready: list[tuple[int, UploadEvent, DecodedVideo, float, float]] = []
    for i, record in enumerate(records):
        received = time.perf_counter()
        try:
            event = parse_upload(record)
            decoded = decode_uri(event.uri, decode_config, **dict(storage_kwargs or {}))
        except ProcessingError as exc:
            outputs[i] = dead_letter(record, exc.kind, exc.message)
            continue
        ready.append((i, event, decoded, received, (time.perf_counter() - received) * 1000))

    # Score videos that ask for the same dimensions together (all five in the common case).
    groups: dict[tuple, list[tuple[int, UploadEvent, DecodedVideo, float, float]]] = {}
    for item in ready:
        groups.setdefault((item[1].requested_dimensions(), item[1].want_rationale), []).append(item)
    for (dimensions, want_rationale), items in groups.items():
        t0 = time.perf_counter()
        try:
            results = scorer.score_frames(
                [d for _, _, d, _, _ in items], dimensions, want_rationale=want_rationale
            )
        except Exception as exc:  # a fault of ours: every record of the batch is dead-lettered as internal
            for i, *_ in items:
                outputs[i] = dead_letter(
                    records[i], ErrorKind.INTERNAL, f"scoring failed: {type(exc).__name__}: {exc}"
                )
            continue
        infer_ms = (time.perf_counter() - t0) * 1000 / len(items)
        for (i, event, decoded, received, decode_ms), scores in zip(items, results, strict=True):
            outputs[i] = Output(
                records[i].key,
                score_event(
                    video_id=event.video_id,
                    uri=event.uri,
                    model=scorer.model_ref,
                    scores=scores,
                    decoded=decoded,
                    decode_ms=decode_ms,
                    infer_ms=infer_ms,
                    total_ms=(time.perf_counter() - received) * 1000,
                ),
            )
    assert all(o is not None for o in outputs)
    return outputs  # type: ignore[return-value]
