"""GRPO baseline: score parsing, rewards, group advantages, the clipped loss with k3 KL."""

import math

import pytest
import torch

from ultravqa_ray.losses.grpo import (
    GRPOConfig,
    group_advantages,
    grpo_loss,
    grpo_rewards,
    parse_score,
)


@pytest.mark.parametrize(
    ("text", "k", "expected"),
    [
        ("The motion is smooth. Score: 4", 5, 4),
        ("Score: 2 at first, but on reflection... Score: 5", 5, 5),  # the last one wins
        ("Score: 3 ... Score: 4.5", 5, None),  # the last one wins even when it is bad
        ("Score: 3\nScore:", 5, None),  # truncated last score
        ("Score: 6", 5, None),
        ("Score: 0", 5, None),
        ("Score: -1", 5, None),
        ("Score: 4.5", 5, None),
        ("Score: four", 5, None),
        ("Score: \uff14", 5, None),  # full-width digit
        ("score: 4", 5, None),  # the template is case-sensitive
        ("no score here", 5, None),
        ("", 5, None),
        ("Score:4", 5, 4),
        ("Clear and sharp. Score: 4.", 5, 4),  # a closing full stop is allowed
        ("Score: 10", 10, 10),
        ("Score: 10", 5, None),
    ],
)
def test_parse_score(text, k, expected):
    assert parse_score(text, k) == expected


def test_rewards_by_hand():
    """K = 3, ratings (1, 2, 2): r = (-1/3, -1/6, -2/3) (see test_score_ops); None -> -1.
    The 4th row has a padded rater (masked) and ratings (3, 3): r(3) = 0."""
    ratings = torch.tensor([[1, 2, 2]] * 3 + [[3, 3, 0]])
    mask = torch.tensor([[True] * 3] * 3 + [[True, True, False]])
    r = grpo_rewards([1, None, 3, 3], ratings, 3, "abs", mask=mask)
    torch.testing.assert_close(r, torch.tensor([-1 / 3, -1.0, -2 / 3, 0.0]))
    with pytest.raises(ValueError, match="1..3"):
        grpo_rewards([4], torch.tensor([[1]]), 3)
    with pytest.raises(ValueError, match="N=2"):
        grpo_rewards([1, 2], torch.tensor([[1]]), 3)


def test_group_advantages_by_hand():
    """Groups of 2: (0, -0.5): mean -0.25, unbiased std sqrt(2 * 0.25^2 / 1) = 0.353553,
    A = +-0.25 / (0.353553 + 1e-4) = +-0.706907. (-1, -1): all equal, A = 0."""
    adv = group_advantages(torch.tensor([0.0, -0.5, -1.0, -1.0]), 2)
    a = 0.25 / (math.sqrt(0.125) + 1e-4)
    torch.testing.assert_close(adv, torch.tensor([a, -a, 0.0, 0.0]))
    assert a == pytest.approx(0.706907, abs=1e-6)
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(5), 2)


def test_group_advantages_zero_mean_per_group():
    torch.manual_seed(0)
    adv = group_advantages(torch.rand(6 * 7), 6).view(7, 6)
    torch.testing.assert_close(adv.mean(-1), torch.zeros(7), atol=1e-6, rtol=0)
    torch.testing.assert_close(adv.std(-1), torch.ones(7), atol=1e-3, rtol=0)


def _logps(values):
    return torch.tensor(values, dtype=torch.float64)


def test_loss_by_hand_at_the_sampling_policy():
    """new = old = ref; tokens: 2 of completion 0 (A = 1), 1 of completion 1 (A = -0.5).
    ratio = 1, KL = 0: L = (-1 - 1 + 0.5) / 3 = -0.5; dL/dnew = -A / 3 on completion tokens."""
    base = _logps([[-1.0, -2.0, -0.5], [-0.3, -4.0, -1.0]])
    new = base.clone().requires_grad_()
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    out = grpo_loss(new, base, base, _logps([1.0, -0.5]), mask, clip_eps=0.2, kl_coef=0.04)
    assert out.loss.item() == pytest.approx(-0.5)
    assert out.kl.item() == 0.0 and out.clip_fraction.item() == 0.0
    out.loss.backward()
    torch.testing.assert_close(new.grad, _logps([[-1 / 3, -1 / 3, 0.0], [1 / 6, 0.0, 0.0]]))


