"""Model-versus-rater metrics per dimension and their mean over dimensions (DESIGN.md section 5).

For a dimension d, video i with rater mean ``y_i``, rounded rater mean ``r_i = round_half_up(y_i)``,
empirical rater distribution ``q_i(s)``, and the model's read-out (section 3) ``p_i(s)``, expected
score ``x_i = sum_s s * p_i(s)`` and label ``l_i = argmax_s p_i(s)``::

    acc@0.5 = mean_i [ |x_i - y_i| <= 0.5 ]          (1e-9 slack against float noise)
    exact   = mean_i [ l_i == r_i ]
    mae     = mean_i |x_i - y_i|
    srcc, plcc, krcc = Spearman, Pearson, Kendall (tau-b) correlation of x with y   (scipy.stats)

and a calibration summary of the distribution p against the raters:

    nll   = mean_i  - sum_s q_i(s) * log p_i(s)       (the mean NLL of one rater's score; p floored at 1e-12)
    brier = mean_i  sum_s (p_i(s) - q_i(s))^2         (multi-class Brier score, 0 .. 2)
    ece   = sum_b (n_b / n) * | acc_b - conf_b |      (confidence c_i = p_i(l_i), correct = [l_i == r_i],
                                                       B equal-width bins over [0, 1], b holds [b/B, (b+1)/B))

A correlation is undefined when either side is constant or fewer than two videos are paired: it is
reported as NaN (``null`` in JSON) with a warning, never raised. The ``overall`` row is the
unweighted mean over dimensions of each metric, taken over the dimensions where it is defined (a
warning says when one was left out). Videos without a prediction are counted and listed, never
silently dropped; predictions for unknown videos are listed as ``unmatched``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from scipy import stats

from connectors.wire.dimensions import DIMENSIONS, Dimension
from connectors.wire.messages import DimensionScore, ScoreEvent
from ultravqa_ray.schemas.annotation import AnnotationRecord, ScoreScale

#: ``{video_id: {dimension: read-out}}``; a read-out is a ``DimensionScore`` or anything with
#: ``score``, ``label`` and ``probs`` (attributes or mapping keys).
Predictions = Mapping[str, Mapping[Dimension, Any]]

ACC_TOLERANCE = 0.5
_SLACK = 1e-9
_PROB_FLOOR = 1e-12


def _none_to_nan(value: Any) -> Any:
    return math.nan if value is None else value


#: A float that may be undefined: NaN in Python, ``null`` in JSON (and read back as NaN).
MaybeFloat = Annotated[float, BeforeValidator(_none_to_nan)]


class ReliabilityBin(BaseModel):
    """One non-empty confidence bin of the reliability diagram."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lower: float = Field(description="Lower edge of the confidence bin (inclusive).")
    upper: float = Field(description="Upper edge of the confidence bin (exclusive, 1.0 inclusive).")
    count: int = Field(ge=1, description="Videos whose label confidence falls in the bin.")
    confidence: float = Field(description="Mean p(label) over the bin.")
    accuracy: float = Field(description="Share of the bin whose label equals the rounded rater mean.")


