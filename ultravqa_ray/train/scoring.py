"""Score distributions of decoded rows in a Ray Data actor pool (the reference pass and evaluation).

Each actor loads the model once (``ScorerModel.setup()`` in ``__init__``) and maps a batch of
decoded rows (the clip record's columns, :data:`ultravqa_ray.train.data.CLIP_COLUMNS`) to
``video_id``, ``probs`` ``(V, D, K)`` float32 (pi(s | clip, dimension) from
:meth:`ScorerModel.score_clips`, dimensions in DIMENSIONS order) and ``error`` (``""`` when scored).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from connectors.wire.dimensions import DIMENSIONS
from connectors.wire.errors import ProcessingError
from ultravqa_ray.model.config import ModelConfig
from ultravqa_ray.model.store import forwarded_env
from ultravqa_ray.video.clip import clips_from_batch

log = logging.getLogger(__name__)


class DistributionScorer:
    """Ray Data callable class: decoded rows -> score distributions (or the reason there are none)."""

    def __init__(self, model: ModelConfig) -> None:
        from ultravqa_ray.model.scorer import ScorerModel

        self.scorer = ScorerModel(model).setup()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.scorer.score_clips(clips_from_batch(batch), DIMENSIONS)
        k = self.scorer.k
        probs = np.full((len(results), len(DIMENSIONS), k), np.nan, np.float32)
        errors = np.asarray([""] * len(results), dtype=object)
        for i, result in enumerate(results):
            if isinstance(result, ProcessingError):
                errors[i] = str(result)
            else:
                probs[i] = [result[d].probs for d in DIMENSIONS]
        return {"video_id": np.asarray(batch["video_id"]), "probs": probs, "error": errors}


def score_dataset(
    dataset: Any, model: ModelConfig, *, actors: int, batch_size: int, cpus: float, gpus: float
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``video_id -> (D, K)`` probabilities of every row of a decoded dataset the model scored, and
    ``video_id -> error`` of the rows it failed on."""
    env = forwarded_env()  # an s3:// model: the actors fetch it through the driver's endpoint and cache
    scored = dataset.map_batches(
        DistributionScorer,
        fn_constructor_kwargs={"model": model},
        runtime_env={"env_vars": env} if env else None,
        batch_size=batch_size,
        batch_format="numpy",
        concurrency=actors,
        num_cpus=cpus,
        num_gpus=gpus,
    )
    out: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    for batch in scored.iter_batches(batch_size=256, batch_format="numpy"):
        for vid, probs, error in zip(batch["video_id"], batch["probs"], batch["error"], strict=True):
            if error:
                failed[str(vid)] = str(error)
            else:
                out[str(vid)] = np.asarray(probs, dtype=np.float32)
    if failed:
        log.warning("the model failed on %d videos (e.g. %s)", len(failed), next(iter(failed.items())))
    return out, failed
