"""Decode and score inside a replica: the pieces the Scorer deployment is made of, Serve-free.

:class:`ReplicaScorer` owns the model and the decode settings. ``decode`` turns an upload into
frames (or a :class:`ProcessingError`); ``infer`` scores a batch of decoded videos, grouping those
that ask for the same dimensions, so one failure of the model fails only its group. Keeping this
apart from the Serve class lets the benchmark run the very same code in a plain loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from connectors.wire.dimensions import Dimension
from connectors.wire.errors import ProcessingError
from connectors.wire.messages import ScoreEvent, UploadEvent
from ultravqa_ray.events import decode_info, score_event
from ultravqa_ray.model import ModelConfig, ScorerModel, VideoScores
from ultravqa_ray.model.store import is_remote
from ultravqa_ray.serve.config import ServeConfig
from ultravqa_ray.serve.models import expected_decode, loadable_model
from ultravqa_ray.video import DecodeConfig, VideoClip, decode_uri

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferItem:
    """One decoded video waiting for the model, with what it asked for."""

    decoded: VideoClip
    dimensions: tuple[Dimension, ...]
    want_rationale: bool


class ReplicaScorer:
    """The model, set up once, and the decode settings it expects."""

    def __init__(self, config: ServeConfig) -> None:
        if config.torch_threads is not None:
            import torch

            torch.set_num_threads(config.torch_threads)
        name_or_path = loadable_model(config)  # a folder or hub name: serving never builds a model
        self.decode_config: DecodeConfig = config.decode or expected_decode(name_or_path)
        self.storage_kwargs = config.storage.open_kwargs()
        self.model = ScorerModel(
            ModelConfig(
                name_or_path=config.model if is_remote(config.model) else name_or_path,  # events name the URI
                device=config.device,
                dtype=config.dtype,
                max_videos_per_forward=config.max_videos_per_forward,
            )
        ).setup()
        if not config.storage.allow:
            log.warning("no storage allow-list configured: every readable URI is admitted (development only)")

    def decode(self, upload: UploadEvent) -> VideoClip:
        """Frames of the upload's video; raises :class:`ProcessingError` only."""
        return decode_uri(upload.uri, self.decode_config, **self.storage_kwargs)

    def infer(self, items: Sequence[InferItem]) -> list[VideoScores | ProcessingError]:
        """Score a batch; one result per item, in order (an error for a group the model failed on)."""
        results: list[VideoScores | ProcessingError | None] = [None] * len(items)
        groups: dict[tuple, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault((item.dimensions, item.want_rationale), []).append(i)
        for (dimensions, want_rationale), members in groups.items():
            scores = self.model.score_clips([items[i].decoded for i in members], dimensions, rationale=want_rationale)
            for i, result in zip(members, scores, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    def event(
        self,
        upload: UploadEvent,
        decoded: VideoClip,
        scores: VideoScores,
        *,
        decode_ms: float,
        infer_ms: float,
        received: float,
    ) -> ScoreEvent:
        """The score event of one scored upload (``received``: its ``time.perf_counter()``)."""
        return score_event(
            video_id=upload.video_id,
            uri=upload.uri,
            model=self.model.model_ref,
            scores=scores,
            decode=decode_info(decoded),
            decode_ms=decode_ms,
            infer_ms=infer_ms,
            total_ms=(time.perf_counter() - received) * 1000,
        )
