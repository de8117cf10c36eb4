"""bf16 weights, fp32 matrix products: the linear layers of a bf16 model trained on a CPU.

A CPU without bf16 matrix units (AVX2, no AVX512-BF16/AMX: the project's machines) has no fast
bf16 GEMM; PyTorch falls back to its own loops, whose speed depends on the operands' layout. On
the project's 2-core AVX2 machine (torch 2.13, one thread, 40 x 4096 by 4096 x 2048 in bf16):

- the forward ``x @ W.T`` runs at about 5 GFLOP/s;
- the backward's input gradient ``g @ W`` (``W`` stored ``out x in``, the layout of every
  ``nn.Linear``) runs at 0.13 GFLOP/s, 40 times slower: a scalar loop striding through ``W``;
- the same products in fp32 (MKL) run at 17-20 GFLOP/s, and casting the weight to fp32 costs less
  than a tenth of the product at a training step's token count.

A LoRA step backpropagates through every frozen projection of the language model, so in bf16 its
backward alone would take hours at real size (3 B parameters x 820 tokens). :class:`Fp32ComputeLinear`
keeps the weight in bf16 (its memory unchanged) and computes each product in fp32 from a
temporary fp32 copy of at most :data:`CHUNK_ELEMENTS` of the weight's rows at a time (the LM head
of a 151,936-token vocabulary is done in slices, never as a 1.2 GiB fp32 copy), rounding the
result to bf16: the same numbers as a bf16 GEMM that accumulates in fp32, and what a GPU's bf16
tensor cores compute. The backward saves the same tensors ``F.linear`` would (the input only when
the weight is trained). Only on CPU: :func:`compute_linears_in_fp32` leaves a GPU model alone.
"""

from __future__ import annotations

from typing import Any

import torch

CHUNK_ELEMENTS = 1 << 24  # weight elements cast to fp32 at once: 64 MiB


def _row_slices(rows: int, cols: int, chunk_elements: int) -> list[slice]:
    """Consecutive slices of the weight's output rows, each at most ``chunk_elements`` (one row at least)."""
    step = max(1, chunk_elements // max(1, cols))
    return [slice(start, min(rows, start + step)) for start in range(0, rows, step)]


class _Fp32Linear(torch.autograd.Function):
    """``y = x W^T + b`` with bf16 tensors in and out, fp32 products inside."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                chunk_elements: int) -> torch.Tensor:  # fmt: skip
        ctx.save_for_backward(x if weight.requires_grad else None, weight)
        ctx.has_bias, ctx.chunk_elements = bias is not None, chunk_elements
        x32 = x.float()
        out = x.new_empty((*x.shape[:-1], weight.shape[0]))
        with torch.autocast(x.device.type, enabled=False):
            for rows in _row_slices(weight.shape[0], weight.shape[1], chunk_elements):
                part = x32 @ weight[rows].float().t()
                if bias is not None:
                    part += bias[rows].float()
                out[..., rows] = part
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        g32 = grad.float()
        slices = _row_slices(weight.shape[0], weight.shape[1], ctx.chunk_elements)
        with torch.autocast(grad.device.type, enabled=False):
            if ctx.needs_input_grad[0]:
                acc = torch.zeros((*grad.shape[:-1], weight.shape[1]), dtype=torch.float32, device=grad.device)
                for rows in slices:
                    acc += g32[..., rows] @ weight[rows].float()
                grad_x = acc.to(grad.dtype)
            if ctx.needs_input_grad[1]:
                flat_g, flat_x = g32.reshape(-1, g32.shape[-1]), x.reshape(-1, x.shape[-1]).float()
                grad_w = torch.empty_like(weight)
                for rows in slices:
                    grad_w[rows] = flat_g[:, rows].t() @ flat_x
            if ctx.has_bias and ctx.needs_input_grad[2]:
                grad_b = g32.reshape(-1, g32.shape[-1]).sum(0).to(weight.dtype)
        return grad_x, grad_w, grad_b, None


class Fp32ComputeLinear(torch.nn.Linear):
    """An ``nn.Linear`` whose bf16 products run in fp32 (module docstring); same parameters and
    state dict, so peft, checkpoints and ``from_pretrained`` see a plain ``Linear``."""

    chunk_elements = CHUNK_ELEMENTS

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002  # nn.Linear's argument name
        if input.dtype != torch.bfloat16 or self.weight.dtype != torch.bfloat16:
            return super().forward(input)
        return _Fp32Linear.apply(input, self.weight, self.bias, self.chunk_elements)


def compute_linears_in_fp32(model: torch.nn.Module) -> int:
    """Turn every plain ``nn.Linear`` of ``model`` with bf16 weights on the CPU into a
    :class:`Fp32ComputeLinear` (in place: same parameters); returns how many. Subclasses of
    ``Linear`` (peft's adapter layers, quantised layers) are left as they are."""
    count = 0
    for module in model.modules():
        if type(module) is torch.nn.Linear and module.weight.dtype == torch.bfloat16 and module.weight.device.type == "cpu":
            module.__class__ = Fp32ComputeLinear
            count += 1
    return count
