"""Soft-label SFT on hand-made tensors: the numbers of the module docstring."""

import math

import pytest
import torch

from ultravqa_ray.losses import rater_distribution, soft_label_loss

PEAKED = torch.tensor([0.1, 0.2, 0.4, 0.2, 0.1], dtype=torch.float64)


def test_rater_distribution_counts_kept_ratings_only():
    ratings = torch.tensor([[2, 3, 0], [3, 3, 3]])
    q = rater_distribution(ratings, 5, mask=ratings > 0)
    torch.testing.assert_close(q, torch.tensor([[0, 0.5, 0.5, 0, 0], [0, 0, 1.0, 0, 0]], dtype=torch.float64))


def test_uniform_model_against_two_raters():
    logits = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    q = rater_distribution(torch.tensor([2, 3]), 5)
    loss = soft_label_loss(logits, q)
    assert loss.item() == pytest.approx(math.log(5), abs=1e-12)  # 1.6094
    loss.backward()
    torch.testing.assert_close(logits.grad, torch.tensor([0.2, -0.3, -0.3, 0.2, 0.2], dtype=torch.float64))


def test_peaked_model_items_and_batch_mean():
    logits = PEAKED.log().expand(2, 5)
    q = rater_distribution(torch.tensor([[3, 3, 3], [2, 3, 0]]), 5, mask=torch.tensor([[1, 1, 1], [1, 1, 0]]) > 0)
    assert soft_label_loss(logits[:1], q[:1]).item() == pytest.approx(0.916291, abs=1e-6)  # -log .4
    assert soft_label_loss(logits[1:], q[1:]).item() == pytest.approx(1.262864, abs=1e-6)
    assert soft_label_loss(logits, q).item() == pytest.approx(1.089578, abs=1e-6)  # the mean of the two


def test_loss_is_minimal_at_q():
    q = torch.tensor([0.0, 0.25, 0.5, 0.25, 0.0], dtype=torch.float64)
    at_q = soft_label_loss(q.clamp_min(1e-300).log(), q)
    entropy = -(q[q > 0] * q[q > 0].log()).sum()
    assert at_q.item() == pytest.approx(entropy.item(), abs=1e-9)  # L = KL(q || p) + H(q), KL = 0
    assert soft_label_loss(PEAKED.log(), q).item() > at_q.item()


@pytest.mark.parametrize(
    ("ratings", "message"),
    [(torch.tensor([[0, 0]]), "at least one rating"), (torch.tensor([[6, 2]]), "integers in 1..5")],
)
def test_bad_ratings_are_refused(ratings, message):
    with pytest.raises(ValueError, match=message):
        rater_distribution(ratings, 5, mask=ratings > 0 if message != "integers in 1..5" else None)


def test_bad_shapes_and_targets_are_refused():
    with pytest.raises(ValueError, match="must match"):
        soft_label_loss(torch.zeros(2, 5), torch.full((2, 4), 0.25))
    with pytest.raises(ValueError, match="probabilities"):
        soft_label_loss(torch.zeros(5), torch.full((5,), 0.3))
