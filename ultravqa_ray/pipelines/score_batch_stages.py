"""The stages of the batch scoring job, as plain functions on numpy batches.

Ray Data runs them (``map_batches``) and so does the benchmark's plain loop, so both paths do the
same work. A row moves through three shapes:

1. **input rows** (:data:`INPUT_COLUMNS`): ``video_id``, ``uri``, the requested ``dimensions``
   (comma-joined, canonical order) and ``want_rationale``, the original ``key``/``value`` bytes
   and where they came from (``topic``/``partition``/``offset`` for Kafka, ``source_path`` for a
   manifest or listing), and ``input_error_kind``/``input_error`` for records that failed to parse;
2. **decoded rows**: the same plus the columns of :func:`ultravqa_ray.video.decode_batch`
   (``frames`` as a fixed-shape tensor column, ``error_kind``/``error``); decode runs only on rows
   that parsed, the rest keep their parse error;
3. **output rows** (:data:`OUTPUT_COLUMNS`): one per input, ``status`` ``scored`` or
   ``dead_letter``, the record to write (``out_key``, ``message`` = ScoreEvent or DeadLetter JSON),
   the per-dimension expected scores and the timings. Frames are dropped here.

Nothing raises for a bad input; a scoring failure dead-letters its group as ``internal``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from connectors.kafka.serde import (
    DEFAULT_MAX_ORIGINAL_BYTES,
    dead_letter_for,
    dead_letter_for_input,
    decode_upload,
    encode_key,
)
from connectors.kafka.source import ConsumedRecord
from connectors.listing import ManifestEntry
from connectors.wire.dimensions import DIMENSIONS, Dimension
from connectors.wire.errors import ErrorKind, ProcessingError
from connectors.wire.messages import DeadLetter, DecodeInfo, ModelRef, ScoreEvent
from ultravqa_ray.events import score_event
from ultravqa_ray.model import ScorerModel, VideoScores
from ultravqa_ray.video import DecodeConfig, clips_from_batch, decode_batch

INPUT_COLUMNS = (
    "video_id", "uri", "dimensions", "want_rationale", "key", "value",
    "topic", "partition", "offset", "source_path", "input_error_kind", "input_error",
)  # fmt: skip
SCORE_COLUMNS = tuple(f"score_{d.value}" for d in DIMENSIONS)
OUTPUT_COLUMNS = (
    "video_id", "uri", "status", "error_kind", "error", "out_key", "message",
    "topic", "partition", "offset", "source_path", "decode_ms", "infer_ms", *SCORE_COLUMNS,
)  # fmt: skip


def dims_text(dimensions: Sequence[Dimension] | None) -> str:
    wanted = set(dimensions) if dimensions else set(DIMENSIONS)
    return ",".join(d.value for d in DIMENSIONS if d in wanted)


# -- 1. inputs ----------------------------------------------------------------------------------


def entry_rows(
    entries: Sequence[ManifestEntry], source_path: str, dimensions: Sequence[Dimension] | None
) -> list:
    """Input rows of a manifest or a listing; the 'original bytes' of a row are its JSON."""
    dims = dims_text(dimensions)
    return [
        {
            "video_id": e.video_id,
            "uri": e.uri,
            "dimensions": dims,
            "want_rationale": False,
            "key": encode_key(e.video_id),
            "value": json.dumps({"video_id": e.video_id, "uri": e.uri}, sort_keys=True).encode(),
            "topic": "",
            "partition": -1,
            "offset": -1,
            "source_path": source_path,
            "input_error_kind": "",
            "input_error": "",
        }  # fmt: skip
        for e in entries
    ]


def parse_uploads(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Kafka rows (``key``, ``value``, ``topic``, ``partition``, ``offset``) -> input rows."""
    n = len(batch["value"])
    video_id, uri, dims, rationale = [""] * n, [""] * n, [""] * n, np.zeros(n, bool)
    kinds, errors = [""] * n, [""] * n
    for i, value in enumerate(batch["value"]):
        try:
            event = decode_upload(bytes(value) if value is not None else b"")
        except ProcessingError as exc:
            kinds[i], errors[i] = exc.kind.value, exc.message
            continue
        video_id[i], uri[i] = event.video_id, event.uri
        dims[i], rationale[i] = dims_text(event.requested_dimensions()), event.want_rationale
    return {
        "video_id": _objects(video_id), "uri": _objects(uri), "dimensions": _objects(dims),
        "want_rationale": rationale, "key": _objects(batch["key"]), "value": _objects(batch["value"]),
        "topic": _objects(batch["topic"]), "partition": np.asarray(batch["partition"], np.int64),
        "offset": np.asarray(batch["offset"], np.int64), "source_path": _objects([""] * n),
        "input_error_kind": _objects(kinds), "input_error": _objects(errors),
    }  # fmt: skip


# -- 2. decode ----------------------------------------------------------------------------------


