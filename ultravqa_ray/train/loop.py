"""One training loop for every objective: ``run_training(config, session)``.

The loop owns what SFT, ASO and GRPO share: model loading (from the run's latest checkpoint when
there is one; a bf16 model on CPU computes its linear layers in fp32, see
:mod:`~ultravqa_ray.train.cpu_bf16`), data-parallel wrapping (DDP or FSDP2), AdamW with warm-up
and cosine decay, gradient accumulation, bf16 autocast on GPU, clipping, step and epoch metrics, a
checkpoint each epoch, an optional wall-time limit and the failure-injection hook of the tests. The objective
(:mod:`ultravqa_ray.train.objectives`) only turns rows into a loss.

Where rows come from and where metrics and checkpoints go is the :class:`Session`'s business:
:class:`RaySession` inside a Ray Train worker (``train_loop_per_worker``), or an in-process
session (the pinned loss-trajectory test runs the very same loop without Ray).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import torch

from ultravqa_ray.model.folder import ScoringSettings
from ultravqa_ray.model.hf_utils import vision_tower
from ultravqa_ray.model.scorer import ScorerModel
from ultravqa_ray.train import cpu_bf16, lora, parallel
from ultravqa_ray.train.checkpoint import MODEL_DIR, OPTIMIZER_FILE, read_train_state, save_checkpoint
from ultravqa_ray.train.config import TrainConfig
from ultravqa_ray.train.objectives import (
    ASOObjective,
    GRPOObjective,
    Objective,
    Rows,
    ScoreHeadObjective,
    SFTObjective,
)
from ultravqa_ray.train.watchdog import FINISHED

log = logging.getLogger(__name__)
FAULT_MARKER = "fault_injected"


class Session(Protocol):
    """Where a training loop gets its rows and sends its metrics and checkpoints."""

    rank: int
    world_size: int
    device: torch.device

    def restore(self) -> Path | None:
        """A local copy of the checkpoint to resume from, if any."""
        ...

    def epoch_batches(self, epoch: int) -> Iterable[Rows]: ...

    def report(self, metrics: dict[str, Any], checkpoint: Path | None) -> None: ...

    def log_step(self, record: dict[str, Any]) -> None: ...

    def progress(self, stage: str) -> None:
        """This rank enters ``stage`` (the stall watchdog's heartbeat)."""
        ...


def lr_lambda(config: TrainConfig, total_steps: int):
    warmup = int(config.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if config.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def freeze_parameters(model: torch.nn.Module, config: TrainConfig) -> None:
    """Apply ``freeze_vision`` and the ``freeze`` prefixes (a prefix matching nothing is an error)."""
    if config.freeze_vision:
        vision_tower(model).requires_grad_(False)
    for prefix in config.freeze:
        matched = [param for name, param in model.named_parameters() if name.startswith(prefix)]
        if not matched:
            raise ValueError(f"freeze prefix {prefix!r} matches no parameter of {type(model).__name__}")
        for param in matched:
            param.requires_grad_(False)


def param_groups(model: torch.nn.Module, module: torch.nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: the language model at ``lr``, the vision tower at ``lr * vision_lr_scale``.

    Read after wrapping (FSDP2 swaps parameters for sharded ones in place); frozen ones are left out.
    """
    if config.vision_lr_scale == 1.0:
        return [{"params": [p for p in module.parameters() if p.requires_grad], "lr": config.lr}]
    vision = {id(p) for p in vision_tower(model).parameters()}
    groups = [
        {"params": [p for p in module.parameters() if p.requires_grad and id(p) not in vision], "lr": config.lr},
        {"params": [p for p in module.parameters() if p.requires_grad and id(p) in vision],
         "lr": config.lr * config.vision_lr_scale},
    ]  # fmt: skip
    return [group for group in groups if group["params"]]


def make_objective(config: TrainConfig, scorer: ScorerModel) -> Objective:
    if config.objective == "sft":
        return SFTObjective(with_rationale=config.data.rationale, both_answers=config.data.both_answers)
    if config.objective == "aso":
        return ASOObjective(config.aso, with_rationale=config.data.rationale, both_answers=config.data.both_answers)
    if config.objective in ("soft_sft", "expected_score"):
        head = config.soft_label if config.objective == "soft_sft" else config.expected_score
        return ScoreHeadObjective(head, config.objective, with_rationale=config.data.rationale)
    reference = ScorerModel(scorer.config.model_copy(update={"name_or_path": config.model.name_or_path})).setup()
    reference.model.eval().requires_grad_(False)
    return GRPOObjective(config.grpo, reference=reference.model)


def steps_per_epoch(config: TrainConfig, n_rows: int, world_size: int) -> int:
    per_worker = n_rows // world_size
    return max(1, math.ceil(math.ceil(per_worker / config.batch_size) / config.grad_accum))


def run_training(config: TrainConfig, session: Session, n_rows: int) -> list[dict[str, Any]]:
    """Train for ``config.epochs`` (resuming where the restored checkpoint left off); returns step records."""
    rank, device = session.rank, session.device
    torch.manual_seed(config.seed + rank)
    session.progress("restoring the latest checkpoint")
    restored = session.restore()
    session.progress("loading the model")
    start_epoch, step = 0, 0
    model_path = config.model.name_or_path
    if restored is not None:
        state = read_train_state(restored)
        start_epoch, step = state["epoch"], state["step"]
        if config.lora is None:  # a LoRA run reloads its base and the checkpoint's adapters
            model_path = str(restored / MODEL_DIR)
        log.info("rank %d resumes from %s (epoch %d, step %d)", rank, restored, start_epoch, step)
    dtype = "float32" if config.model.dtype == "auto" else config.model.dtype
    scorer = ScorerModel(
        config.model.model_copy(update={"name_or_path": model_path, "device": str(device), "dtype": dtype})
    ).setup()
    scorer.model.train()
    if scorer.device.type == "cpu" and scorer.dtype == torch.bfloat16:  # no fast bf16 GEMM on CPU
        cpu_bf16.compute_linears_in_fp32(scorer.model)
    if config.gradient_checkpointing:
        scorer.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    freeze_parameters(scorer.model, config)
    adapter = None
    if config.lora is not None:
        adapter = lora.apply_lora(scorer.model, config.lora, config.model.name_or_path)
        if restored is not None and (restored / lora.ADAPTER_DIR).is_dir():
            lora.load_adapter(adapter, restored / lora.ADAPTER_DIR)
    module = parallel.wrap_model(scorer.model, config.strategy, device, config.mixed_precision)
    optimizer = torch.optim.AdamW(param_groups(scorer.model, module, config), weight_decay=config.weight_decay)
    total = config.epochs * steps_per_epoch(config, n_rows, session.world_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, total))
    if restored is not None:
        saved = torch.load(restored / OPTIMIZER_FILE, map_location="cpu", weights_only=True)  # tensors only
        parallel.load_optimizer_state(module, optimizer, saved["optimizer"], config.strategy)
        scheduler.load_state_dict(saved["scheduler"])
    objective = make_objective(config, scorer)

    forward = parallel.TrainForward(scorer, module, device, config.mixed_precision)

    history: list[dict[str, Any]] = []
    started = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        epoch_start = time.perf_counter()
        compute_s = data_s = 0.0
        videos = 0
        sums: dict[str, float] = {}
        micro, n_micro = 0, 0
        pending: list[dict[str, float]] = []
        stop = False
        wait = time.perf_counter()
        session.progress(f"waiting for data (Ray Data train shard, epoch {epoch + 1})")
        for rows in session.epoch_batches(epoch):
            session.progress(f"training (epoch {epoch + 1}, step {step + 1})")
            data_s += time.perf_counter() - wait
            t0 = time.perf_counter()
            micro += 1
            with parallel.no_sync(module, skip=micro % config.grad_accum != 0):
                loss, stats = objective.loss(scorer, forward, rows)
                (loss / config.grad_accum).backward()
            pending.append(stats)
            videos += len(rows["video_id"])
            if micro % config.grad_accum == 0:
                step += 1
                record = _optimizer_step(config, module, optimizer, scheduler, pending, epoch, step)
                for key, value in record.items():
                    if isinstance(value, float):
                        sums[key] = sums.get(key, 0.0) + value
                n_micro += 1
                history.append(record)
                pending = []
                if step % config.log_every == 0 or step == 1:
                    session.log_step(record)
                _maybe_die(config, session, step)
                if config.time_limit_s is not None:
                    stop = parallel.all_agree(time.perf_counter() - started > config.time_limit_s, device)
            compute_s += time.perf_counter() - t0
            if stop:
                break
            session.progress(f"waiting for data (Ray Data train shard, epoch {epoch + 1})")
            wait = time.perf_counter()
        if pending:  # a last, partial accumulation window
            step += 1
            history.append(_optimizer_step(config, module, optimizer, scheduler, pending, epoch, step))
        epoch_s = time.perf_counter() - epoch_start
        metrics = {
            "epoch": epoch + 1,
            "step": step,
            **{f"mean_{k}": v / max(1, n_micro) for k, v in sums.items() if k not in ("lr", "grad_norm")},
            "videos": videos,
            "videos_per_s": videos / max(epoch_s, 1e-9),
            "epoch_s": epoch_s,
            "compute_s": compute_s,
            "data_wait_s": data_s,
            "stopped_early": stop,
        }
        session.progress(f"saving and reporting the checkpoint (epoch {epoch + 1})")
        _checkpoint_and_report(
            config, session, scorer, module, optimizer, scheduler, metrics, epoch + 1, step, adapter=adapter
        )
        if stop:
            break
    session.progress(FINISHED)
    return history


def _optimizer_step(config, module, optimizer, scheduler, pending, epoch: int, step: int) -> dict[str, Any]:
    norm = (
        torch.nn.utils.clip_grad_norm_(module.parameters(), config.max_grad_norm)
        if config.max_grad_norm
        else torch.zeros(())
    )
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    record: dict[str, Any] = {"epoch": epoch, "step": step}
    for key in pending[0]:
        record[key] = sum(p[key] for p in pending) / len(pending)
    record["grad_norm"] = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
    record["lr"] = float(scheduler.get_last_lr()[0])
    return record


def _maybe_die(config: TrainConfig, session: Session, step: int) -> None:
    """Failure injection: rank ``fault.rank`` exits the process once, right after ``exit_at_step``."""
    fault = config.fault
    if fault.exit_at_step != step or session.rank != fault.rank:
        return
    marker = config.run_dir / FAULT_MARKER
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"step": step, "rank": session.rank}))
    log.warning("fault injection: rank %d exits at step %d", session.rank, step)
    os._exit(1)


def _checkpoint_and_report(config, session, scorer, module, optimizer, scheduler, metrics, epoch, step,
                           adapter=None) -> None:  # fmt: skip
    full = parallel.full_state_dict(scorer.model, config.strategy)  # collectives: every rank
    opt_state = parallel.optimizer_state(module, optimizer, config.strategy)
    if session.rank != 0:
        session.report(metrics, None)
        return
    tmp = Path(tempfile.mkdtemp(prefix="uvr-ckpt-"))
    try:
        save_checkpoint(
            tmp, scorer.model, scorer.tokenizer, scorer.config.name_or_path,
            state_dict=full,
            optimizer_state={"optimizer": opt_state, "scheduler": scheduler.state_dict()},
            train_state={"epoch": epoch, "step": step, "objective": config.objective, "metrics": metrics},
            scoring=ScoringSettings.of(scorer.config, config.data.decode),
            adapter=adapter,
        )  # fmt: skip
        session.report(metrics, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
