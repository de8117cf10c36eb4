"""Data parallelism for the scorer's transformers model: DDP (default) or FSDP2 (``fully_shard``).

DDP wraps the module; FSDP2 shards each decoder layer and vision block and then the root, in place
(the module keeps its class and methods, ``generate`` included). Both work on CPU with gloo and on
GPU with NCCL. Full (unsharded) state dicts are gathered for checkpoints so that a checkpoint is a
plain Hugging Face folder whatever the strategy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
import torch.distributed as dist

from ultravqa_ray.model.collate import TrainingBatch
from ultravqa_ray.model.scorer import ScorerModel
from ultravqa_ray.train.adapter import TrainOutput, forward_train


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sharded(strategy: str) -> bool:
    """FSDP2 shards whenever a process group exists, one rank included (full fine-tuning on one GPU:
    fp32 master weights, bf16 compute through the mixed-precision policy)."""
    return strategy == "fsdp2" and dist.is_available() and dist.is_initialized()


def wrap_model(
    model: torch.nn.Module, strategy: str, device: torch.device, mixed_precision: str = "no"
) -> torch.nn.Module:
    """The module the training forward runs through (``model`` itself when not distributed).

    FSDP2 shards each decoder layer and vision block, then the root; with bf16 mixed precision
    (``bf16``, or ``auto`` on GPU) its policy gathers parameters in bf16 and reduces gradients in
    fp32, the sharded master weights staying in their own dtype.
    """
    if strategy == "fsdp2":
        if not sharded(strategy):
            return model
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(device.type, (dist.get_world_size(),))
        policy = MixedPrecisionPolicy()
        if mixed_precision == "bf16" or (mixed_precision == "auto" and device.type == "cuda"):
            policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        for block in _blocks(model):
            fully_shard(block, mesh=mesh, mp_policy=policy)
        fully_shard(model, mesh=mesh, mp_policy=policy)
        return model
    if not distributed():
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    raise ValueError(f"unknown strategy {strategy!r}")


def _blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Transformer blocks to shard one by one: decoder layers and vision blocks."""
    inner = getattr(model, "model", model)
    blocks: list[torch.nn.Module] = []
    for path in ("language_model.layers", "visual.blocks"):
        node: Any = inner
        for part in path.split("."):
            node = getattr(node, part, None)
        if node is not None:
            blocks.extend(node)
    return blocks


def forward_through(scorer: ScorerModel, module: torch.nn.Module, batch: TrainingBatch) -> TrainOutput:
    """:func:`~ultravqa_ray.train.adapter.forward_train` with the model call routed through ``module``
    (a DDP wrapper); the scorer keeps the plain model for everything else (positions, generation)."""
    return forward_train(scorer, batch, model=None if module is scorer.model else module)


class TrainForward:
    """The training forward of the loop: ``forward(batch)`` for SFT/ASO, ``forward.raw(**kwargs)`` for
    the token-level GRPO forward; both through the (wrapped) module, under the precision policy."""

    def __init__(self, scorer: ScorerModel, module: torch.nn.Module, device: torch.device, mode: str) -> None:
        self.scorer, self.module, self.device, self.mode = scorer, module, device, mode

    def __call__(self, batch: TrainingBatch) -> TrainOutput:
        with autocast(self.device, self.mode):
            return forward_through(self.scorer, self.module, batch)

    def raw(self, **kwargs: Any) -> Any:
        with autocast(self.device, self.mode):
            return self.module(**kwargs)


def no_sync(module: torch.nn.Module, skip: bool):
    """DDP's ``no_sync`` for the micro-batches before the last of an accumulation window."""
    if skip and hasattr(module, "no_sync"):
        return module.no_sync()  # type: ignore[operator]  # a DDP module's method, not a Tensor
    return nullcontext()


@contextmanager
def autocast(device: torch.device, mode: str) -> Iterator[None]:
    """bf16 autocast on GPU for ``auto``/``bf16``; on CPU only when ``bf16`` is asked for."""
    enabled = mode == "bf16" or (mode == "auto" and device.type == "cuda")
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled):
        yield


def full_state_dict(model: torch.nn.Module, strategy: str) -> dict[str, torch.Tensor] | None:
    """Unsharded CPU state dict for FSDP2 (a collective: every rank calls it); None otherwise."""
    if not sharded(strategy):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return dict(state)  # type: ignore[arg-type]  # full_state_dict: every value is a tensor


def optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, strategy: str) -> dict:
    """Full optimiser state (FSDP2: gathered, a collective)."""
    if not sharded(strategy):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(
        model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )


def load_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict, strategy: str) -> None:
    if not sharded(strategy):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def all_agree(flag: bool, device: torch.device) -> bool:
    """True on every rank when any rank says True (e.g. a time limit reached)."""
    if not distributed():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)