def decode_inputs(
    batch: Mapping[str, np.ndarray], config: DecodeConfig, storage_kwargs: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Decode the rows that parsed with :func:`decode_batch`; the others keep their parse error."""
    parsed = np.asarray([k == "" for k in batch["input_error_kind"]], dtype=bool)
    decoded = decode_batch({"uri": np.asarray(batch["uri"])[parsed]}, config, storage_kwargs=storage_kwargs)
    n = len(parsed)
    out = {name: np.asarray(batch[name]) for name in batch if name not in ("input_error_kind", "input_error")}
    for name in ("frames", "timestamps_s", "decode_ms"):
        column = np.zeros((n, *decoded[name].shape[1:]), decoded[name].dtype)
        column[parsed] = decoded[name]
        out[name] = column
    for name, fallback in (("decode", None), ("error_kind", "input_error_kind"), ("error", "input_error")):
        column = np.asarray([""] * n if fallback is None else list(batch[fallback]), dtype=object)
        column[parsed] = decoded[name]
        out[name] = column
    return out


# -- 3. score -----------------------------------------------------------------------------------


class ScoreActor:
    """The scoring actor: holds one :class:`ScorerModel` (loaded once, on the actor's device)."""

    def __init__(self, model_config: Any, max_original_bytes: int = DEFAULT_MAX_ORIGINAL_BYTES) -> None:
        self.scorer = ScorerModel(model_config).setup()
        self.max_original_bytes = max_original_bytes

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return score_decoded(batch, self.scorer, self.max_original_bytes)


def score_decoded(
    batch: Mapping[str, np.ndarray], scorer: ScorerModel, max_original_bytes: int = DEFAULT_MAX_ORIGINAL_BYTES
) -> dict[str, np.ndarray]:
    """Score the decoded rows, dead-letter the failed ones: one output row per input row.

    A dead letter carries at most ``max_original_bytes`` of the original key and value
    (``output.dead_letter_max_original_bytes``); beyond that their size and hash."""
    n = len(batch["uri"])
    messages: list[ScoreEvent | DeadLetter | None] = [None] * n
    infer_ms = np.zeros(n, np.float64)
    scores = {name: np.full(n, np.nan) for name in SCORE_COLUMNS}
    groups: dict[tuple[str, bool], list[int]] = {}
    for i in range(n):
        kind = str(batch["error_kind"][i])
        if kind:
            messages[i] = _dead_letter(batch, i, ErrorKind(kind), str(batch["error"][i]), max_original_bytes)
        else:
            groups.setdefault((str(batch["dimensions"][i]), bool(batch["want_rationale"][i])), []).append(i)
    for (dims, want_rationale), rows in groups.items():
        dimensions = [Dimension(d) for d in dims.split(",")]
        started = time.perf_counter()
        results = scorer.score_clips(clips_from_batch(batch, rows), dimensions, rationale=want_rationale)
        per_video = (time.perf_counter() - started) * 1000 / len(rows)
        for i, result in zip(rows, results, strict=True):
            infer_ms[i] = per_video
            if isinstance(result, ProcessingError):  # a fault of ours: dead-lettered, the batch goes on
                messages[i] = _dead_letter(batch, i, result.kind, result.message, max_original_bytes)
                continue
            try:
                messages[i] = _score_event(batch, i, scorer.model_ref, result, per_video)
            except ValueError as exc:  # e.g. a score event that fails its own validation
                messages[i] = _dead_letter(
                    batch, i, ErrorKind.INTERNAL, f"invalid score event: {exc}", max_original_bytes
                )
                continue
            for dim, value in result.items():
                scores[f"score_{dim.value}"][i] = value.score
    return _output_rows(batch, messages, infer_ms, scores)


def _score_event(batch, i: int, model: ModelRef, scores: VideoScores, infer_ms: float) -> ScoreEvent:
    meta = json.loads(batch["decode"][i])
    decode_ms = float(batch["decode_ms"][i])
    return score_event(
        video_id=str(batch["video_id"][i]),
        uri=str(batch["uri"][i]),
        model=model,
        scores=scores,
        decode=DecodeInfo(
            frames=meta["num_frames"],
            duration_s=meta["duration_s"],
            width=meta["width"],
            height=meta["height"],
            fps=meta["fps"],
        ),  # fmt: skip
        decode_ms=decode_ms,
        infer_ms=infer_ms,
        total_ms=decode_ms + infer_ms,
    )


def _dead_letter(batch, i: int, kind: ErrorKind, message: str, cap: int) -> DeadLetter:
    key = batch["key"][i]
    key = bytes(key) if key is not None else None
    value = bytes(batch["value"][i]) if batch["value"][i] is not None else b""
    topic = str(batch["topic"][i])
    if topic:
        record = ConsumedRecord(key, value, topic, int(batch["partition"][i]), int(batch["offset"][i]))
        return dead_letter_for(record, kind, message, max_original_bytes=cap)
    return dead_letter_for_input(
        key=key, value=value, kind=kind, message=message, path=str(batch["source_path"][i]), max_original_bytes=cap
    )


def _output_rows(
    batch, messages: list, infer_ms: np.ndarray, scores: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    n = len(messages)
    status: list[str] = []
    kinds: list[str] = []
    errors: list[str] = []
    keys: list[bytes | None] = []
    for i, message in enumerate(messages):
        if isinstance(message, ScoreEvent):
            status.append("scored")
            kinds.append("")
            errors.append("")
            keys.append(encode_key(message.video_id))
        else:
            status.append("dead_letter")
            kinds.append(message.error_kind.value)
            errors.append(message.error)
            key = batch["key"][i]
            keys.append(bytes(key) if key is not None else None)
    return {
        "video_id": _objects(batch["video_id"]), "uri": _objects(batch["uri"]),
        "status": _objects(status), "error_kind": _objects(kinds), "error": _objects(errors),
        "out_key": _objects(keys), "message": _objects([m.to_bytes() for m in messages]),
        "topic": _objects(batch["topic"]), "partition": np.asarray(batch["partition"], np.int64),
        "offset": np.asarray(batch["offset"], np.int64), "source_path": _objects(batch["source_path"]),
        "decode_ms": np.asarray(batch.get("decode_ms", np.zeros(n)), np.float64), "infer_ms": infer_ms,
        **scores,
    }  # fmt: skip


def _objects(values: Any) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out
