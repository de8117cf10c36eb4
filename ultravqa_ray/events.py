"""Build the score event of one scored video: written once for the CLI, batch scoring and serving."""

from __future__ import annotations

from connectors.wire.messages import DecodeInfo, ModelRef, ScoreEvent, Timings
from ultravqa_ray.model.scorer import VideoScores
from ultravqa_ray.video import DecodedVideo


def decode_info(decoded: DecodedVideo) -> DecodeInfo:
    """What the decoder saw, as the score event reports it."""
    return DecodeInfo(
        frames=int(decoded.frames.shape[0]),
        duration_s=decoded.duration_s,
        width=decoded.width,
        height=decoded.height,
        fps=decoded.fps,
    )


def score_event(
    *,
    video_id: str,
    uri: str,
    model: ModelRef,
    scores: VideoScores,
    decode: DecodeInfo,
    decode_ms: float,
    infer_ms: float,
    total_ms: float,
) -> ScoreEvent:
    return ScoreEvent(
        video_id=video_id,
        uri=uri,
        model=model,
        scores=dict(scores.items()),
        rationale=scores.rationale,
        decode=decode,
        timings_ms=Timings(decode=decode_ms, infer=infer_ms, total=total_ms),
    )
