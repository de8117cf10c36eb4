"""The evaluation gate: is a candidate model better than the one in production, provably?

Both models are scored on the same held-out videos. For each dimension and for the mean over
dimensions, the difference in MAE, acc@0.5 and SRCC is bootstrapped over videos with the SAME
resample for both models (paired draws, :mod:`ultravqa_ray.metrics.bootstrap`), so the interval is
that of the difference, not of two independent estimates. Differences are oriented so that a
positive number is an improvement (``baseline - candidate`` for MAE, ``candidate - baseline`` for
acc@0.5 and SRCC).

The rule (:class:`GateRule`, configurable) accepts the candidate when

- on the mean over dimensions, every metric of ``rule.decide_on`` improved beyond its interval
  (the lower end of the ``rule.level`` interval of the improvement is above 0), and
- no dimension got worse than its tolerance on any metric: with ``rule.worse_when="interval"`` (the
  default) a dimension is worse when its whole interval lies below ``-tolerance`` (worse beyond
  doubt: on a small held-out set one video more or less moves acc@0.5 by 1/n); with ``"point"``
  when the point estimate does.

The videos compared are those rated on every dimension and scored by both models; a video only one
model could score is listed and left out (the comparison stays paired).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from connectors.wire.dimensions import DIMENSIONS
from ultravqa_ray.config import Config
from ultravqa_ray.metrics.bootstrap import bootstrap_metrics, interval, resample_indices
from ultravqa_ray.metrics.quality import PairedScores, Predictions, pair_scores
from ultravqa_ray.schemas.annotation import AnnotationRecord

GATE_METRICS: tuple[str, ...] = ("mae", "acc@0.5", "srcc")
_LOWER_IS_BETTER = {"mae"}


class GateTolerance(Config):
    """Largest worsening of each metric allowed on any one dimension."""

    mae: float = Field(0.05, ge=0, description="MAE may rise by this much on a dimension.")
    acc: float = Field(0.05, ge=0, description="acc@0.5 may fall by this much on a dimension.")
    srcc: float = Field(0.05, ge=0, description="SRCC may fall by this much on a dimension.")

    def by_metric(self) -> dict[str, float]:
        return {"mae": self.mae, "acc@0.5": self.acc, "srcc": self.srcc}


class GateRule(Config):
    """When a candidate replaces the baseline (module docstring)."""

    decide_on: list[str] = Field(
        default_factory=lambda: ["mae"],
        description="Metrics that must improve on the mean over dimensions beyond their interval.",
    )
    tolerance: GateTolerance = Field(
        default_factory=GateTolerance, description="Largest worsening of each metric allowed on any one dimension."
    )
    worse_when: Literal["interval", "point"] = Field(
        "interval", description="A dimension is worse when its whole interval (or its point estimate) is below -tolerance."
    )
    level: float = Field(0.95, gt=0, lt=1, description="Confidence level of the paired bootstrap intervals.")
    draws: int = Field(2000, ge=100, description="Bootstrap resamples over videos.")
    seed: int = Field(0, description="Seed of the resampling.")

    def model_post_init(self, context: Any) -> None:
        unknown = sorted(set(self.decide_on) - set(GATE_METRICS))
        if unknown:
            raise ValueError(f"gate metrics {unknown} are unknown; use {list(GATE_METRICS)}")


def _improvement(metric: str, candidate: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    return baseline - candidate if metric in _LOWER_IS_BETTER else candidate - baseline


def _restrict(paired: PairedScores, keep: Sequence[str]) -> PairedScores:
    pos = {v: i for i, v in enumerate(paired.video_ids)}
    idx = np.asarray([pos[v] for v in keep], dtype=np.int64)
    return PairedScores(
        dimension=paired.dimension, k=paired.k, video_ids=list(keep), y_mean=paired.y_mean[idx],
        rounded=paired.rounded[idx], q=paired.q[idx], score=paired.score[idx], label=paired.label[idx],
        probs=paired.probs[idx], missing=paired.missing,
    )  # fmt: skip


def compare(
    records: Sequence[AnnotationRecord],
    candidate: Predictions,
    baseline: Predictions,
    *,
    k: int,
    rule: GateRule | None = None,
) -> dict[str, Any]:
    """The gate's figures and decision (a JSON-able dict: the body of the promotion record)."""
    rule = rule or GateRule()
    rated = [r for r in records if all(r.given(d) for d in DIMENSIONS)]
    both = [r.video_id for r in rated if r.video_id in candidate and r.video_id in baseline]
    left_out = sorted(r.video_id for r in rated if r.video_id not in both)
    if len(both) < 2:
        raise ValueError(f"the gate needs at least 2 videos scored by both models and rated on every dimension, got {len(both)}")
    idx = resample_indices(len(both), rule.draws, rule.seed)  # one resample for both models and every dimension
    identity = np.arange(len(both))[None, :]
    draws: dict[str, dict[str, np.ndarray]] = {}
    points: dict[str, dict[str, float]] = {}
    per_dimension: dict[str, Any] = {}
    for dim in DIMENSIONS:
        cand = _restrict(pair_scores(rated, candidate, dim, k), both)
        base = _restrict(pair_scores(rated, baseline, dim, k), both)
        c_draw, b_draw = bootstrap_metrics(cand, idx), bootstrap_metrics(base, idx)
        c_point, b_point = bootstrap_metrics(cand, identity), bootstrap_metrics(base, identity)
        row = {}
        for m in GATE_METRICS:
            diff = _improvement(m, c_draw[m], b_draw[m])
            point = float(_improvement(m, c_point[m], b_point[m])[0])
            draws.setdefault(m, {})[dim.value] = diff
            points.setdefault(m, {})[dim.value] = point
            lo, hi = interval(diff, rule.level)
            row[m] = {"candidate": float(c_point[m][0]), "baseline": float(b_point[m][0]), "improvement": point,
                      "interval": [lo, hi]}  # fmt: skip
        per_dimension[dim.value] = row
    mean: dict[str, Any] = {}
    for m in GATE_METRICS:
        stacked = np.stack(list(draws[m].values()))  # (D, B)
        with warnings.catch_warnings():  # a draw where every dimension is undefined (constant SRCC) stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean_draws = np.nanmean(stacked, axis=0) if np.isfinite(stacked).any() else stacked[0]
        point_values = [v for v in points[m].values() if np.isfinite(v)]
        lo, hi = interval(mean_draws, rule.level)
        mean[m] = {"improvement": float(np.mean(point_values)) if point_values else float("nan"), "interval": [lo, hi]}
    reasons: list[str] = []
    for m in rule.decide_on:
        lo = mean[m]["interval"][0]
        if not (np.isfinite(lo) and lo > 0):
            reasons.append(f"mean {m} did not improve beyond its {rule.level:.0%} interval "
                           f"(improvement {mean[m]['improvement']:+.4f}, interval [{lo:+.4f}, {mean[m]['interval'][1]:+.4f}])")  # fmt: skip
    for dim_name, row in per_dimension.items():
        for m, tol in rule.tolerance.by_metric().items():
            value = row[m]["improvement"] if rule.worse_when == "point" else row[m]["interval"][1]
            if np.isfinite(value) and value < -tol:
                what = "" if rule.worse_when == "point" else " at the least (upper end of its interval)"
                reasons.append(f"{dim_name} {m} got worse by {-value:.4f}{what} (tolerance {tol:g})")
    return {
        "accepted": not reasons,
        "reasons": reasons,
        "rule": rule.model_dump(mode="json"),
        "n_videos": len(both),
        "left_out": left_out,
        "mean": mean,
        "per_dimension": per_dimension,
    }
