"""Rater quality control: agreement, leave-one-out consensus, gold accuracy and the P.910 subject model.

Per dimension, over every video and rater:

- Krippendorff's alpha, ordinal (:mod:`ultravqa_ray.metrics.agreement`).
- Each rater against the leave-one-out consensus ``c_ij`` = mean of the *other* raters of video j:
  ``bias_i = mean_j (u_ij - c_ij)`` (a rater who always adds one point shows +1), the Pearson
  correlation of ``u_ij`` with ``c_ij`` (a random rater shows ~0) and the mean absolute difference.
- Gold accuracy: the share of a rater's ratings of gold videos (known answers, mixed into the work
  at a set rate) within ``gold_tolerance`` points of the answer.
- The subject model of ITU-T P.910 (Annex on subject screening) / Netflix SUREAL's
  ``MLE_CO`` (Li & Bampis, "Recover subjective quality scores from noisy measurements", 2017)::

      u_ij = psi_j + Delta_i + upsilon_i * X,   X ~ N(0, 1)

  psi_j the video's true score, Delta_i the rater's bias (mean zero over raters), upsilon_i the
  rater's inconsistency. The maximum-likelihood fixed point, iterated to convergence::

      psi_j     = sum_i w_i (u_ij - Delta_i) / sum_i w_i,     w_i = 1 / upsilon_i^2   (raters of j)
      Delta_i   = mean_j (u_ij - psi_j),  then centred to mean zero
      upsilon_i = sqrt( mean_j (u_ij - psi_j - Delta_i)^2 )

  with confidence intervals from the Fisher information: ``std(psi_j) = 1 / sqrt(sum_i w_i)``, so a
  video rated by consistent raters is known more precisely. ``tests/labels/test_quality.py`` checks
  it against ``sureal`` itself.

A rater with at least ``min_items`` videos is marked for exclusion when any threshold of
:class:`~ultravqa_ray.labels.config.Thresholds` is broken; the reasons are listed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, Field

from connectors.wire.dimensions import Dimension
from ultravqa_ray.labels.config import Thresholds
from ultravqa_ray.labels.records import Rating
from ultravqa_ray.metrics.agreement import krippendorff_alpha

_Z95 = 1.959963984540054
# Floor of upsilon: the rounding noise of an integer scale, std of U(-1/2, 1/2) = 1/sqrt(12). Without
# it the likelihood is unbounded: a rater's upsilon can collapse to 0 by pulling psi onto their own
# scores, which then get all the weight (seen on simulated crowds with 5 raters a video).
MIN_UPSILON = 1 / math.sqrt(12)


class SubjectModel(BaseModel):
    """The P.910 / SUREAL subject model fitted on one dimension."""

    videos: list[str]
    raters: list[str]
    scores: list[float] = Field(description="Recovered score psi_j per video.")
    scores_std: list[float] = Field(description="Standard error of each recovered score.")
    bias: list[float] = Field(description="Delta_i per rater (mean zero).")
    inconsistency: list[float] = Field(description="upsilon_i per rater.")
    iterations: int
    converged: bool

    def ci95(self) -> list[tuple[float, float]]:
        return [(s - _Z95 * e, s + _Z95 * e) for s, e in zip(self.scores, self.scores_std, strict=True)]


class RaterDimension(BaseModel):
    n: int = Field(description="Videos rated on this dimension that had another rater.")
    bias: float = Field(description="Mean offset from the leave-one-out consensus.")
    consensus_corr: float = Field(description="Pearson correlation with the leave-one-out consensus.")
    consensus_mae: float
    model_bias: float = Field(description="Delta_i of the subject model.")
    inconsistency: float = Field(description="upsilon_i of the subject model.")


class RaterReport(BaseModel):
    rater: str
    n_videos: int
    per_dimension: dict[Dimension, RaterDimension]
    bias: float = Field(description="Mean of the per-dimension biases.")
    consensus_corr: float = Field(description="Mean of the per-dimension correlations (NaN ignored).")
    inconsistency: float = Field(description="Mean of the per-dimension inconsistencies.")
    gold_n: int = 0
    gold_accuracy: float | None = None
    flagged: bool = False
    reasons: list[str] = Field(default_factory=list)


class DimensionQuality(BaseModel):
    alpha: float = Field(description="Krippendorff's alpha, ordinal.")
    n_videos: int
    n_ratings: int
    model: SubjectModel


class QualityReport(BaseModel):
    k: int
    n_videos: int
    n_raters: int
    n_ratings: int
    thresholds: Thresholds
    per_dimension: dict[Dimension, DimensionQuality]
    raters: list[RaterReport]

    @property
    def flagged(self) -> list[str]:
        return [r.rater for r in self.raters if r.flagged]


def fit_subject_model(
    matrix: np.ndarray, *, max_iter: int = 1000, tol: float = 1e-9, min_upsilon: float = MIN_UPSILON
) -> tuple:
    """Fit ``u_ij = psi_j + Delta_i + upsilon_i X`` on ``matrix`` (videos x raters, NaN = not rated).

    Returns ``(psi, psi_std, delta, upsilon, iterations, converged)``. Every video needs a rating
    and every rater at least one. ``min_upsilon`` floors each rater's inconsistency.
    """
    u = np.asarray(matrix, dtype=np.float64)
    seen = ~np.isnan(u)
    if not seen.any(axis=1).all() or not seen.any(axis=0).all():
        raise ValueError("every video and every rater needs at least one rating")
    n_rater = seen.sum(axis=0)
    filled = np.where(seen, u, 0.0)
    psi = filled.sum(axis=1) / seen.sum(axis=1)  # start: plain mean opinion score
    delta = np.zeros(u.shape[1])
    upsilon = np.ones(u.shape[1])
    converged, iterations = False, 0
    while iterations < max_iter:
        iterations += 1
        residual = np.where(seen, u - psi[:, None], 0.0)
        delta = residual.sum(axis=0) / n_rater
        delta -= delta.mean()
        noise = np.where(seen, u - psi[:, None] - delta[None, :], 0.0)
        upsilon = np.maximum(np.sqrt((noise**2).sum(axis=0) / n_rater), min_upsilon)
        w = np.where(seen, 1.0 / upsilon[None, :] ** 2, 0.0)
        new_psi = (w * np.where(seen, u - delta[None, :], 0.0)).sum(axis=1) / w.sum(axis=1)
        step = float(np.max(np.abs(new_psi - psi)))
        psi = new_psi
        if step < tol:
            converged = True
            break
    w = np.where(seen, 1.0 / upsilon[None, :] ** 2, 0.0)
    psi_std = 1.0 / np.sqrt(w.sum(axis=1))
    return psi, psi_std, delta, upsilon, iterations, converged


def quality_report(
    ratings: Sequence[Rating],
    *,
    k: int,
    dimensions: Sequence[Dimension],
    thresholds: Thresholds | None = None,
    gold: Mapping[str, Mapping[Dimension, int]] | None = None,
) -> QualityReport:
    """Quality control of every rater in ``ratings``; ``gold`` maps video -> known score per dimension."""
    thresholds = thresholds or Thresholds()
    gold = gold or {}
    videos = sorted({r.video_id for r in ratings})
    raters = sorted({r.rater for r in ratings})
    vi, ri = {v: i for i, v in enumerate(videos)}, {r: i for i, r in enumerate(raters)}
    per_dim: dict[Dimension, DimensionQuality] = {}
    rater_dims: dict[str, dict[Dimension, RaterDimension]] = {r: {} for r in raters}
    for dim in dimensions:
        m = np.full((len(videos), len(raters)), np.nan)
        for r in ratings:
            if r.dimension == dim:
                m[vi[r.video_id], ri[r.rater]] = r.score
        rows, cols = ~np.isnan(m).all(axis=1), ~np.isnan(m).all(axis=0)
        if not rows.any():
            continue
        sub = m[np.ix_(rows, cols)]
        psi, psi_std, delta, upsilon, iters, ok = fit_subject_model(sub)
        model = SubjectModel(
            videos=[v for v, keep in zip(videos, rows, strict=True) if keep],
            raters=[r for r, keep in zip(raters, cols, strict=True) if keep],
            scores=psi.tolist(), scores_std=psi_std.tolist(), bias=delta.tolist(),
            inconsistency=upsilon.tolist(), iterations=iters, converged=ok,
        )  # fmt: skip
        alpha = krippendorff_alpha(
            ([None if np.isnan(x) else float(x) for x in row] for row in sub),
            metric="ordinal",
            values=[float(s) for s in range(1, k + 1)],
        )
        per_dim[dim] = DimensionQuality(
            alpha=alpha, n_videos=int(rows.sum()), n_ratings=int((~np.isnan(sub)).sum()), model=model
        )
        for j, rater in enumerate(model.raters):
            rater_dims[rater][dim] = _against_consensus(sub, j, delta[j], upsilon[j])
    reports = [_rater_report(r, rater_dims[r], ratings, gold, thresholds) for r in raters]
    return QualityReport(
        k=k,
        n_videos=len(videos),
        n_raters=len(raters),
        n_ratings=len(ratings),
        thresholds=thresholds,
        per_dimension=per_dim,
        raters=reports,
    )


def _against_consensus(m: np.ndarray, j: int, model_bias: float, inconsistency: float) -> RaterDimension:
    others = np.delete(m, j, axis=1)
    count = (~np.isnan(others)).sum(axis=1)
    mine = m[:, j]
    keep = ~np.isnan(mine) & (count > 0)
    if not keep.any():
        nan = float("nan")
        return RaterDimension(n=0, bias=nan, consensus_corr=nan, consensus_mae=nan,
                              model_bias=float(model_bias), inconsistency=float(inconsistency))  # fmt: skip
    consensus = np.nansum(others[keep], axis=1) / count[keep]
    diff = mine[keep] - consensus
    return RaterDimension(
        n=int(keep.sum()),
        bias=float(diff.mean()),
        consensus_corr=_pearson(mine[keep], consensus),
        consensus_mae=float(np.abs(diff).mean()),
        model_bias=float(model_bias),
        inconsistency=float(inconsistency),
    )


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r; a rater who gives one score to every video (while the others vary) carries no
    information and gets 0, not NaN, so the threshold catches them."""
    if len(a) < 3 or np.std(b) == 0:
        return float("nan")
    if np.std(a) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _mean(values) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _rater_report(
    rater: str,
    dims: dict[Dimension, RaterDimension],
    ratings: Sequence[Rating],
    gold: Mapping[str, Mapping[Dimension, int]],
    t: Thresholds,
) -> RaterReport:
    mine = [r for r in ratings if r.rater == rater]
    n_videos = len({r.video_id for r in mine})
    graded = [abs(r.score - gold[r.video_id][r.dimension]) <= t.gold_tolerance
              for r in mine if r.video_id in gold and r.dimension in gold[r.video_id]]  # fmt: skip
    report = RaterReport(
        rater=rater,
        n_videos=n_videos,
        per_dimension=dims,
        bias=_mean(d.bias for d in dims.values()),
        consensus_corr=_mean(d.consensus_corr for d in dims.values()),
        inconsistency=_mean(d.inconsistency for d in dims.values()),
        gold_n=len(graded),
        gold_accuracy=float(np.mean(graded)) if graded else None,
    )
    if n_videos < t.min_items:
        return report
    reasons = [f"{dim.value}: bias {d.bias:+.2f} beyond +-{t.max_abs_bias:g}"
               for dim, d in dims.items() if math.isfinite(d.bias) and abs(d.bias) > t.max_abs_bias]  # fmt: skip
    if math.isfinite(report.consensus_corr) and report.consensus_corr < t.min_consensus_corr:
        reasons.append(f"consensus correlation {report.consensus_corr:.2f} below {t.min_consensus_corr:g}")
    if math.isfinite(report.inconsistency) and report.inconsistency > t.max_inconsistency:
        reasons.append(f"inconsistency {report.inconsistency:.2f} above {t.max_inconsistency:g}")
    if report.gold_accuracy is not None and report.gold_accuracy < t.min_gold_accuracy:
        reasons.append(f"gold accuracy {report.gold_accuracy:.2f} below {t.min_gold_accuracy:g}")
    return report.model_copy(update={"flagged": bool(reasons), "reasons": reasons})


def gold_answers(records, dimensions: Sequence[Dimension]) -> dict[str, dict[Dimension, int]]:
    """Known answers from a gold manifest: the rounded rater mean of each record and dimension."""
    return {rec.video_id: {d: rec.rounded_mean(d) for d in dimensions if rec.given(d)} for rec in records}
