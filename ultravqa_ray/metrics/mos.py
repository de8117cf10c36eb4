"""MOS datasets (one number per video: KoNViD-1k, LSVQ, YouTube-UGC) and the metrics against them.

A MOS file is a CSV with a header, a video-name column and a MOS column, e.g.::

    flickr_id,mos                    KoNViD-1k (KoNViD_1k_mos.csv; files <flickr_id>.mp4), MOS 1..5
    name,height,width,mos,...        LSVQ (labels_*.csv; files <name>.mp4, name may hold a folder), 0..100
    vid,MOS full,...                 YouTube-UGC exported to CSV (files <vid>.mkv), 1..5

The columns are found by their (case-insensitive) header names unless given explicitly; the first
match in :data:`NAME_COLUMNS` and :data:`MOS_COLUMNS` wins. DMOS columns (higher = worse) are never
picked up on their own.

Against MOS (DESIGN.md section 5) a dimension's expected score x gives ``srcc``, ``plcc``, ``krcc``
with the raw MOS, and ``mae`` with the MOS mapped linearly onto the model's scale::

    m' = 1 + (m - lo) * (K - 1) / (hi - lo)          (lo, hi) = the MOS range, e.g. 1..5 or 0..100

so MOS 1..5 onto K = 5 is the identity and MOS 50 on 0..100 onto K = 5 is 3.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.wire.dimensions import Dimension
from ultravqa_ray.metrics.quality import MaybeFloat, Predictions, check_read_out, correlations

#: Header names taken as the video name, in order of preference (compared lower-case, "_" for " " / "-").
NAME_COLUMNS: tuple[str, ...] = (
    "flickr_id",
    "video_id",
    "video_name",
    "name",
    "video",
    "vid",
    "filename",
    "file",
)
#: Header names taken as the MOS, in order of preference.
MOS_COLUMNS: tuple[str, ...] = ("mos", "mos_full", "score", "mean_opinion_score")
#: A name ending in one of these is a file name already: the pattern is not applied.
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4",
    ".mkv",
    ".webm",
    ".avi",
    ".mov",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".yuv",
    ".y4m",
)
#: Scales tried, in order, when the MOS range is inferred: the first that holds every value.
KNOWN_MOS_RANGES: tuple[tuple[float, float], ...] = ((0, 1), (1, 5), (0, 5), (1, 10), (0, 10), (0, 100))


class MosFormatError(ValueError):
    """A MOS file that cannot be read; the message names the file and the line."""


class MosItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    video_id: str = Field(min_length=1, description="The name from the file, without a video extension.")
    uri: str = Field(
        min_length=1, description="Where the video is: video folder + pattern applied to the name."
    )
    mos: float = Field(description="Mean opinion score as written in the file.")

    @field_validator("mos")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"mos must be finite, got {value}")
        return value


class MosResult(BaseModel):
    """Correlations of a predicted score with MOS, and the MAE after mapping MOS onto 1..K."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dimensions: list[Dimension] = Field(description="Dimensions whose expected scores are averaged.")
    k: int = Field(ge=2)
    n: int = Field(ge=0, description="Videos paired with a prediction.")
    srcc: MaybeFloat
    plcc: MaybeFloat
    krcc: MaybeFloat
    mae: MaybeFloat = Field(description="Mean |score - m'| with m' the MOS mapped onto 1..K.")
    mos_range: tuple[float, float] = Field(description="The (lo, hi) MOS scale used for the map.")
    mos_range_inferred: bool = Field(description="True when the range was inferred from the data.")
    missing: list[str] = Field(default_factory=list, description="Videos without a prediction.")
    warnings: list[str] = Field(default_factory=list)


def _normalise(header: str) -> str:
    return header.strip().lower().replace(" ", "_").replace("-", "_")


def _find_column(
    header: list[str], wanted: str | None, candidates: Sequence[str], what: str, path: Path
) -> int:
    names = [_normalise(h) for h in header]
    if wanted is not None:
        key = _normalise(wanted)
        if key not in names:
            raise MosFormatError(f"{path} line 1: no {what} column {wanted!r}; the header is {header}")
        return names.index(key)
    for candidate in candidates:
        if candidate in names:
            return names.index(candidate)
    raise MosFormatError(
        f"{path} line 1: no {what} column found (looked for {', '.join(candidates)}); "
        f"the header is {header}: pass the column name explicitly"
    )


def _resolve_uri(name: str, video_dir: str, pattern: str) -> str:
    if "://" in name or Path(name).is_absolute():
        return name
    filename = name if name.lower().endswith(VIDEO_EXTENSIONS) else pattern.format(name=name)
    if "://" in video_dir:
        return f"{video_dir.rstrip('/')}/{filename}"
    return str(Path(video_dir) / filename)


def _video_id(name: str) -> str:
    lower = name.lower()
    for ext in VIDEO_EXTENSIONS:
        if lower.endswith(ext):
            return name[: -len(ext)]
    return name