class Metrics(BaseModel):
    """The metric values shared by a dimension row and the overall row."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    n: int = Field(ge=0, description="Videos paired with a prediction (overall: summed over dimensions).")
    acc_at_0_5: MaybeFloat = Field(alias="acc@0.5", description="Share with |score - y_mean| <= 0.5.")
    exact: MaybeFloat = Field(description="Share with label == round_half_up(y_mean).")
    mae: MaybeFloat = Field(description="Mean |score - y_mean|.")
    srcc: MaybeFloat = Field(description="Spearman correlation of score with y_mean.")
    plcc: MaybeFloat = Field(description="Pearson correlation of score with y_mean.")
    krcc: MaybeFloat = Field(description="Kendall tau-b of score with y_mean.")
    ece: MaybeFloat = Field(description="Expected calibration error of the label confidence.")
    nll: MaybeFloat = Field(description="Mean -sum_s q(s) log p(s) against the rater distribution.")
    brier: MaybeFloat = Field(description="Mean sum_s (p(s) - q(s))^2 against the rater distribution.")
    warnings: list[str] = Field(default_factory=list, description="Why a value is NaN or partial.")


METRIC_NAMES: tuple[str, ...] = ("acc@0.5", "exact", "mae", "srcc", "plcc", "krcc", "ece", "nll", "brier")
_FIELD = {"acc@0.5": "acc_at_0_5"}


def metric_value(metrics: Metrics, name: str) -> float:
    """The value of a metric by its reported name (``acc@0.5``, ``srcc``, ...)."""
    return float(getattr(metrics, _FIELD.get(name, name)))


class DimensionMetrics(Metrics):
    dimension: Dimension
    n_missing: int = Field(ge=0, description="Videos rated on this dimension but without a prediction.")
    reliability: list[ReliabilityBin] = Field(default_factory=list, description="Non-empty confidence bins.")


class OverallMetrics(Metrics):
    dimensions: list[Dimension] = Field(description="The dimensions the means are taken over.")


class EvalResult(BaseModel):
    """Everything ``metrics.json`` holds; ``EvalResult.model_validate_json`` reads it back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    k: int = Field(ge=2, description="Score levels 1..K.")
    n_records: int = Field(ge=0, description="Annotated videos evaluated.")
    per_dimension: dict[Dimension, DimensionMetrics] = Field(
        description="One row per dimension, canonical order."
    )
    overall: OverallMetrics = Field(description="Unweighted mean over dimensions.")
    missing: list[str] = Field(
        default_factory=list, description="Videos lacking a prediction on at least one rated dimension."
    )
    unmatched: list[str] = Field(default_factory=list, description="Predicted video ids not in the records.")
    meta: dict[str, str] = Field(default_factory=dict, description="Free map: manifest, model, ...")


@dataclass(frozen=True)
class PairedScores:
    """Ratings and predictions of one dimension, aligned video by video (shape n, or n x K)."""

    dimension: Dimension
    k: int
    video_ids: list[str]
    y_mean: np.ndarray
    rounded: np.ndarray
    q: np.ndarray
    score: np.ndarray
    label: np.ndarray
    probs: np.ndarray
    missing: list[str]

    @property
    def n(self) -> int:
        return len(self.video_ids)


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj[name]
    return getattr(obj, name)


