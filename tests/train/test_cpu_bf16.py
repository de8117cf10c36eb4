"""bf16 weights with fp32 products on CPU (:mod:`ultravqa_ray.train.cpu_bf16`): the same numbers as an
fp32 linear layer up to bf16 rounding, in slices or not, saving no more for the backward than
``F.linear``, and only plain bf16 CPU ``Linear`` modules converted."""

from __future__ import annotations

import pytest
import torch

from ultravqa_ray.train.cpu_bf16 import Fp32ComputeLinear, _row_slices, compute_linears_in_fp32

BF16_STEP = 2**-7  # a bf16 value is rounded to 8 significant bits: relative error at most 2^-8


def _pair(bias: bool, chunk_elements: int) -> tuple[torch.nn.Linear, torch.nn.Linear]:
    """A bf16 layer converted to fp32 products and an fp32 layer with the very same (bf16) values."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(24, 40, bias=bias, dtype=torch.bfloat16)
    reference = torch.nn.Linear(24, 40, bias=bias)
    reference.load_state_dict({k: v.float() for k, v in layer.state_dict().items()})
    assert compute_linears_in_fp32(layer) == 1
    layer.chunk_elements = chunk_elements
    return layer, reference


@pytest.mark.parametrize("chunk_elements", [1 << 24, 24 * 7, 1])  # whole, 7 rows (last slice of 5), one row
@pytest.mark.parametrize("bias", [True, False])
def test_products_and_gradients_equal_fp32_up_to_bf16_rounding(bias, chunk_elements):
    layer, reference = _pair(bias, chunk_elements)
    x = torch.randn(3, 5, 24).to(torch.bfloat16).requires_grad_(True)
    x_ref = x.detach().float().requires_grad_(True)
    target = torch.randn(3, 5, 40)

    out = layer(x)
    ((out.float() - target) ** 2).sum().backward()
    expected = reference(x_ref)
    ((expected - target) ** 2).sum().backward()

    assert out.dtype == torch.bfloat16 and out.shape == (3, 5, 40)

    def close(got: torch.Tensor, want: torch.Tensor) -> None:
        # the output is one bf16 rounding of the fp32 result; gradients carry that rounding through
        # the loss as well, hence a few steps of the largest value
        assert (got.float() - want).abs().max() <= 4 * BF16_STEP * want.abs().max()

    close(out, expected)
    close(x.grad, x_ref.grad)
    close(layer.weight.grad, reference.weight.grad)
    if bias:
        close(layer.bias.grad, reference.bias.grad)


def test_slices_cover_every_row_once():
    # 7 elements of 3 columns: 2 rows a slice; a row wider than the chunk is still one slice
    assert _row_slices(10, 3, 7) == [slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8), slice(8, 10)]
    assert _row_slices(5, 3, 7)[-1] == slice(4, 5)
    assert _row_slices(3, 100, 7) == [slice(0, 1), slice(1, 2), slice(2, 3)]


def test_a_frozen_weight_saves_no_input_for_the_backward():
    """Like ``F.linear``: the input gradient needs only the weight, so the input is not kept."""
    layer, _ = _pair(bias=False, chunk_elements=1 << 24)
    saved: list[torch.Tensor] = []
    for frozen in (True, False):
        layer.weight.requires_grad_(not frozen)
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            layer(torch.randn(2, 24, dtype=torch.bfloat16, requires_grad=True))
        kept = [t for t in saved if t is not None and t.shape == (2, 24)]
        assert (len(kept) == 0) == frozen


def test_only_plain_bf16_linears_on_cpu_are_converted():
    class Adapter(torch.nn.Linear):  # a Linear subclass (peft's, a quantised one) keeps its forward
        pass

    model = torch.nn.Sequential(
        torch.nn.Linear(4, 4, dtype=torch.bfloat16), torch.nn.Linear(4, 4), Adapter(4, 4, dtype=torch.bfloat16)
    )
    assert compute_linears_in_fp32(model) == 1
    assert [type(m) for m in model] == [Fp32ComputeLinear, torch.nn.Linear, Adapter]
    assert set(model.state_dict()) == {f"{i}.{p}" for i in range(3) for p in ("weight", "bias")}
    with pytest.raises(RuntimeError):  # an fp32 input takes nn.Linear's own path, and its error
        model[0](torch.randn(2, 4))
