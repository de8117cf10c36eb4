"""The shared score helpers (ultravqa_ray.score_ops) on hand-worked tensors."""

import math

import pytest
import torch

from ultravqa_ray.score_ops import (
    analytic_target,
    argmax_label,
    expected_score,
    floor_reference,
    ordinal_reward,
    score_levels,
    score_log_probs,
)


def test_score_log_probs_restricts_to_score_tokens():
    """Vocabulary of 6, score tokens (K=3) at ids 4, 1, 5 with logits ln 1, ln 2, ln 1.

    The other logits (100 each) must not count: pi = [1, 2, 1] / 4 in score order.
    """
    logits = torch.full((2, 6), 100.0)
    logits[:, 4], logits[:, 1], logits[:, 5] = 0.0, math.log(2.0), 0.0
    out = score_log_probs(logits, torch.tensor([4, 1, 5]))
    assert out.shape == (2, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out.exp(), torch.tensor([[0.25, 0.5, 0.25]] * 2))


def test_expected_score_and_argmax_label():
    """pi = [0.1, 0.2, 0.7] on 1..3: E = 0.1 + 0.4 + 2.1 = 2.6, argmax = 3."""
    probs = torch.tensor([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    torch.testing.assert_close(expected_score(probs), torch.tensor([2.6, 1.5]))
    assert argmax_label(probs).tolist() == [3, 1]
    assert score_levels(4).tolist() == [1.0, 2.0, 3.0, 4.0]


def test_ordinal_reward_abs_by_hand():
    """K = 3, ratings (1, 2, 2), divided by n (K - 1) = 6:
    r(1) = -(0 + 1 + 1)/6 = -1/3, r(2) = -(1 + 0 + 0)/6 = -1/6, r(3) = -(2 + 1 + 1)/6 = -2/3."""
    r = ordinal_reward(torch.tensor([1, 2, 2]), 3)
    torch.testing.assert_close(r, torch.tensor([-1 / 3, -1 / 6, -2 / 3]))


def test_ordinal_reward_squared_and_mean_abs_by_hand():
    """K = 3, ratings (1, 3): squared r(s) = -((s-1)^2 + (s-3)^2) / (2 * 4) = [-1/2, -1/4, -1/2];
    mean_abs: mean 2, r(s) = -|s - 2| / 2 = [-1/2, 0, -1/2]."""
    y = torch.tensor([1, 3])
    torch.testing.assert_close(ordinal_reward(y, 3, kind="squared"), torch.tensor([-0.5, -0.25, -0.5]))
    torch.testing.assert_close(ordinal_reward(y, 3, kind="mean_abs"), torch.tensor([-0.5, 0.0, -0.5]))


def test_ordinal_reward_mask_and_errors():
    """A masked rater (the 5) is ignored: same as ratings (1, 2, 2) above."""
    r = ordinal_reward(torch.tensor([1, 2, 5, 2]), 3, mask=torch.tensor([True, True, False, True]))
    torch.testing.assert_close(r, torch.tensor([-1 / 3, -1 / 6, -2 / 3]))
    with pytest.raises(ValueError, match="at least one rating"):
        ordinal_reward(torch.tensor([1, 2]), 3, mask=torch.tensor([False, False]))
    with pytest.raises(ValueError, match="K must be"):
        ordinal_reward(torch.tensor([1]), 1)
    with pytest.raises(ValueError, match="unknown reward"):
        ordinal_reward(torch.tensor([1]), 3, kind="huber")


def test_floor_reference_by_hand():
    """eps = 0.1, K = 4: (0.9) * [0, 0.5, 0.5, 0] + 0.025 = [0.025, 0.475, 0.475, 0.025]."""
    out = floor_reference(torch.tensor([0.0, 0.5, 0.5, 0.0]), 0.1)
    torch.testing.assert_close(out, torch.tensor([0.025, 0.475, 0.475, 0.025]))
    with pytest.raises(ValueError):
        floor_reference(torch.tensor([0.5, 0.5]), 1.0)


def test_analytic_target_by_hand():
    """pi_ref = [0.5, 0.5], r = [0, -ln 3 * beta] -> weights [0.5, 0.5/3] -> pi* = [3/4, 1/4]."""
    beta = 0.2
    out = analytic_target(torch.tensor([0.5, 0.5]), torch.tensor([0.0, -math.log(3) * beta]), beta, eps=0.0)
    torch.testing.assert_close(out, torch.tensor([0.75, 0.25]))
    with pytest.raises(ValueError, match="beta"):
        analytic_target(torch.tensor([0.5, 0.5]), torch.zeros(2), 0.0)
