"""The Scorer deployment (model in the replica, ``@serve.batch`` inference) and the optional Decoder.

A request is one upload event (:meth:`Scorer.score`: the HTTP route) or a list of them
(:meth:`Scorer.score_many`: the Kafka bridge's chunks, one Serve request for several uploads).
The Scorer decodes each (in its pool of worker processes or threads, :mod:`.decode_pool`, so many
decodes overlap while the model runs; or, with ``decode_in: decoder``, by calling the separate CPU
Decoder deployment), then awaits :meth:`Scorer.infer`, a ``@serve.batch`` method that scores up to
``max_batch_size`` decoded videos in one forward. Batch size and wait time come from the
deployment's ``user_config`` through :meth:`Scorer.reconfigure`, so editing them in the YAML
retunes live replicas without a restart.

Model swap: the ``user_config`` also names the model (``model``; unset: the application's
``args.model``). :meth:`Scorer.reconfigure` with a new reference loads it beside the model in
service, in a thread (requests and health checks go on), then switches between batches: a batch in
progress finishes on the old model, and every score event names the model that scored its batch.
A load that fails (missing folder, corrupted or non-safetensors weights, ...) keeps the old model
serving, logs the reason, counts it (``ultravqa_model_swaps_total{outcome="failed"}``) and shows it
in :meth:`Scorer.model_status`; the replica stays healthy. ``reconfigure`` returns once the swap is
done or refused, so Serve reports the deployment HEALTHY again only when every replica has decided.

Health: :meth:`Scorer.check_health` fails when the model is not loaded; Serve then replaces the
replica (a replica that stops answering altogether fails the check by timing out). Drain: on
shutdown Serve stops routing to the replica and waits up to ``graceful_shutdown_timeout_s`` for
ongoing requests; anything cut off is retried by the caller (the Kafka bridge re-sends, and never
commits an unanswered record).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from typing import NamedTuple

import torch
from ray import serve

from connectors.wire.errors import ErrorKind, ProcessingError
from connectors.wire.messages import ModelRef, UploadEvent
from ultravqa_ray.model import VideoScores
from ultravqa_ray.serve.config import ScorerUserConfig, ServeConfig
from ultravqa_ray.serve.decode_pool import DecodePool
from ultravqa_ray.serve.metrics import ScoringMetrics
from ultravqa_ray.serve.models import expected_decode, loadable_model
from ultravqa_ray.serve.outcome import ScoreOutcome
from ultravqa_ray.serve.scoring import InferItem, ReplicaScorer
from ultravqa_ray.serve.uploads import TempVideo
from ultravqa_ray.video import DecodeConfig, VideoClip

log = logging.getLogger(__name__)


class _Decoded(NamedTuple):
    """One upload after the decode step: its frames or the input error, and when it arrived."""

    upload: UploadEvent
    decoded: VideoClip | ProcessingError
    received: float  # time.perf_counter()
    decode_ms: float


@serve.deployment(name="Scorer")
class Scorer:
    def __init__(self, config: ServeConfig, decoder=None) -> None:
        self._config = config
        self._replica = ReplicaScorer(config)
        self._decoder = decoder  # a DeploymentHandle of Decoder, or None: decode here
        self._decoding = None if decoder else _decode_pool(config, self._replica.decode_config, self._replica.storage_kwargs)
        self._metrics = ScoringMetrics("scorer", in_replica=True)
        self._batching = ScorerUserConfig()
        self._forwards = 0
        self._batched = 0
        self._swap_lock = asyncio.Lock()
        self._swaps = {"done": 0, "failed": 0}
        self._last_swap: dict | None = None

    async def reconfigure(self, user_config: dict) -> None:
        settings = ScorerUserConfig.model_validate(user_config or {})
        self.infer.set_max_batch_size(settings.max_batch_size)  # type: ignore[attr-defined]  # @serve.batch
        self.infer.set_batch_wait_timeout_s(settings.batch_wait_timeout_s)  # type: ignore[attr-defined]
        self._batching = settings
        log.info("batching: max %d videos, wait %.3fs", settings.max_batch_size, settings.batch_wait_timeout_s)
        if settings.model is not None and settings.model != self._replica.model_name:
            await self._swap(settings.model)

    async def _swap(self, model: str) -> None:
        """Load ``model`` in a thread beside the one in service, then switch (see the module docstring)."""
        async with self._swap_lock:
            old = self._replica.model_name
            if model == old:
                return
            started = time.perf_counter()
            try:
                loaded = await asyncio.get_running_loop().run_in_executor(None, self._replica.load, model)
            except Exception as exc:  # any failure of the load keeps the old model: never an unhealthy replica
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())
                self._swaps["failed"] += 1
                self._metrics.record_swap("failed")
                self._last_swap = {"to": model, "ok": False, "error": reason, "load_s": time.perf_counter() - started}
                log.error("model swap to %s refused, still serving %s: %s", model, old, reason)
                return
            self._replica.use(loaded, model)
            self._swaps["done"] += 1
            self._metrics.record_swap("done")
            self._last_swap = {"to": model, "ok": True, "error": None, "load_s": time.perf_counter() - started}
            log.info("model swapped from %s to %s (%s) in %.2fs", old, model, loaded.model_ref.revision[:12],
                     time.perf_counter() - started)  # fmt: skip

    def model_status(self) -> dict:
        """The model in service on this replica, and how the last swap went (operators, ``serve-swap``)."""
        return {
            "replica": serve.get_replica_context().replica_tag,
            "model": self._replica.model.model_ref.model_dump(),
            "configured": self._replica.model_name,
            "swaps": dict(self._swaps),
            "last_swap": self._last_swap,
        }

    async def check_health(self) -> None:
        if not self._replica.model.is_setup:
            raise RuntimeError("the scorer model is not loaded")

    def model_ref(self) -> dict:
        return self._replica.model.model_ref.model_dump()

    def stats(self) -> dict:
        """This replica's batching settings, counts, torch threads and decode pool (tests and operators)."""
        return {
            "replica": serve.get_replica_context().replica_tag,
            **self._batching.model_dump(),
            "forwards": self._forwards,
            "videos": self._batched,
            "torch_threads": torch.get_num_threads(),
            "decode_pool": None if self._decoding is None else self._decoding.kind,
            "decode_workers": None if self._decoding is None else self._decoding.workers,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        }

    async def score(self, upload: UploadEvent) -> ScoreOutcome:
        """Decode and score one upload; bad inputs come back as a failed outcome, never raised."""
        return await self._infer_one(await self._decode_one(upload))

    async def score_bytes(self, data: bytes, upload: UploadEvent) -> ScoreOutcome:
        """Decode and score a video posted as bytes (the HTTP route spooled and bounded them): the
        bytes go to a private temporary file, decoded as a URI's would be; ``upload.uri`` names it."""
        received = time.perf_counter()
        try:
            if self._decoder is not None:
                result = await self._decoder.decode_bytes.remote(data, upload.uri)
                if isinstance(result, ProcessingError):
                    raise result
                decoded: VideoClip | ProcessingError = result
            else:
                assert self._decoding is not None  # decoding here when there is no Decoder
                with TempVideo(data) as path:
                    decoded = await self._within_timeout(upload, self._decoding.decode(path, local_name=upload.uri))
        except ProcessingError as exc:
            decoded = exc
        return await self._infer_one(_Decoded(upload, decoded, received, (time.perf_counter() - received) * 1000))

    async def score_many(self, uploads: list[UploadEvent]) -> list[ScoreOutcome]:
        """Score several uploads in one request (the Kafka bridge's chunks): one outcome each, in order.

        One request instead of one per upload spares Serve's per-request cost (routing, pickling,
        queueing), which is most of the work for a small model. All decodes run first, so the
        videos reach :meth:`infer` together and share forwards.
        """
        decoded = await asyncio.gather(*(self._decode_one(upload) for upload in uploads))
        return list(await asyncio.gather(*(self._infer_one(step) for step in decoded)))

    async def _decode_one(self, upload: UploadEvent) -> _Decoded:
        received = time.perf_counter()
        try:
            decoded: VideoClip | ProcessingError = await self._decode(upload)
        except ProcessingError as exc:
            decoded = exc
        return _Decoded(upload, decoded, received, (time.perf_counter() - received) * 1000)

    async def _infer_one(self, step: _Decoded) -> ScoreOutcome:
        upload, decoded, received, decode_ms = step
        if isinstance(decoded, ProcessingError):
            self._metrics.record_failed(decoded.kind)
            return ScoreOutcome.failed(decoded)
        t0 = time.perf_counter()
        scores, model = await self.infer(InferItem(decoded, upload.requested_dimensions(), upload.want_rationale))
        if isinstance(scores, ProcessingError):
            self._metrics.record_failed(scores.kind)
            return ScoreOutcome.failed(scores)
        event = self._replica.event(
            upload, decoded, scores, decode_ms=decode_ms, infer_ms=(time.perf_counter() - t0) * 1000,
            received=received, model=model,
        )  # fmt: skip
        self._metrics.record_scored(event.timings_ms.total)
        return ScoreOutcome(event=event)

    async def _decode(self, upload: UploadEvent) -> VideoClip:
        if self._decoder is not None:
            result = await self._decoder.decode.remote(upload.uri)
            if isinstance(result, ProcessingError):
                raise result
            return result
        assert self._decoding is not None  # decoding here when there is no Decoder
        return await self._within_timeout(upload, self._decoding.decode(upload.uri))

    async def _within_timeout(self, upload: UploadEvent, decoding) -> VideoClip:
        try:
            return await asyncio.wait_for(decoding, self._config.decode_timeout_s)
        except TimeoutError:
            raise ProcessingError(
                ErrorKind.TIMEOUT, f"{upload.uri}: decoding took longer than {self._config.decode_timeout_s}s"
            ) from None

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def infer(self, items: list[InferItem]) -> list[tuple[VideoScores | ProcessingError, ModelRef]]:
        """Score a batch of decoded videos in one forward (in a thread: the event loop stays free);
        each result comes with the model that scored the batch (one model a batch, even mid-swap)."""
        self._forwards += 1
        self._batched += len(items)
        model, results = await asyncio.get_running_loop().run_in_executor(None, self._replica.infer_batch, items)
        return [(result, model) for result in results]

    def __del__(self) -> None:
        decoding = getattr(self, "_decoding", None)
        if decoding is not None:
            decoding.close()


