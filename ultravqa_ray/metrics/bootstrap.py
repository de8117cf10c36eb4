"""Bootstrap over videos of the quality metrics of :mod:`ultravqa_ray.metrics.quality`, vectorised.

One resample draws the n videos of a dimension with replacement; ``idx (B, n)`` holds B such draws.
For each draw the metrics are those of :func:`~ultravqa_ray.metrics.quality.dimension_metrics`
(the same definitions, computed on all draws at once rather than one ``DimensionMetrics`` each)::

    mae, acc@0.5, srcc (Pearson of average ranks, as scipy's spearmanr), plcc,
    ece = sum_b |sum_{i in b} correct_i - sum_{i in b} conf_i| / n      (10 equal-width bins)

Using the same ``idx`` for two models gives paired draws (their difference per draw is the
bootstrap of the difference). ``tests/metrics/test_bootstrap.py`` holds the identity draw to
``dimension_metrics``. :func:`interval` gives the 95% percentile interval, bias-corrected when given
the point estimate.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ultravqa_ray.metrics.quality import ACC_TOLERANCE, PairedScores

BOOTSTRAP_METRICS: tuple[str, ...] = ("mae", "acc@0.5", "srcc", "plcc", "ece")
_SLACK = 1e-9


def resample_indices(n: int, draws: int, seed: int = 0) -> np.ndarray:
    """``(draws, n)`` indices into n videos, drawn with replacement (row 0 is NOT the identity)."""
    if n < 1 or draws < 1:
        raise ValueError(f"need at least one video and one draw, got n={n}, draws={draws}")
    return np.random.default_rng(seed).integers(0, n, size=(draws, n))


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation per row of ``(B, n)`` arrays; NaN where a side is constant."""
    xc = x - x.mean(-1, keepdims=True)
    yc = y - y.mean(-1, keepdims=True)
    den = np.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(-1) / den
    return np.where(den > 1e-12, r, np.nan)


def bootstrap_metrics(paired: PairedScores, idx: np.ndarray, n_bins: int = 10) -> dict[str, np.ndarray]:
    """``{metric: (B,)}`` of one dimension over the draws ``idx (B, n)`` (n = ``paired.n``)."""
    if idx.ndim != 2 or idx.shape[1] != paired.n:
        raise ValueError(f"idx must be (B, {paired.n}), got {tuple(idx.shape)}")
    score, y = paired.score[idx], paired.y_mean[idx]
    err = np.abs(score - y)
    rows = np.arange(paired.n)
    conf = paired.probs[rows, paired.label - 1]
    correct = (paired.label == paired.rounded).astype(np.float64)
    bins = np.clip(np.floor(conf * n_bins).astype(np.int64), 0, n_bins - 1)
    one_hot = np.eye(n_bins)[bins]  # (n, bins)
    gap = (one_hot * (correct - conf)[:, None])[idx].sum(1)  # (B, bins)
    return {
        "mae": err.mean(-1),
        "acc@0.5": (err <= ACC_TOLERANCE + _SLACK).mean(-1),
        "srcc": _pearson_rows(stats.rankdata(score, axis=-1), stats.rankdata(y, axis=-1)),
        "plcc": _pearson_rows(score, y),
        "ece": np.abs(gap).sum(-1) / paired.n,
    }


def interval(draws: np.ndarray, level: float = 0.95, point: float | None = None) -> tuple[float, float]:
    """Percentile interval of bootstrap draws (NaN draws left out; NaN when none is defined).

    With ``point`` (the estimate on the original sample) the interval is bias-corrected: shifted by
    the bootstrap's estimate of the bias, ``mean(draws) - point``. This matters for ECE, a sum of
    absolute gaps: on a resample the gaps' noise adds up instead of cancelling, so its draws sit
    above the point estimate and the plain percentile interval can exclude it. For means and paired
    differences of means the shift is about zero.
    """
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    if point is not None and np.isfinite(point):
        bias = float(finite.mean()) - point
        lo, hi = lo - bias, hi - bias
    return float(lo), float(hi)
