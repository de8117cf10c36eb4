"""Decode and score inside a replica: the pieces the Scorer deployment is made of, Serve-free.

:class:`ReplicaScorer` owns the model and the decode settings. ``decode`` turns an upload into
frames (or a :class:`ProcessingError`); ``infer`` scores a batch of decoded videos, grouping those
that ask for the same dimensions, so one failure of the model fails only its group. Keeping this
apart from the Serve class lets the benchmark run the very same code in a plain loop.

Model swap: :meth:`ReplicaScorer.load` builds another model beside the one serving (it touches
nothing the batches use, so it runs in a thread while they go on), :meth:`ReplicaScorer.use` puts it
in service with one reference assignment. A batch takes the model once, when it starts
(:meth:`ReplicaScorer.infer_batch`), so a batch in progress finishes on the model it began with and
its events name that model; the old model is freed when its last batch lets go of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from connectors.wire.dimensions import Dimension
from connectors.wire.errors import ProcessingError
from connectors.wire.messages import ModelRef, ScoreEvent, UploadEvent
from ultravqa_ray.events import decode_info, score_event
from ultravqa_ray.model import ModelConfig, ScorerModel, VideoScores
from ultravqa_ray.model.folder import model_folder
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
        self._config = config
        name_or_path = loadable_model(config)  # a folder or hub name: serving never builds a model
        self.decode_config: DecodeConfig = config.decode or expected_decode(name_or_path)
        self.storage_kwargs = config.storage.open_kwargs()
        self.model: ScorerModel = self._load(config.model)
        self.model_name = config.model  # the reference it was configured with (user_config compares it)
        if not config.storage.allow:
            log.warning("no storage allow-list configured: every readable URI is admitted (development only)")

    def load(self, model: str) -> ScorerModel:
        """Load ``model`` (folder, ``s3://``/``gs://`` folder or hub name) with this replica's device,
        dtype and chunking, beside the model in service; raises on any failure, changes nothing."""
        loaded = self._load(model)
        if expected_decode(model_folder(model)) != self.decode_config:
            log.warning(
                "%s was trained with other decode settings than this application's (%s); it is served with "
                "the application's: redeploy args.decode to change them", model, self.decode_config,
            )  # fmt: skip
        return loaded

    def _load(self, model: str) -> ScorerModel:
        name_or_path = loadable_model(self._config.model_copy(update={"model": model}))
        return ScorerModel(
            ModelConfig(
                name_or_path=model if is_remote(model) else name_or_path,  # events name the URI
                device=self._config.device,
                dtype=self._config.dtype,
                max_videos_per_forward=self._config.max_videos_per_forward,
            )
        ).setup()

    def use(self, model: ScorerModel, name: str) -> None:
        """Put a loaded model in service: the next batch uses it (one assignment, atomic)."""
        self.model, self.model_name = model, name

    def decode(self, upload: UploadEvent) -> VideoClip:
        """Frames of the upload's video; raises :class:`ProcessingError` only."""
        return decode_uri(upload.uri, self.decode_config, **self.storage_kwargs)

    def infer(self, items: Sequence[InferItem]) -> list[VideoScores | ProcessingError]:
        """Score a batch; one result per item, in order (an error for a group the model failed on)."""
        return self.infer_batch(items)[1]

    def infer_batch(self, items: Sequence[InferItem]) -> tuple[ModelRef, list[VideoScores | ProcessingError]]:
        """:meth:`infer`, and the reference of the model that scored the batch (taken once, at the start)."""
        model = self.model  # a swap during this batch changes self.model, not this one
        results: list[VideoScores | ProcessingError | None] = [None] * len(items)
        groups: dict[tuple, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault((item.dimensions, item.want_rationale), []).append(i)
        for (dimensions, want_rationale), members in groups.items():
            scores = model.score_clips([items[i].decoded for i in members], dimensions, rationale=want_rationale)
            for i, result in zip(members, scores, strict=True):
                results[i] = result
        return model.model_ref, [r for r in results if r is not None]

    def event(
        self,
        upload: UploadEvent,
        decoded: VideoClip,
        scores: VideoScores,
        *,
        decode_ms: float,
        infer_ms: float,
        received: float,
        model: ModelRef | None = None,
    ) -> ScoreEvent:
        """The score event of one scored upload (``received``: its ``time.perf_counter()``; ``model``:
        the model that scored it, default the one in service)."""
        return score_event(
            video_id=upload.video_id,
            uri=upload.uri,
            model=model or self.model.model_ref,
            scores=scores,
            decode=decode_info(decoded),
            decode_ms=decode_ms,
            infer_ms=infer_ms,
            total_ms=(time.perf_counter() - received) * 1000,
        )
