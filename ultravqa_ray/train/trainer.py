"""Ray Train plumbing shared by every objective: ``fit(TrainConfig) -> TrainResult``.

Builds the decoded dataset on the driver (:mod:`ultravqa_ray.train.data`), then a ``TorchTrainer``
with one worker per data-parallel replica (CPU + gloo or GPU + NCCL), ``FailureConfig`` restarts
after a worker dies (the loop resumes from the latest reported checkpoint), and the run's latest
checkpoint on storage as the starting point of a re-submitted job with the same
``output_dir/run_name`` (passed to the workers in the loop config: Ray Train v2 retired
``resume_from_checkpoint``).
The result names the final Hugging Face model folder.

Before anything starts, :func:`~ultravqa_ray.train.resources.plan_resources` checks the workers and
the data pipeline against the cluster (lowering the default per-worker CPUs, or refusing in one
line), and a :class:`~ultravqa_ray.train.watchdog.Watchdog` fails a run whose decode or training
stage makes no progress for ``stall_timeout_s``, naming the stage.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ultravqa_ray.train.checkpoint import MODEL_DIR, latest_checkpoint, latest_checkpoint_uri
from ultravqa_ray.train.config import TrainConfig
from ultravqa_ray.train.data import IngestReport, build_dataset
from ultravqa_ray.train.resources import wait_and_plan
from ultravqa_ray.train.session import train_loop_per_worker
from ultravqa_ray.train.watchdog import Watchdog, start_board

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
    import ray

    ensure_ray()
    plan = wait_and_plan(config, ray.cluster_resources)
    if plan.note:
        log.warning("train %s: %s", config.objective, plan.note)
    started = time.perf_counter()
    board = start_board() if config.stall_timeout_s is not None else None
    with Watchdog(config.stall_timeout_s, f"train {config.objective}", board) as watchdog:
        data = config.data
        cache_root = Path(data.cache_dir) if data.cache_dir else Path(data.manifest).resolve().parent / ".decoded"
        watchdog.stage("decoding the videos into the frame cache (Ray Data)", probe=lambda: _tree_signature(cache_root))
        dataset, ingest = build_dataset(config.data, k=config.model.k, model=config.model)
        watchdog.stage(f"starting {config.workers} Ray Train workers ({plan.worker_resources(config)} each)")
        result = _fit(config, plan.worker_resources(config), dataset, ingest, board)
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


def _tree_signature(root: Path) -> tuple[int, float]:
    """(files, newest modification time) under ``root``: changes while a decode writes its blocks."""
    count, newest = 0, 0.0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime)
            except OSError:  # renamed while we looked: the next look sees it
                continue
            count += 1
    return count, newest


def _fit(config: TrainConfig, resources: dict[str, float], dataset, ingest: IngestReport, board):
    """The TorchTrainer run itself (Ray Train's ``Result``)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    log.info("train %s: %s", config.objective, ingest.summary())
    resume = None
    if config.resume:  # where the run wrote its checkpoints, object storage included
        if "://" in config.output_dir:
            found: Path | str | None = latest_checkpoint_uri(f"{config.output_dir.rstrip('/')}/{config.run_name}")
        else:
            found = latest_checkpoint(Path(_storage_path(config)) / config.run_name)
        if found is not None:
            log.info("resuming %s from %s", config.run_name, found)
            resume = str(found)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": config.model_dump(mode="json"), "n_rows": ingest.n_ok, "resume_from": resume,
                           "progress": board},  # fmt: skip
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
    return trainer.fit()
