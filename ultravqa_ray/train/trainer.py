"""Ray Train plumbing shared by every objective: ``fit(TrainConfig) -> TrainResult``.

Builds the decoded dataset on the driver (:mod:`ultravqa_ray.train.data`), then a ``TorchTrainer``
with one worker per data-parallel replica (CPU + gloo or GPU + NCCL), ``FailureConfig`` restarts
after a worker dies (the loop resumes from the latest reported checkpoint), and the run's latest
checkpoint on storage as the starting point of a re-submitted job with the same
``output_dir/run_name`` (passed to the workers in the loop config: Ray Train v2 retired
``resume_from_checkpoint``).
The result names the final Hugging Face model folder.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ultravqa_ray.train.checkpoint import MODEL_DIR, latest_checkpoint
from ultravqa_ray.train.config import TrainConfig
from ultravqa_ray.train.data import IngestReport, build_dataset
from ultravqa_ray.train.session import train_loop_per_worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    model_dir: str  # the final checkpoint's Hugging Face folder
    checkpoint: str
    metrics: dict[str, Any]  # the last epoch's metrics
    ingest: IngestReport
    wall_s: float
    history: list[dict[str, Any]] = field(default_factory=list)


def ensure_ray() -> None:
    """Join the cluster of ``ray job submit`` / ``RAY_ADDRESS``, or start a local Ray."""
    import ray

    if not ray.is_initialized():
        ray.init(log_to_driver=os.environ.get("ULTRAVQA_RAY_QUIET") != "1")


def _storage_path(config: TrainConfig) -> str:
    return config.output_dir if "://" in config.output_dir else str(Path(config.output_dir).resolve())


def fit(config: TrainConfig) -> TrainResult:
    """Run one training job to completion and return where its model is."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    ensure_ray()
    started = time.perf_counter()
    dataset, ingest = build_dataset(config.data, k=config.model.k, model=config.model)
    log.info("train %s: %s", config.objective, ingest.summary())
    resume = None
    if config.resume and "://" not in config.output_dir:
        found = latest_checkpoint(Path(_storage_path(config)) / config.run_name)
        if found is not None:
            log.info("resuming %s from %s", config.run_name, found)
            resume = str(found)
    resources = {"CPU": config.cpus_per_worker, **config.worker_resources} | ({"GPU": 1} if config.use_gpu else {})
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": config.model_dump(mode="json"), "n_rows": ingest.n_ok, "resume_from": resume},
        torch_config=TorchConfig(backend="nccl" if config.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=config.workers, use_gpu=config.use_gpu, resources_per_worker=resources
        ),
        run_config=RunConfig(
            name=config.run_name,
            storage_path=_storage_path(config),
            failure_config=FailureConfig(max_failures=config.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=config.keep_checkpoints),
        ),
        datasets={"train": dataset},
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training run {config.run_name} ended without a checkpoint")
    path = result.checkpoint.path
    return TrainResult(
        model_dir=f"{path.rstrip('/')}/{MODEL_DIR}",
        checkpoint=path,
        metrics=dict(result.metrics or {}),
        ingest=ingest,
        wall_s=time.perf_counter() - started,
    )
