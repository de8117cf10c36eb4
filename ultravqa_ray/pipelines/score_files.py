"""Score local paths or URIs: one JSON line per input, a score event or an error line.

The library side of ``ultravqa-ray score``. Every input ends as exactly one line, in input order:

- a :class:`~connectors.wire.messages.ScoreEvent` (``video_id``: the input's file name, extension
  kept, by the one rule of :func:`connectors.uris.video_id_for`), or
- ``{"uri": ..., "error_kind": ..., "error": ...}`` when the input could not be decoded or scored.

A bad input never stops the run; only a model that cannot be loaded does (the caller's concern).
Videos are decoded one by one and scored ``model_config.max_videos_per_forward`` at a time, all
dimensions in one pass; ``timings_ms.infer`` is a video's share of its batch's model time.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from connectors.uris import video_id_for
from connectors.wire.dimensions import DIMENSIONS, Dimension
from connectors.wire.errors import ErrorKind, ProcessingError
from connectors.wire.messages import ScoreEvent
from ultravqa_ray.events import decode_info, score_event
from ultravqa_ray.model import ModelConfig, ScorerModel
from ultravqa_ray.video import DecodeConfig, VideoClip, decode_uri

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreSummary:
    inputs: int
    scored: int
    failed: int
    seconds: float


def error_line(uri: str, kind: ErrorKind | str, message: str) -> dict[str, str]:
    return {"uri": uri, "error_kind": ErrorKind(kind).value, "error": message}


def score_inputs(
    inputs: Iterable[str],
    model_config: ModelConfig | ScorerModel,
    decode_config: DecodeConfig,
    out: TextIO,
    *,
    dimensions: Sequence[Dimension] = DIMENSIONS,
    want_rationale: bool = False,
) -> ScoreSummary:
    """Decode and score every input, writing one JSON line per input to ``out``.

    ``model_config`` may be a set-up :class:`ScorerModel` to reuse. Raises only when the model
    cannot be loaded.
    """
    started = time.perf_counter()
    scorer = model_config if isinstance(model_config, ScorerModel) else ScorerModel(model_config)
    scorer.setup()
    batch_size = scorer.config.max_videos_per_forward
    pending: list[tuple[str, VideoClip, float]] = []
    counts = {"inputs": 0, "scored": 0, "failed": 0}

    def write(line: dict[str, Any] | ScoreEvent) -> None:
        text = line.model_dump_json(exclude_none=True) if isinstance(line, ScoreEvent) else json.dumps(line)
        out.write(text + "\n")
        out.flush()
        counts["scored" if isinstance(line, ScoreEvent) else "failed"] += 1

    def flush() -> None:
        if not pending:
            return
        for line in _score_batch(scorer, pending, dimensions, want_rationale):
            write(line)
        pending.clear()

    for uri in inputs:
        counts["inputs"] += 1
        t0 = time.perf_counter()
        try:
            decoded = decode_uri(uri, decode_config)
        except ProcessingError as exc:
            flush()  # keep the output in input order
            write(error_line(uri, exc.kind, exc.message))
            continue
        pending.append((uri, decoded, (time.perf_counter() - t0) * 1000))
        if len(pending) >= batch_size:
            flush()
    flush()
    summary = ScoreSummary(seconds=time.perf_counter() - started, **counts)
    log.debug("scored %d of %d inputs (%d failed) in %.1fs", summary.scored, summary.inputs, summary.failed,
             summary.seconds)  # fmt: skip
    return summary


def _score_batch(
    scorer: ScorerModel,
    pending: Sequence[tuple[str, VideoClip, float]],
    dimensions: Sequence[Dimension],
    want_rationale: bool,
) -> list[dict[str, Any] | ScoreEvent]:
    t0 = time.perf_counter()
    results = scorer.score_clips([clip for _, clip, _ in pending], dimensions, rationale=want_rationale)
    infer_ms = (time.perf_counter() - t0) * 1000 / len(pending)
    lines: list[dict[str, Any] | ScoreEvent] = []
    for (uri, decoded, decode_ms), scores in zip(pending, results, strict=True):
        if isinstance(scores, ProcessingError):  # a fault of ours, not of the input: said per input
            lines.append(error_line(uri, scores.kind, scores.message))
            continue
        try:
            lines.append(
                score_event(
                    video_id=video_id_for(uri),
                    uri=uri,
                    model=scorer.model_ref,
                    scores=scores,
                    decode=decode_info(decoded),
                    decode_ms=decode_ms,
                    infer_ms=infer_ms,
                    total_ms=decode_ms + infer_ms,
                )
            )
        except ValueError as exc:  # e.g. a URI too long to be a video_id
            lines.append(
                error_line(uri, ErrorKind.INVALID_MESSAGE, f"cannot report {uri}: {exc}".splitlines()[0])
            )
    return lines
