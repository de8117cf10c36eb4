"""ASO: closed-form target, loss and gradient (DESIGN.md section 4)."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from ultravqa_ray.losses.aso import (
    ASOConfig,
    aso_loss,
    aso_loss_from_vocab,
    aso_target,
    aso_total_loss,
)
from ultravqa_ray.score_ops import floor_reference

# --- the hand-worked K = 3 case ---------------------------------------------------------------
# pi_ref = (0.2, 0.5, 0.3), ratings (1, 2, 2), abs reward: r = (-1/3, -1/6, -2/3) (see
# test_score_ops). beta = 1 / (6 ln 2) makes r / beta = (-2 ln 2, -ln 2, -4 ln 2), so
# exp(r / beta) = (1/4, 1/2, 1/16) and pi_ref * exp(r / beta) = (0.05, 0.25, 0.01875), Z = 0.31875:
#     pi* = (0.05, 0.25, 0.01875) / 0.31875 = (8, 40, 3) / 51.
# With the model at the reference (logits = log pi_ref), using log(pi*/pi_ref) = r/beta - log Z:
#     KL(pi* || pi_ref) = E_pi*[r] / beta - log Z = -(16 + 40 + 12)/51 ln 2 - ln(51/160)
#                       = ln(160/51) - (4/3) ln 2 = 0.219152
#     E_pi*[s] = (8 + 80 + 9) / 51 = 97/51,  E_pi_ref[s] = 0.2 + 1.0 + 0.9 = 2.1
#     dL/dlogits = pi_ref - pi* = (0.2 - 8/51, 0.5 - 40/51, 0.3 - 3/51).
REF3 = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
Y3 = torch.tensor([1, 2, 2])
BETA3 = 1 / (6 * math.log(2))
TARGET3 = torch.tensor([8, 40, 3], dtype=torch.float64) / 51


def test_hand_worked_k3():
    logits = REF3.log().clone().requires_grad_()
    out = aso_loss(logits, REF3, Y3, beta=BETA3, eps=0.0)
    torch.testing.assert_close(out.target, TARGET3)
    assert out.loss.item() == pytest.approx(math.log(160 / 51) - 4 / 3 * math.log(2), abs=1e-12)
    assert out.target_score.item() == pytest.approx(97 / 51, abs=1e-12)
    assert out.score.item() == pytest.approx(2.1, abs=1e-12)
    assert out.kl_to_ref.item() == pytest.approx(0.0, abs=1e-12)
    out.loss.backward()
    torch.testing.assert_close(logits.grad, REF3 - TARGET3)


def test_hand_worked_k3_with_eps_floor():
    """eps = 0.3: rho = 0.7 * (0.2, 0.5, 0.3) + 0.1 = (0.24, 0.45, 0.31);
    rho * (1/4, 1/2, 1/16) = (0.06, 0.225, 0.019375), Z = 0.304375, pi* = (0.197125, 0.739220, 0.063655)."""
    target = aso_target(REF3, Y3, beta=BETA3, eps=0.3)
    expected = torch.tensor([0.06, 0.225, 0.019375], dtype=torch.float64) / 0.304375
    torch.testing.assert_close(target, expected)
    assert target.tolist() == pytest.approx([0.197125, 0.739220, 0.063655], abs=1e-6)


# --- closed form versus a numerical maximiser on the simplex -------------------------------


def _numpy_reward(y: np.ndarray, k: int, kind: str) -> np.ndarray:
    s = np.arange(1, k + 1, dtype=np.float64)[:, None]
    if kind == "abs":
        return -np.abs(s - y).mean(1) / (k - 1)
    if kind == "squared":
        return -((s - y) ** 2).mean(1) / (k - 1) ** 2
    return -np.abs(s[:, 0] - y.mean()) / (k - 1)


def _numerical_maximiser(r: np.ndarray, rho: np.ndarray, beta: float) -> tuple[np.ndarray, float]:
    """argmax_pi E_pi[r] - beta KL(pi || rho), pi = softmax(z), by L-BFGS with the exact gradient."""

    def neg_objective(z):
        z = z - z.max()
        pi = np.exp(z) / np.exp(z).sum()
        log_ratio = np.log(pi) - np.log(rho)
        value = pi @ r - beta * pi @ log_ratio
        g = r - beta * (log_ratio + 1)  # dJ/dpi
        grad_z = pi * (g - pi @ g)  # chain rule through the softmax
        return -value, -grad_z

    res = minimize(
        neg_objective,
        np.zeros_like(r),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-13, "ftol": 1e-15, "maxiter": 20000, "maxcor": 30},
    )
    z = res.x - res.x.max()
    return np.exp(z) / np.exp(z).sum(), -res.fun


@pytest.mark.parametrize("k", [2, 3, 5, 10])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["abs", "squared", "mean_abs"])
def test_closed_form_equals_numerical_maximiser(k, seed, kind):
    rng = np.random.default_rng(1000 * k + seed)
    pi_ref = rng.dirichlet(np.full(k, 0.7))
    ratings = rng.integers(1, k + 1, size=rng.integers(3, 8))
    beta = float(np.exp(rng.uniform(np.log(0.01), np.log(5.0))))
    eps = 1e-3
    target = aso_target(torch.from_numpy(pi_ref), torch.from_numpy(ratings), beta=beta, eps=eps, reward=kind)
    rho = floor_reference(torch.from_numpy(pi_ref), eps).numpy()
    r = _numpy_reward(ratings.astype(np.float64), k, kind)
    numeric, best = _numerical_maximiser(r, rho, beta)
    np.testing.assert_allclose(target.numpy(), numeric, atol=1e-6, rtol=0)
    # and the optimum value is beta log Z (the identity J(pi) = beta log Z - beta KL(pi || pi*))
    assert best == pytest.approx(beta * np.log(rho @ np.exp(r / beta)), abs=1e-9)


# --- limits --------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 5, 10])
def test_beta_to_infinity_gives_the_reference(k):
    torch.manual_seed(k)
    pi_ref = torch.distributions.Dirichlet(torch.ones(4, k)).sample().double()
    pi_ref = pi_ref / pi_ref.sum(-1, keepdim=True)  # exactly normalised in float64
    ratings = torch.randint(1, k + 1, (4, 5))
    torch.testing.assert_close(aso_target(pi_ref, ratings, beta=1e9, eps=0.0), pi_ref, atol=1e-8, rtol=0)
    floored = floor_reference(pi_ref, 0.05)
    torch.testing.assert_close(aso_target(pi_ref, ratings, beta=1e9, eps=0.05), floored, atol=1e-8, rtol=0)


@pytest.mark.parametrize("k", [3, 5, 10])
@pytest.mark.parametrize("kind", ["abs", "squared", "mean_abs"])
def test_beta_to_zero_concentrates_on_the_best_level(k, kind):
    """Odd rater counts: abs -> the rater median; squared / mean_abs -> the level nearest the mean
    (an odd count of integers never averages to a half-integer, so there is no tie)."""
    gen = torch.Generator().manual_seed(7 * k)
    pi_ref = torch.distributions.Dirichlet(torch.ones(32, k)).sample().double()
    n = 1 + 2 * torch.randint(1, 4, (1,), generator=gen).item()
    ratings = torch.randint(1, k + 1, (32, n), generator=gen)
    target = aso_target(pi_ref, ratings, beta=1e-5, eps=1e-3, reward=kind)
    if kind == "abs":
        best = ratings.median(-1).values
    else:
        best = ratings.double().mean(-1).round().long()  # never at .5 here
    mass = target.gather(-1, (best - 1).unsqueeze(-1)).squeeze(-1)
    assert bool((mass > 1 - 1e-6).all()), (ratings, target)


# --- gradient ---------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 5, 10])
def test_gradient_is_softmax_minus_target(k):
    torch.manual_seed(100 + k)
    batch = (3, 5)  # e.g. 3 videos x 5 dimensions = 15 items
    logits = (2 * torch.randn(*batch, k, dtype=torch.float64)).requires_grad_()
    pi_ref = torch.distributions.Dirichlet(torch.ones(*batch, k)).sample().double()
    ratings = torch.randint(1, k + 1, (*batch, 4))
    out = aso_loss(logits, pi_ref, ratings, beta=0.3, eps=1e-3)
    out.loss.backward()
    n_items = 15
    expected = (torch.softmax(logits.detach(), -1) - out.target) / n_items
    torch.testing.assert_close(logits.grad, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(out.loss, out.kl.mean())


def test_loss_is_zero_at_the_target_and_descent_reaches_it():
    torch.manual_seed(3)
    pi_ref = torch.distributions.Dirichlet(torch.ones(8, 5)).sample()
    ratings = torch.randint(1, 6, (8, 3))
    target = aso_target(pi_ref, ratings, beta=0.2)
    at_target = aso_loss(target.log(), pi_ref, ratings, beta=0.2)
    assert at_target.loss.item() == pytest.approx(0.0, abs=1e-6)
    logits = torch.zeros(8, 5, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=8.0 * 5)
    for _ in range(300):
        opt.zero_grad()
        aso_loss(logits, pi_ref, ratings, beta=0.2).loss.backward()
        opt.step()
    torch.testing.assert_close(torch.softmax(logits, -1).double(), target, atol=1e-4, rtol=0)


# --- the eps floor, K = 10, masks, validation -----------------------------------------------


def test_eps_floor_lets_a_zero_reference_score_gain_mass():
    """pi_ref(1) = 0 but every rater says 1: with eps the target and the gradient push mass onto 1;
    with eps = 0 the target stays exactly 0 there."""
    pi_ref = torch.tensor([0.0, 0.2, 0.5, 0.2, 0.1])
    ratings = torch.tensor([1, 1, 1])
    logits = torch.tensor([-30.0, 0.0, 1.0, 0.0, -1.0], requires_grad=True)
    floored = aso_loss(logits, pi_ref, ratings, beta=0.02, eps=1e-3)
    assert floored.target[0].item() > 0.9  # 2e-4 * 1 against 0.2 * exp(-12.5) = 7e-7 for score 2
    floored.loss.backward()
    assert logits.grad[0].item() < 0  # gradient descent raises logit 1
    stuck = aso_target(pi_ref, ratings, beta=0.02, eps=0.0)
    assert stuck[0].item() == 0.0
    assert torch.isfinite(aso_loss(logits, pi_ref, ratings, beta=0.02, eps=0.0).loss)


def test_k10_end_to_end():
    """Ratings (9, 10, 10) on 1..10: abs reward peaks at the median 10; the target moves the expected
    score up from the reference's; the vocabulary form gives the same loss."""
    k = 10
    pi_ref = torch.full((k,), 0.1)
    ratings = torch.tensor([9, 10, 10])
    logits = torch.zeros(k, requires_grad=True)
    out = aso_loss(logits, pi_ref, ratings, beta=0.05)
    assert out.target.argmax().item() == 9 and out.target_score.item() > 9.0
    assert out.score.item() == pytest.approx(5.5)
    out.loss.backward()
    torch.testing.assert_close(logits.grad, torch.softmax(logits.detach(), -1) - out.target.float())
    vocab = torch.randn(2, 50)
    ids = torch.arange(20, 30)
    full = aso_loss_from_vocab(vocab, ids, pi_ref.expand(2, k), ratings.expand(2, 3), beta=0.05)
    direct = aso_loss(vocab[:, 20:30], pi_ref.expand(2, k), ratings.expand(2, 3), beta=0.05)
    torch.testing.assert_close(full.loss, direct.loss)


