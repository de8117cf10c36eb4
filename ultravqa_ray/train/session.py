"""Sessions of the training loop: inside a Ray Train worker, or in this process (tests, debugging)."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from ultravqa_ray.train.config import TrainConfig
from ultravqa_ray.train.loop import run_training
from ultravqa_ray.train.objectives import Rows

log = logging.getLogger(__name__)
STEPS_FILE = "steps.jsonl"


class RaySession:
    """Rows from ``ray.train.get_dataset_shard("train")``, reports through ``ray.train.report``."""

    def __init__(self, config: TrainConfig, resume_from: str | None = None, progress: Any = None) -> None:
        import ray.train
        import ray.train.torch

        ctx = ray.train.get_context()
        self.config = config
        self.resume_from = resume_from
        self.rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()
        self._board = progress  # the driver's ProgressBoard actor (watchdog), or None
        self.progress("joining the worker group (device, dataset shard)")
        self.device = ray.train.torch.get_device()
        self._shard = ray.train.get_dataset_shard("train")

    def progress(self, stage: str) -> None:
        """Tell the driver's stall watchdog that this rank entered ``stage`` (fire and forget)."""
        if self._board is not None:
            self._board.beat.remote(self.rank, stage)

    def restore(self) -> Path | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()  # this run's latest, after a worker-group restart
        if checkpoint is None:
            if self.resume_from is None:
                return None
            if "://" in self.resume_from:  # a re-submitted run whose checkpoints are on object storage
                checkpoint = ray.train.Checkpoint(path=self.resume_from)
            else:  # a re-submitted run
                checkpoint = ray.train.Checkpoint.from_directory(self.resume_from)
        local = Path(tempfile.mkdtemp(prefix="uvr-restore-"))
        with checkpoint.as_directory() as folder:
            shutil.copytree(folder, local, dirs_exist_ok=True)
        return local

    def epoch_batches(self, epoch: int) -> Iterable[Rows]:
        seed = self.config.data.shuffle_seed
        shuffle = {}
        if seed is not None:
            shuffle = {
                "local_shuffle_buffer_size": 4 * self.config.batch_size,
                "local_shuffle_seed": seed + 1000 * epoch + self.rank,
            }
        return self._shard.iter_batches(batch_size=self.config.batch_size, batch_format="numpy", **shuffle)

    def report(self, metrics: dict[str, Any], checkpoint: Path | None) -> None:
        import ray.train

        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(checkpoint)) if checkpoint else None)

    def log_step(self, record: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        log.info("step %s", json.dumps(record))
        run_dir = self.config.run_dir
        if "://" not in self.config.output_dir:
            run_dir.mkdir(parents=True, exist_ok=True)
            with (run_dir / STEPS_FILE).open("a") as fh:
                fh.write(json.dumps(record) + "\n")


class LocalSession:
    """One process, rows from a list in order; checkpoints copied to ``config.run_dir``."""

    rank = 0
    world_size = 1

    def __init__(self, config: TrainConfig, rows: Sequence[Rows], device: str = "cpu") -> None:
        self.config = config
        self.rows = list(rows)
        self.device = torch.device(device)
        self.reports: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []

    def restore(self) -> Path | None:
        return None

    def progress(self, stage: str) -> None:
        """No watchdog in one process: the caller sees a stall itself."""

    def epoch_batches(self, epoch: int) -> Iterable[Rows]:
        return iter(self.rows)

    def report(self, metrics: dict[str, Any], checkpoint: Path | None) -> None:
        self.reports.append(metrics)
        if checkpoint is not None:
            target = self.config.run_dir / f"checkpoint_epoch{metrics['epoch']}"
            shutil.copytree(checkpoint, target, dirs_exist_ok=True)

    def log_step(self, record: dict[str, Any]) -> None:
        self.steps.append(record)


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """The Ray Train entry point: ``{"config": TrainConfig JSON, "n_rows": rows, "resume_from": path,
    "progress": ProgressBoard actor or None}``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = TrainConfig.model_validate(loop_config["config"])
    session = RaySession(config, loop_config.get("resume_from"), loop_config.get("progress"))
    run_training(config, session, int(loop_config["n_rows"]))
