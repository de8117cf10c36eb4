"""Expected-score regression on hand-made tensors: the numbers of the module docstring."""

import pytest
import torch

from ultravqa_ray.losses import expected_score_loss, rater_mean

PEAKED = torch.tensor([0.1, 0.2, 0.4, 0.2, 0.1], dtype=torch.float64)


def test_rater_mean_leaves_padding_out():
    ratings = torch.tensor([[3, 4, 0], [2, 2, 2]])
    torch.testing.assert_close(rater_mean(ratings, 5, mask=ratings > 0), torch.tensor([3.5, 2.0], dtype=torch.float64))


def test_uniform_model_loss_and_gradient():
    logits = torch.zeros(1, 5, dtype=torch.float64, requires_grad=True)
    loss = expected_score_loss(logits, torch.tensor([3.5], dtype=torch.float64))
    assert loss.item() == pytest.approx(0.25, abs=1e-12)
    loss.backward()
    torch.testing.assert_close(logits.grad[0], torch.tensor([0.4, 0.2, 0.0, -0.2, -0.4], dtype=torch.float64))


def test_items_and_batch_mean():
    logits = torch.stack([torch.zeros(5, dtype=torch.float64), PEAKED.log()])
    y = rater_mean(torch.tensor([[3, 4, 0], [2, 2, 2]]), 5, mask=torch.tensor([[1, 1, 0], [1, 1, 1]]) > 0)
    assert expected_score_loss(logits[1:], y[1:]).item() == pytest.approx(1.0, abs=1e-12)
    assert expected_score_loss(logits, y).item() == pytest.approx(0.625, abs=1e-12)


def test_only_the_mean_counts():
    """A spread and a peaked distribution with the same mean have the same (zero) loss."""
    y = torch.tensor([3.0], dtype=torch.float64)
    spread = torch.tensor([[0.5, 0, 0, 0, 0.5]], dtype=torch.float64).clamp_min(1e-300).log()
    peaked = torch.tensor([[0, 0, 1.0, 0, 0]], dtype=torch.float64).clamp_min(1e-300).log()
    assert expected_score_loss(spread, y).item() == pytest.approx(0.0, abs=1e-12)
    assert expected_score_loss(peaked, y).item() == pytest.approx(0.0, abs=1e-12)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="disagree on items"):
        expected_score_loss(torch.zeros(2, 5), torch.tensor([3.0]))
    with pytest.raises(ValueError, match=r"y_mean must lie in \[1, 5\]"):
        expected_score_loss(torch.zeros(1, 5), torch.tensor([5.5]))
    with pytest.raises(ValueError, match="at least one rating"):
        rater_mean(torch.tensor([[0, 0]]), 5, mask=torch.tensor([[False, False]]))
