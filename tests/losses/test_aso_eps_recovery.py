"""ASO's first stated limit and its fix: a reference with zero mass at the rater median.

pi_ref = (.5, .5, 0, 0, 0), three raters at 3 (median 3), abs reward r = -|s - 3| / 4 =
(-.5, -.25, 0, -.25, -.5), beta = 0.03. The model starts at pi_ref (the median's logit at
log 1e-12, i.e. zero up to float noise) and takes plain gradient steps on its score logits.

- eps = 0: rho(3) = 0, so pi*(3) = 0 whatever the reward; the gradient at 3 is p(3) - 0 >= 0 and a
  step can only lower p(3): it stays (numerically) zero.
- eps = 1e-2: rho = .99 pi_ref + .002 = (.497, .497, .002, .002, .002); rho exp(r / beta) =
  (1.2e-8, 1.19e-4, .002, 4.8e-7, 1.2e-10), so pi*(3) = .002 / .00212 = 0.94: one step raises
  p(3), and repeated steps make 3 the most probable score.
"""

import torch

from ultravqa_ray.losses import aso_loss

PI_REF = torch.tensor([[0.5, 0.5, 0.0, 0.0, 0.0]], dtype=torch.float64)
RATINGS = torch.tensor([[3, 3, 3]])
MEDIAN = 2  # index of score 3
BETA = 0.03


def _start() -> torch.Tensor:
    return PI_REF.clamp_min(1e-12).log().clone().requires_grad_()


def _step(logits: torch.Tensor, eps: float, lr: float = 1.0) -> torch.Tensor:
    out = aso_loss(logits, PI_REF, RATINGS, beta=BETA, eps=eps)
    logits.grad = None
    out.loss.backward()
    with torch.no_grad():
        logits -= lr * logits.grad
    return out.target


def _p_median(logits: torch.Tensor) -> float:
    return float(torch.softmax(logits.detach(), -1)[0, MEDIAN])


def test_one_step_raises_the_median_with_eps_and_not_without():
    for eps, raises in ((1e-2, True), (1e-3, True), (0.0, False)):
        logits = _start()
        before = _p_median(logits)
        target = _step(logits, eps)
        after = _p_median(logits)
        if raises:
            assert target[0, MEDIAN] > 0.5, (eps, target)
            assert after > 2 * before, (eps, before, after)
        else:
            assert target[0, MEDIAN] == 0.0
            assert after <= before < 1e-11, (before, after)


def test_repeated_steps_recover_the_median_only_with_eps():
    recovered, stuck = _start(), _start()
    for _ in range(300):
        _step(recovered, 1e-2)
        _step(stuck, 0.0)
    assert int(torch.softmax(recovered.detach(), -1).argmax()) == MEDIAN
    assert _p_median(recovered) > 0.5
    assert _p_median(stuck) < 1e-11
