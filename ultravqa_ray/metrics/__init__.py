"""Agreement between raters, and agreement between the model and the raters (or MOS)."""

from ultravqa_ray.metrics.agreement import krippendorff_alpha, ordinal_alpha_by_dimension
from ultravqa_ray.metrics.mos import MosFormatError, MosItem, MosResult, evaluate_mos, read_mos_csv
from ultravqa_ray.metrics.quality import (
    METRIC_NAMES,
    DimensionMetrics,
    EvalResult,
    Metrics,
    OverallMetrics,
    evaluate_predictions,
    predictions_from_events,
    read_predictions_jsonl,
)
from ultravqa_ray.metrics.report import ReportFiles, write_report

__all__ = [
    "METRIC_NAMES",
    "DimensionMetrics",
    "EvalResult",
    "Metrics",
    "MosFormatError",
    "MosItem",
    "MosResult",
    "OverallMetrics",
    "ReportFiles",
    "evaluate_mos",
    "evaluate_predictions",
    "krippendorff_alpha",
    "ordinal_alpha_by_dimension",
    "predictions_from_events",
    "read_mos_csv",
    "read_predictions_jsonl",
    "write_report",
]
