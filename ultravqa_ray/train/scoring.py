"""Batch scoring of decoded rows in a Ray Data actor pool (the reference pass and evaluation).

Each actor loads the model once (``ScorerModel.setup()`` in ``__init__``) and maps a batch of
decoded rows to ``video_id`` and ``probs`` ``(V, D, K)`` float32: pi(s | video, dimension) read out
by the one-pass scorer of DESIGN.md section 3, dimensions in DIMENSIONS order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ultravqa_ray.model.config import ModelConfig


class BatchScorer:
    """Ray Data callable class: decoded rows -> score distributions."""

    def __init__(self, model: ModelConfig) -> None:
        from ultravqa_ray.model.scorer import ScorerModel

        self.scorer = ScorerModel(model).setup()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        frames = list(batch["frames"])
        probs = self.scorer.score_log_probs(frames).exp().numpy().astype(np.float32)
        return {"video_id": np.asarray(batch["video_id"]), "probs": probs}


def score_dataset(
    dataset: Any, model: ModelConfig, *, actors: int, batch_size: int, cpus: float, gpus: float
) -> dict[str, np.ndarray]:
    """``video_id -> (D, K)`` probabilities for every row of a decoded dataset."""
    scored = dataset.map_batches(
        BatchScorer,
        fn_constructor_kwargs={"model": model},
        batch_size=batch_size,
        batch_format="numpy",
        concurrency=actors,
        num_cpus=cpus,
        num_gpus=gpus,
    )
    out: dict[str, np.ndarray] = {}
    for batch in scored.iter_batches(batch_size=256, batch_format="numpy"):
        for vid, probs in zip(batch["video_id"], batch["probs"], strict=True):
            out[str(vid)] = np.asarray(probs, dtype=np.float32)
    return out