def check_read_out(obj: Any, k: int, where: str) -> tuple[float, int, np.ndarray]:
    """``(score, label, probs)`` of one read-out, checked against 1..K; ``where`` prefixes the error."""
    try:
        score, label, probs = (_field(obj, f) for f in ("score", "label", "probs"))
        score, label = float(score), int(label)
        p = np.asarray(probs, dtype=np.float64).reshape(-1)
    except (KeyError, AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: not a score read-out with score, label and probs ({exc})") from exc
    if p.shape[0] != k:
        raise ValueError(f"{where}: probs has {p.shape[0]} entries, expected K = {k}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or abs(p.sum() - 1.0) > 1e-3:
        raise ValueError(f"{where}: probs must be finite, non-negative and sum to 1")
    if not 1 <= label <= k:
        raise ValueError(f"{where}: label {label} outside 1..{k}")
    if not (math.isfinite(score) and 1 - 1e-6 <= score <= k + 1e-6):
        raise ValueError(f"{where}: score {score} outside [1, {k}]")
    return score, label, p


def pair_scores(
    records: Sequence[AnnotationRecord], predictions: Predictions, dimension: Dimension, k: int
) -> PairedScores:
    """Align the records rated on ``dimension`` with their predictions; unpredicted ones go to ``missing``."""
    ids, y, rounded, q, score, label, probs, missing = [], [], [], [], [], [], [], []
    for rec in records:
        if not rec.given(dimension):
            continue
        pred = predictions.get(rec.video_id)
        if pred is None or dimension not in pred:
            missing.append(rec.video_id)
            continue
        s, lab, p = check_read_out(pred[dimension], k, f"video {rec.video_id!r} {dimension.value}")
        ids.append(rec.video_id)
        y.append(rec.y_mean(dimension))
        rounded.append(rec.rounded_mean(dimension))
        q.append(rec.distribution(dimension, k))
        score.append(s)
        label.append(lab)
        probs.append(p)
    return PairedScores(
        dimension=dimension,
        k=k,
        video_ids=ids,
        y_mean=np.asarray(y, dtype=np.float64),
        rounded=np.asarray(rounded, dtype=np.int64),
        q=np.asarray(q, dtype=np.float64).reshape(-1, k),
        score=np.asarray(score, dtype=np.float64),
        label=np.asarray(label, dtype=np.int64),
        probs=np.asarray(probs, dtype=np.float64).reshape(-1, k),
        missing=missing,
    )


def correlations(x: np.ndarray, y: np.ndarray, *, what: str = "score", target: str = "y_mean"):
    """``({"srcc", "plcc", "krcc"}, warnings)``; NaN with a warning when undefined, never an error."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    nan = {"srcc": math.nan, "plcc": math.nan, "krcc": math.nan}
    if x.shape[0] < 2:
        return nan, [f"correlations undefined: {x.shape[0]} paired video(s), need at least 2"]
    if np.ptp(x) == 0:
        return nan, [f"correlations undefined: every {what} is {x[0]:g} (constant input)"]
    if np.ptp(y) == 0:
        return nan, [f"correlations undefined: every {target} is {y[0]:g} (constant input)"]
    return {
        "srcc": float(stats.spearmanr(x, y).statistic),
        "plcc": float(stats.pearsonr(x, y).statistic),
        "krcc": float(stats.kendalltau(x, y).statistic),
    }, []


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width confidence bins over [0, 1]; bin b holds [b/B, (b+1)/B), the last one also 1.0."""
    index = np.clip(np.floor(confidence * n_bins).astype(np.int64), 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = index == b
        if mask.any():
            bins.append(
                ReliabilityBin(
                    lower=b / n_bins,
                    upper=(b + 1) / n_bins,
                    count=int(mask.sum()),
                    confidence=float(confidence[mask].mean()),
                    accuracy=float(correct[mask].mean()),
                )
            )
    return bins


def expected_calibration_error(bins: Sequence[ReliabilityBin]) -> float:
    total = sum(b.count for b in bins)
    if total == 0:
        return math.nan
    return float(sum(b.count / total * abs(b.accuracy - b.confidence) for b in bins))


def dimension_metrics(paired: PairedScores, *, n_bins: int = 10) -> DimensionMetrics:
    """The metrics of one dimension from its aligned scores."""
    warnings: list[str] = []
    if paired.missing:
        warnings.append(
            f"{len(paired.missing)} of {paired.n + len(paired.missing)} rated videos have no prediction"
        )
    if paired.n == 0:
        warnings.append("no video paired with a prediction: every metric is undefined")
        nan = math.nan
        return DimensionMetrics(
            dimension=paired.dimension,
            n=0,
            n_missing=len(paired.missing),
            warnings=warnings,
            acc_at_0_5=nan,
            exact=nan,
            mae=nan,
            srcc=nan,
            plcc=nan,
            krcc=nan,
            ece=nan,
            nll=nan,
            brier=nan,
        )
    err = np.abs(paired.score - paired.y_mean)
    corr, corr_warnings = correlations(
        paired.score, paired.y_mean, what="predicted score", target="rater mean"
    )
    warnings.extend(corr_warnings)

    rows = np.arange(paired.n)
    correct = paired.label == paired.rounded
    bins = reliability_bins(paired.probs[rows, paired.label - 1], correct, n_bins)
    log_p = np.log(np.maximum(paired.probs, _PROB_FLOOR))
    nll = -np.where(paired.q > 0, paired.q * log_p, 0.0).sum(axis=1)
    brier = ((paired.probs - paired.q) ** 2).sum(axis=1)
    return DimensionMetrics(
        dimension=paired.dimension,
        n=paired.n,
        n_missing=len(paired.missing),
        acc_at_0_5=float(np.mean(err <= ACC_TOLERANCE + _SLACK)),
        exact=float(np.mean(correct)),
        mae=float(np.mean(err)),
        **corr,
        ece=expected_calibration_error(bins),
        nll=float(nll.mean()),
        brier=float(brier.mean()),
        reliability=bins,
        warnings=warnings,
    )


def overall_metrics(rows: Sequence[DimensionMetrics]) -> OverallMetrics:
    """Unweighted mean over dimensions, per metric over the dimensions where it is defined."""
    values: dict[str, float] = {}
    partial: dict[tuple[str, ...], list[str]] = {}  # left-out dimensions -> the metrics concerned
    for name in METRIC_NAMES:
        defined = [metric_value(r, name) for r in rows if math.isfinite(metric_value(r, name))]
        values[_FIELD.get(name, name)] = float(np.mean(defined)) if defined else math.nan
        left_out = tuple(r.dimension.value for r in rows if not math.isfinite(metric_value(r, name)))
        if left_out:
            partial.setdefault(left_out, []).append(name)
    warnings = [
        f"{', '.join(names)}: mean over {len(rows) - len(left_out)} of {len(rows)} dimensions "
        f"(undefined for {', '.join(left_out)})"
        for left_out, names in partial.items()
    ]
    return OverallMetrics(
        dimensions=[r.dimension for r in rows], n=sum(r.n for r in rows), warnings=warnings, **values
    )


def evaluate_predictions(
    records: Sequence[AnnotationRecord],
    predictions: Predictions,
    k: int = 5,
    *,
    dimensions: Sequence[Dimension] | None = None,
    n_bins: int = 10,
    meta: Mapping[str, str] | None = None,
) -> EvalResult:
    """Score ``predictions`` against the raters of ``records`` (module docstring for the definitions).

    ``dimensions`` defaults to every dimension rated in at least one record, in canonical order.
    Ratings outside 1..k, duplicate video ids and malformed read-outs raise ``ValueError``.
    """
    scale = ScoreScale(k=k)
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    seen: set[str] = set()
    for rec in records:
        if rec.video_id in seen:
            raise ValueError(f"duplicate video_id {rec.video_id!r} in the records")
        seen.add(rec.video_id)
        rec.check_scale(scale)
    if dimensions is None:
        dimensions = [d for d in DIMENSIONS if any(rec.given(d) for rec in records)]
    else:
        dimensions = [Dimension(d) for d in dimensions]
    paired = [pair_scores(records, predictions, dim, k) for dim in dimensions]
    rows = [dimension_metrics(p, n_bins=n_bins) for p in paired]
    missing_any = {vid for p in paired for vid in p.missing}
    return EvalResult(
        k=k,
        n_records=len(records),
        per_dimension={r.dimension: r for r in rows},
        overall=overall_metrics(rows),
        missing=[rec.video_id for rec in records if rec.video_id in missing_any],
        unmatched=sorted(vid for vid in predictions if vid not in seen),
        meta=dict(meta or {}),
    )


# --- predictions from the scorer's output ---------------------------------------------------


def predictions_from_events(events: Iterable[ScoreEvent]) -> dict[str, dict[Dimension, DimensionScore]]:
    """``{video_id: scores}`` from score events; a later event for the same video wins."""
    return {event.video_id: dict(event.scores) for event in events}


def read_predictions_jsonl(path: str | Path) -> tuple[dict[str, dict[Dimension, DimensionScore]], list[dict]]:
    """Read ``ultravqa-ray score`` output: score events become predictions, error lines are returned.

    Blank lines are skipped; a line that is neither raises ``ValueError`` naming the file and line.
    """
    path = Path(path)
    events: list[ScoreEvent] = []
    errors: list[dict] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if isinstance(data, dict) and "error_kind" in data and "scores" not in data:
                    errors.append(data)
                else:
                    events.append(ScoreEvent.model_validate(data))
            except ValueError as exc:  # JSONDecodeError and ValidationError are ValueErrors
                raise ValueError(f"{path} line {lineno}: not a score event or error line: {exc}") from exc
    return predictions_from_events(events), errors
