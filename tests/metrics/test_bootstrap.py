"""The vectorised bootstrap computes the metrics of quality.dimension_metrics, draw by draw."""

import math

import numpy as np
import pytest

from connectors.wire.dimensions import Dimension
from ultravqa_ray.metrics.bootstrap import BOOTSTRAP_METRICS, bootstrap_metrics, interval, resample_indices
from ultravqa_ray.metrics.quality import PairedScores, dimension_metrics, metric_value


def _paired(n: int = 40, k: int = 5, seed: int = 3) -> PairedScores:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, 0.7), size=n)
    score = (probs * np.arange(1, k + 1)).sum(-1)
    y = np.clip(score + rng.normal(0, 0.8, n), 1, k).round(1)  # ties on purpose (average ranks)
    return PairedScores(
        dimension=Dimension("clarity_quality"), k=k, video_ids=[str(i) for i in range(n)], y_mean=y,
        rounded=np.floor(y + 0.5).astype(np.int64), q=np.full((n, k), 1 / k), score=score,
        label=probs.argmax(-1) + 1, probs=probs, missing=[],
    )  # fmt: skip


def _subset(p: PairedScores, rows: np.ndarray) -> PairedScores:
    return PairedScores(
        dimension=p.dimension, k=p.k, video_ids=[p.video_ids[i] for i in rows], y_mean=p.y_mean[rows],
        rounded=p.rounded[rows], q=p.q[rows], score=p.score[rows], label=p.label[rows], probs=p.probs[rows],
        missing=[],
    )  # fmt: skip


def test_each_draw_equals_dimension_metrics_on_the_resampled_videos():
    paired = _paired()
    idx = np.vstack([np.arange(paired.n), resample_indices(paired.n, 5, seed=1)])
    draws = bootstrap_metrics(paired, idx)
    for b, rows in enumerate(idx):
        expected = dimension_metrics(_subset(paired, rows))
        for name in BOOTSTRAP_METRICS:
            assert draws[name][b] == pytest.approx(metric_value(expected, name), abs=1e-9), (name, b)


def test_constant_draw_gives_nan_correlations_and_interval_skips_nan():
    paired = _paired(n=6)
    draws = bootstrap_metrics(paired, np.zeros((2, 6), dtype=np.int64))  # every draw: video 0 six times
    assert math.isnan(draws["srcc"][0]) and math.isnan(draws["plcc"][1])
    assert interval(np.array([np.nan, 1.0, 2.0, 3.0]))[0] >= 1.0
    assert all(math.isnan(v) for v in interval(np.array([np.nan])))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"idx must be \(B, 40\)"):
        bootstrap_metrics(_paired(), np.zeros((3, 7), dtype=np.int64))
    with pytest.raises(ValueError, match="at least one video"):
        resample_indices(0, 10)


def test_bias_corrected_interval_keeps_a_calibrated_models_ece():
    """A perfectly calibrated model: 20 videos in each confidence bin 0.25, 0.35, ..., 0.95, of which
    exactly 20 x confidence are right, so ECE is 0. A resample's ECE adds up the bins' noise
    (|gap| per bin), so nearly every draw is above 0 and the plain percentile interval excludes the
    point estimate; shifted by the bootstrap bias (mean of draws - point) it covers it."""
    k, per_bin = 5, 20
    conf = np.repeat(np.arange(2, 10) / 10 + 0.05, per_bin)
    n = conf.size
    probs = np.repeat(((1 - conf) / (k - 1))[:, None], k, axis=1)
    probs[:, 2] = conf
    right = np.concatenate([np.arange(per_bin) < round(per_bin * c) for c in np.arange(2, 10) / 10 + 0.05])
    rounded = np.where(right, 3, 4)
    paired = PairedScores(
        dimension=Dimension("clarity_quality"), k=k, video_ids=[str(i) for i in range(n)],
        y_mean=rounded.astype(float), rounded=rounded, q=np.full((n, k), 1 / k), score=np.full(n, 3.0),
        label=np.full(n, 3), probs=probs, missing=[],
    )  # fmt: skip
    point = metric_value(dimension_metrics(paired), "ece")
    assert point == pytest.approx(0.0, abs=1e-12)
    draws = bootstrap_metrics(paired, resample_indices(n, 1000, seed=0))["ece"]
    assert interval(draws)[0] > point + 0.01  # the plain interval misses the estimate
    lo, hi = interval(draws, point=point)
    assert lo <= point <= hi
    bias = draws.mean() - point
    assert (lo, hi) == pytest.approx(tuple(np.percentile(draws, [2.5, 97.5]) - bias))
    # by hand: draws 1..5 with the point at 2 are shifted down by their bias of 1
    assert interval(np.arange(1.0, 6.0), point=2.0) == pytest.approx((0.1, 3.9))
