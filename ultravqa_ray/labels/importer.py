"""Read ratings exported by any tool: long-format CSV or JSON Lines, one rating a row.

Columns (CSV header or JSON keys): ``video_id`` (or ``video``), ``rater``, ``dimension``, ``score``,
optional ``sub_attributes`` (a JSON list, or in CSV labels separated by ``;`` or ``|``), optional
``comment`` and ``uri``. Every bad row is reported with its line number (CSV: the header is line 1)
— an unknown dimension, a score outside 1..K, a repeated (video, rater, dimension), a missing field —
and nothing is returned unless every row is good, so a half-imported file never reaches a manifest.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from connectors.wire.dimensions import Dimension
from ultravqa_ray.labels.records import Rating

_MAX_SHOWN = 5


class RatingsFormatError(ValueError):
    """Bad rows in a ratings file; ``problems`` holds ``(line, reason)`` for every one."""

    def __init__(self, path: Path, problems: list[tuple[int, str]]):
        self.path, self.problems = path, problems
        shown = "; ".join(f"line {line}: {why}" for line, why in problems[:_MAX_SHOWN])
        more = f"; and {len(problems) - _MAX_SHOWN} more" if len(problems) > _MAX_SHOWN else ""
        super().__init__(f"{path}: {len(problems)} bad row(s), nothing imported: {shown}{more}")


def read_ratings(
    path: str | Path, *, k: int, dimensions: tuple[Dimension, ...] = tuple(Dimension)
) -> list[Rating]:
    """Every rating of ``path`` (``.csv`` or ``.jsonl``), or :class:`RatingsFormatError`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: ratings file not found")
    if path.suffix == ".csv":
        rows = _csv_rows(path)
    elif path.suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(path)
    else:
        raise ValueError(f"{path}: ratings file must end in .csv or .jsonl")
    allowed = {d.value: d for d in dimensions}
    ratings: list[Rating] = []
    problems: list[tuple[int, str]] = []
    seen: dict[tuple[str, str, str], int] = {}
    for line, row in rows:
        if isinstance(row, str):  # a row that could not be parsed at all
            problems.append((line, row))
            continue
        try:
            rating = _rating(row, allowed, k)
        except ValueError as exc:
            problems.append((line, str(exc)))
            continue
        key = (rating.video_id, rating.rater, rating.dimension.value)
        if key in seen:
            problems.append(
                (
                    line,
                    f"duplicate rating of video {key[0]!r} by {key[1]!r} on {key[2]} (first on line {seen[key]})",
                )
            )
            continue
        seen[key] = line
        ratings.append(rating)
    if problems:
        raise RatingsFormatError(path, problems)
    return ratings


def _rating(row: dict, allowed: dict[str, Dimension], k: int) -> Rating:
    video_id = _text(row.get("video_id", row.get("video")))
    rater, dim = _text(row.get("rater")), _text(row.get("dimension"))
    missing = [name for name, v in (("video_id", video_id), ("rater", rater), ("dimension", dim)) if not v]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    if dim not in allowed:
        raise ValueError(f"unknown dimension {dim!r} (expected one of {', '.join(allowed)})")
    raw = row.get("score")
    try:
        score = int(str(raw).strip()) if not isinstance(raw, bool) else None
    except (TypeError, ValueError):
        score = None
    if score is None or isinstance(raw, float) and raw != score:
        raise ValueError(f"score {raw!r} is not an integer")
    if not 1 <= score <= k:
        raise ValueError(f"score {score} outside 1..{k}")
    return Rating(
        video_id=video_id,
        rater=rater,
        dimension=allowed[dim],
        score=score,
        sub_attributes=_labels(row.get("sub_attributes")),
        comment=_text(row.get("comment")) or None,
        uri=_text(row.get("uri")) or None,
    )


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _labels(value) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, list):
        items = value
    else:
        text = str(value).strip()
        items = json.loads(text) if text.startswith("[") else text.replace("|", ";").split(";")
    return tuple(dict.fromkeys(str(v).strip() for v in items if str(v).strip()))


def _csv_rows(path: Path) -> Iterator[tuple[int, dict | str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"rater", "dimension", "score"}
        header = set(reader.fieldnames or [])
        if not need <= header or not header & {"video_id", "video"}:
            raise ValueError(
                f"{path} line 1: header must name video_id, rater, dimension and score (got {sorted(header)})"
            )
        for row in reader:
            if None in row:
                yield reader.line_num, "more fields than the header names"
            elif any(v is None for v in row.values()):
                yield reader.line_num, "fewer fields than the header names"
            else:
                yield reader.line_num, row


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict | str]]:
    with path.open(encoding="utf-8") as fh:
        for line, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                yield line, f"not valid JSON ({exc.msg})"
                continue
            yield line, row if isinstance(row, dict) else "not a JSON object"