def read_mos_csv(
    path: str | Path,
    *,
    video_dir: str | Path | None = None,
    name_column: str | None = None,
    mos_column: str | None = None,
    pattern: str = "{name}.mp4",
    delimiter: str | None = None,
) -> list[MosItem]:
    """Read a MOS CSV into items in file order.

    ``video_dir`` (a folder or an ``s3://`` / ``gs://`` prefix; default: the CSV's folder) and
    ``pattern`` (``{name}`` = the name cell; not applied when the name already ends in a video
    extension) give each item's ``uri``; absolute names and URIs are kept as they are. The delimiter
    is sniffed among ``,``, ``;`` and tab unless given. Bad rows raise :class:`MosFormatError` naming
    the file and line: a missing name or MOS, a MOS that is not a finite number, a repeated name.
    """
    path = Path(path)
    if "{name}" not in pattern:
        raise ValueError(f"pattern {pattern!r} must contain {{name}}")
    base = str(video_dir) if video_dir is not None else str(path.parent)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise MosFormatError(f"{path}: MOS file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise MosFormatError(f"{path}: cannot read MOS file: {exc}") from exc
    first = text.lstrip("\r\n").split("\n", 1)[0]
    if not first.strip():
        raise MosFormatError(f"{path}: empty MOS file (a header line is needed)")
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(first, delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
    header = next((row for row in reader if any(cell.strip() for cell in row)), [])
    header_line = reader.line_num
    name_at = _find_column(header, name_column, NAME_COLUMNS, "video name", path)
    mos_at = _find_column(header, mos_column, MOS_COLUMNS, "MOS", path)

    items: list[MosItem] = []
    first_seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(name_at, mos_at):
            raise MosFormatError(
                f"{path} line {line}: {len(row)} field(s), the header (line {header_line}) has {len(header)}"
            )
        name, raw = row[name_at].strip(), row[mos_at].strip()
        if not name:
            raise MosFormatError(f"{path} line {line}: empty video name in column {header[name_at]!r}")
        try:
            mos = float(raw)
        except ValueError:
            mos = math.nan
        if not math.isfinite(mos):
            raise MosFormatError(
                f"{path} line {line}: MOS {raw!r} in column {header[mos_at]!r} is not a finite number"
            )
        video_id = _video_id(name)
        if video_id in first_seen:
            raise MosFormatError(
                f"{path} line {line}: video {video_id!r} repeats line {first_seen[video_id]}"
            )
        first_seen[video_id] = line
        items.append(MosItem(video_id=video_id, uri=_resolve_uri(name, base, pattern), mos=mos))
    if not items:
        raise MosFormatError(f"{path}: no data rows after the header")
    return items


def infer_mos_range(values: Sequence[float]) -> tuple[float, float]:
    """The first of :data:`KNOWN_MOS_RANGES` that holds every value, else (min, max) of the data."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("cannot infer a MOS range from no values")
    lo, hi = float(arr.min()), float(arr.max())
    for a, b in KNOWN_MOS_RANGES:
        if a <= lo and hi <= b:
            return float(a), float(b)
    return lo, hi


def mos_to_scale(mos: np.ndarray | float, mos_range: tuple[float, float], k: int) -> np.ndarray | float:
    """Linear map of MOS from ``mos_range`` onto 1..K: lo -> 1, hi -> K."""
    lo, hi = mos_range
    if not hi > lo:
        raise ValueError(f"MOS range must have lo < hi, got {mos_range}")
    return 1.0 + (np.asarray(mos, dtype=np.float64) - lo) * (k - 1) / (hi - lo)


def evaluate_mos(
    items: Sequence[MosItem],
    predictions: Predictions,
    dimension: Dimension | Sequence[Dimension],
    k: int = 5,
    mos_range: tuple[float, float] | None = None,
) -> MosResult:
    """Correlate the expected score of ``dimension`` (or the mean over several) with MOS.

    ``mos_range`` defaults to :func:`infer_mos_range` over all items. A video is missing when it
    has no prediction for one of the dimensions; it is listed, not dropped silently.
    """
    dims = [Dimension(dimension)] if isinstance(dimension, str) else [Dimension(d) for d in dimension]
    if not dims:
        raise ValueError("give at least one dimension")
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    inferred = mos_range is None
    if mos_range is None:
        mos_range = infer_mos_range([item.mos for item in items]) if items else (1.0, float(k))
    mos_range = (float(mos_range[0]), float(mos_range[1]))
    if not mos_range[1] > mos_range[0]:
        raise ValueError(f"MOS range must have lo < hi, got {mos_range}")

    ids, mos, score, missing = [], [], [], []
    for item in items:
        pred = predictions.get(item.video_id)
        if pred is None or any(d not in pred for d in dims):
            missing.append(item.video_id)
            continue
        ids.append(item.video_id)
        mos.append(item.mos)
        score.append(
            np.mean([check_read_out(pred[d], k, f"video {item.video_id!r} {d.value}")[0] for d in dims])
        )
    x, m = np.asarray(score, dtype=np.float64), np.asarray(mos, dtype=np.float64)

    warnings = []
    if missing:
        warnings.append(f"{len(missing)} of {len(items)} videos have no prediction")
    outside = int(np.sum((m < mos_range[0]) | (m > mos_range[1])))
    if outside:
        warnings.append(f"{outside} MOS value(s) outside the range {mos_range}")
    corr, corr_warnings = correlations(x, m, what="predicted score", target="MOS")
    warnings.extend(corr_warnings)
    mae = float(np.mean(np.abs(x - mos_to_scale(m, mos_range, k)))) if len(ids) else math.nan
    return MosResult(
        dimensions=dims,
        k=k,
        n=len(ids),
        **corr,
        mae=mae,
        mos_range=mos_range,
        mos_range_inferred=inferred,
        missing=missing,
        warnings=warnings,
    )