def _decode_pool(config: ServeConfig, decode: DecodeConfig, storage_kwargs: dict) -> DecodePool:
    """The replica's decode pool; unset ``decode_workers``: a process per CPU the replica reserved
    (at least one), or Python's default thread count."""
    workers = config.decode_workers
    if workers is None and config.decode_pool == "processes":
        import ray

        workers = max(1, math.ceil(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
    return DecodePool(config.decode_pool, workers, decode, storage_kwargs)


@serve.deployment(name="Decoder")
class Decoder:
    """Decoding as its own CPU deployment (``decode_in: decoder``): ships frames to the Scorer."""

    def __init__(self, config: ServeConfig) -> None:
        decode: DecodeConfig = config.decode or expected_decode(loadable_model(config))
        self._decoding = _decode_pool(config, decode, config.storage.open_kwargs())

    async def decode(self, uri: str) -> VideoClip | ProcessingError:
        try:
            return await self._decoding.decode(uri)
        except ProcessingError as exc:
            return exc

    async def decode_bytes(self, data: bytes, name: str) -> VideoClip | ProcessingError:
        """Decode a video posted as bytes (:meth:`Scorer.score_bytes`), from a private temporary file."""
        try:
            with TempVideo(data) as path:
                return await self._decoding.decode(path, local_name=name)
        except ProcessingError as exc:
            return exc

    def __del__(self) -> None:
        decoding = getattr(self, "_decoding", None)
        if decoding is not None:
            decoding.close()
