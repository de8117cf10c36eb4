"""SFT loss: answer tokens only, shifted, token mean over the batch."""

import math

import pytest
import torch
import torch.nn.functional as F

from ultravqa_ray.losses.sft import IGNORE_INDEX, sft_loss


def _tiny():
    """B = 1, T = 3, V = 3, labels (-100, 2, 0).

    logits[0] = (0, 0, ln 2) predicts labels[1] = 2: p = 2/4, CE = ln 2.
    logits[1] = (ln 3, 0, 0) predicts labels[2] = 0: p = 3/5, CE = ln(5/3).
    logits[2] predicts nothing. Mean over the 2 answer tokens: ln(10/3) / 2 = 0.60199.
    """
    logits = torch.tensor([[[0.0, 0.0, math.log(2)], [math.log(3), 0.0, 0.0], [5.0, -3.0, 1.0]]])
    labels = torch.tensor([[IGNORE_INDEX, 2, 0]])
    return logits, labels


def test_sft_by_hand_and_equal_to_torch_cross_entropy():
    logits, labels = _tiny()
    loss = sft_loss(logits, labels)
    assert loss.item() == pytest.approx(math.log(10 / 3) / 2, abs=1e-6)
    torch_ce = F.cross_entropy(logits[0, :2], labels[0, 1:])
    torch.testing.assert_close(loss, torch_ce)


def test_sft_ignores_masked_positions():
    """Changing the logits that predict ignored labels (and the last position) changes nothing."""
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.randint(0, 11, (2, 6))
    labels[:, :3] = IGNORE_INDEX  # prompt
    labels[1, 5] = IGNORE_INDEX  # padding
    base = sft_loss(logits, labels)
    changed = logits.clone()
    changed[:, :2] += 50 * torch.randn(2, 2, 11)  # they predict labels[:, 1:3], all ignored
    changed[0, 5] += 50.0  # the last position predicts nothing
    changed[1, 4] -= 50.0  # predicts the padded labels[1, 5]
    torch.testing.assert_close(sft_loss(changed, labels), base)
    changed[0, 3, labels[0, 4]] += 1.0  # an answer-token logit does count
    assert not torch.allclose(sft_loss(changed, labels), base)


def test_sft_is_a_token_mean_over_the_batch():
    """Sequence 0 has 1 answer token, sequence 1 has 3: each token weighs 1/4 (not 1/2 per sequence)."""
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 7, requires_grad=True)
    labels = torch.full((2, 5), IGNORE_INDEX)
    labels[0, 4] = 3
    labels[1, 2:] = torch.tensor([1, 2, 6])
    per_token = [
        F.cross_entropy(logits[0, 3:4], labels[0, 4:5], reduction="sum"),
        F.cross_entropy(logits[1, 1:4], labels[1, 2:5], reduction="sum"),
    ]
    torch.testing.assert_close(sft_loss(logits, labels), (per_token[0] + per_token[1]) / 4)


def test_sft_no_answer_token_is_zero_with_grad():
    logits = torch.randn(1, 4, 5, requires_grad=True)
    loss = sft_loss(logits, torch.full((1, 4), IGNORE_INDEX))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.count_nonzero(logits.grad) == 0


def test_sft_shape_errors():
    with pytest.raises(ValueError, match="logits"):
        sft_loss(torch.randn(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))