def test_kl_term_by_hand_and_zero_at_reference():
    """k3 with d = ref - new: d = ln 2 -> 2 - ln 2 - 1 = 0.306853; d = -ln 2 -> 0.5 + ln 2 - 1 = 0.193147.
    A = 0 isolates the KL: L = kl_coef * (0.306853 + 0.193147) / 2 = 0.1 * 0.25 = 0.025."""
    new = _logps([[-1.0, -2.0]]).requires_grad_()
    ref = new.detach() + _logps([[math.log(2), -math.log(2)]])
    out = grpo_loss(new, new.detach(), ref, _logps([0.0]), torch.ones(1, 2), kl_coef=0.1)
    assert out.kl.item() == pytest.approx(((2 - math.log(2) - 1) + (0.5 + math.log(2) - 1)) / 2)
    assert out.kl.item() == pytest.approx(0.25)
    assert out.loss.item() == pytest.approx(0.025)
    same = grpo_loss(new, new.detach(), new.detach(), _logps([0.0]), torch.ones(1, 2), kl_coef=0.1)
    assert same.kl.item() == 0.0 and same.loss.item() == 0.0
    same.loss.backward()
    torch.testing.assert_close(new.grad, torch.zeros_like(new))


def test_clipping_zeroes_the_gradient_past_the_clip_range():
    """old = 0, clip_eps = 0.2, one token per completion, kl_coef = 0.
    A > 0, ratio 1.5 (past 1.2): clipped, zero gradient. A < 0, ratio 0.5 (below 0.8): zero.
    A > 0, ratio 1.1 (inside): d/dnew = -A ratio / 4 = -1.1 / 4.
    A > 0, ratio 0.5 and A < 0, ratio 1.5: the min keeps the unclipped term, gradient -A ratio / 4."""
    ratios = [1.5, 0.5, 1.1, 0.5, 1.5]
    adv = _logps([1.0, -1.0, 1.0, 1.0, -1.0])
    new = _logps([[math.log(r)] for r in ratios]).requires_grad_()
    old = torch.zeros(5, 1, dtype=torch.float64)
    out = grpo_loss(new, old, new.detach(), adv, torch.ones(5, 1), clip_eps=0.2, kl_coef=0.0)
    out.loss.backward()
    expected = _logps([[0.0], [0.0], [-1.1 / 5], [-0.5 / 5], [1.5 / 5]])
    torch.testing.assert_close(new.grad, expected)
    assert out.clip_fraction.item() == pytest.approx(2 / 5)


def test_loss_sign():
    """Raising the log-prob of a positive-advantage completion lowers the loss; of a negative one raises it."""
    torch.manual_seed(0)
    old = -torch.rand(4, 5, dtype=torch.float64)
    adv = _logps([1.0, -1.0, 0.5, -0.5])
    mask = torch.ones(4, 5)
    base = grpo_loss(old, old, old, adv, mask).loss
    up_pos, up_neg = old.clone(), old.clone()
    up_pos[0] += 0.05
    up_neg[1] += 0.05
    assert grpo_loss(up_pos, old, old, adv, mask).loss < base
    assert grpo_loss(up_neg, old, old, adv, mask).loss > base


def test_masked_tokens_do_not_count():
    torch.manual_seed(1)
    new = -torch.rand(2, 4, dtype=torch.float64)
    old, ref = new - 0.1 * torch.rand(2, 4, dtype=torch.float64), new + 0.1
    adv, mask = _logps([0.7, -0.2]), torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    base = grpo_loss(new, old, ref, adv, mask).loss
    changed = new.clone()
    changed[0, 3] -= 3.0
    changed[1, 2:] += 2.0
    torch.testing.assert_close(grpo_loss(changed, old, ref, adv, mask).loss, base)


def test_shapes_and_config():
    with pytest.raises(ValueError):
        grpo_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3), torch.ones(2, 3))
    cfg = GRPOConfig()
    assert (cfg.group_size, cfg.clip_eps, cfg.kl_coef, cfg.reward) == (6, 0.2, 0.04, "abs")
    with pytest.raises(ValueError):
        GRPOConfig(group_size=1)