@pytest.mark.parametrize("pad", [0.0, 99.0, float("nan")])
def test_masked_raters_equal_dropping_them(pad):
    pi_ref = torch.tensor([[0.1, 0.2, 0.3, 0.2, 0.2], [0.5, 0.1, 0.1, 0.1, 0.2]])
    logits = torch.randn(2, 5)
    padded = torch.tensor([[2.0, 4.0, 5.0, pad], [1.0, 3.0, pad, pad]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    out = aso_loss(logits, pi_ref, padded, beta=0.1, mask=mask)
    for i, kept in enumerate(([2, 4, 5], [1, 3])):
        alone = aso_loss(logits[i], pi_ref[i], torch.tensor(kept), beta=0.1)
        torch.testing.assert_close(out.target[i], alone.target)
        torch.testing.assert_close(out.kl[i], alone.kl)


def test_invalid_inputs_raise():
    pi_ref = torch.full((2, 5), 0.2)
    logits = torch.zeros(2, 5)
    with pytest.raises(ValueError, match=r"integers in 1\.\.5"):
        aso_loss(logits, pi_ref, torch.tensor([[1, 6], [2, 3]]), beta=0.1)
    with pytest.raises(ValueError, match=r"integers in 1\.\.5"):
        aso_loss(logits, pi_ref, torch.tensor([[0, 3], [2, 3]]), beta=0.1)
    with pytest.raises(ValueError, match=r"integers in 1\.\.5"):
        aso_loss(logits, pi_ref, torch.tensor([[2.5, 3.0], [2.0, 3.0]]), beta=0.1)
    with pytest.raises(ValueError, match="pi_ref"):
        aso_loss(logits, torch.full((2, 5), 0.5), torch.tensor([[1, 2], [2, 3]]), beta=0.1)
    with pytest.raises(ValueError, match="must match"):
        aso_loss(torch.zeros(2, 4), pi_ref, torch.tensor([[1, 2], [2, 3]]), beta=0.1)
    with pytest.raises(ValueError, match="at least one rating"):
        aso_loss(
            logits, pi_ref, torch.tensor([[1, 2], [2, 3]]), beta=0.1, mask=torch.tensor([[1, 1], [0, 0]])
        )


def test_total_loss_and_config():
    aso, sft = torch.tensor(0.5), torch.tensor(2.0)
    assert aso_total_loss(aso, sft, 0.05).item() == pytest.approx(0.6)
    assert aso_total_loss(aso, None, 0.05).item() == 0.5
    cfg = ASOConfig()
    assert (cfg.eps, cfg.reward, cfg.sft_weight) == (1e-3, "abs", 0.05)
    assert ASOConfig.load(None, ["beta=0.5", "reward=squared"]).beta == 0.5
    with pytest.raises(ValueError):
        ASOConfig(beta=0.0)
    with pytest.raises(ValueError):
        ASOConfig(reward="huber")
