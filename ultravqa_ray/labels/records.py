"""Ratings in long format (one rater, one video, one dimension a row) and their annotation records.

Every source of human ratings — Label Studio's export, a crowdsourcing platform's CSV — becomes a
list of :class:`Rating`; :func:`build_records` pools them into DESIGN.md section 2 records:

- ``ratings[dim]``: one entry per rater, raters in the order they first appear, ``None`` where a
  rater skipped the dimension; ``raters``: their ids in the same order.
- ``sub_attributes[dim]``: the labels ticked by at least half of the video's raters;
  ``metadata["sub_attribute_votes"][dim][label]`` keeps how many raters ticked each label.
- ``metadata["comments"]``: ``{rater: text}`` for every non-empty comment.

A video becomes a record only when at least ``needed`` raters rated it; :func:`merge_manifest`
adds new records to an existing manifest and never rewrites the ones already there, so pulling twice
adds only what is new.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from connectors.wire.dimensions import Dimension
from ultravqa_ray.schemas.annotation import AnnotationRecord
from ultravqa_ray.schemas.manifest import read_manifest, write_manifest


@dataclass(frozen=True)
class Rating:
    """One rater's score of one video on one dimension."""

    video_id: str
    rater: str
    dimension: Dimension
    score: int
    sub_attributes: tuple[str, ...] = ()
    comment: str | None = None
    uri: str | None = None

    def to_json(self) -> dict:
        row = asdict(self)
        row["dimension"] = self.dimension.value
        row["sub_attributes"] = list(self.sub_attributes)
        return {k: v for k, v in row.items() if v is not None}


@dataclass
class BuildResult:
    records: list[AnnotationRecord]
    waiting: dict[str, int] = field(default_factory=dict)  # video_id -> raters so far (< needed)


def build_records(
    ratings: Iterable[Rating],
    *,
    needed: int,
    uris: dict[str, str] | None = None,
    drop_raters: Iterable[str] = (),
    exclude_videos: Iterable[str] = (),
) -> BuildResult:
    """Pool ``ratings`` per video; videos with fewer than ``needed`` raters are listed in ``waiting``."""
    dropped, excluded = set(drop_raters), set(exclude_videos)
    by_video: dict[str, list[Rating]] = {}
    for r in ratings:
        if r.rater not in dropped and r.video_id not in excluded:
            by_video.setdefault(r.video_id, []).append(r)
    out = BuildResult(records=[])
    for video_id in sorted(by_video):
        rows = by_video[video_id]
        raters = list(dict.fromkeys(r.rater for r in rows))
        if len(raters) < needed:
            out.waiting[video_id] = len(raters)
            continue
        uri = next((r.uri for r in rows if r.uri), None) or (uris or {}).get(video_id)
        if not uri:
            raise ValueError(f"video {video_id!r}: no uri in the ratings or the video list")
        out.records.append(_record(video_id, uri, raters, rows))
    return out


def _record(video_id: str, uri: str, raters: list[str], rows: list[Rating]) -> AnnotationRecord:
    column = {rater: i for i, rater in enumerate(raters)}
    ratings: dict[Dimension, list[int | None]] = {}
    votes: dict[str, dict[str, int]] = {}
    ticked: dict[Dimension, dict[str, set[str]]] = {}
    comments: dict[str, str] = {}
    for r in rows:
        ratings.setdefault(r.dimension, [None] * len(raters))[column[r.rater]] = r.score
        for label in r.sub_attributes:
            ticked.setdefault(r.dimension, {}).setdefault(label, set()).add(r.rater)
        if r.comment and r.comment.strip():
            comments[r.rater] = r.comment.strip()
    sub_attributes: dict[Dimension, list[str]] = {}
    for dim in ratings:
        labels = ticked.get(dim, {})
        votes[dim.value] = {label: len(who) for label, who in sorted(labels.items())}
        sub_attributes[dim] = sorted(label for label, who in labels.items() if 2 * len(who) >= len(raters))
    metadata: dict = {"sub_attribute_votes": votes}
    if comments:
        metadata["comments"] = comments
    ordered = {dim: ratings[dim] for dim in Dimension if dim in ratings}
    return AnnotationRecord(
        video_id=video_id,
        uri=uri,
        ratings=ordered,
        raters=raters,
        sub_attributes={d: sub_attributes[d] for d in ordered},
        metadata=metadata,
    )


def merge_manifest(records: Sequence[AnnotationRecord], path: str | Path, k: int) -> tuple[int, int]:
    """Add the records whose video is not yet in the manifest at ``path``; returns (added, kept).

    The manifest is replaced atomically (written beside it, then renamed), so a failure leaves the
    previous file as it was.
    """
    path = Path(path)
    existing = read_manifest(path, k=k) if path.exists() else []
    have = {rec.video_id for rec in existing}
    new = [rec for rec in records if rec.video_id not in have]
    atomic_write(path, lambda tmp: write_manifest([*existing, *new], tmp))
    return len(new), len(existing)


def write_ratings(ratings: Iterable[Rating], path: str | Path) -> Path:
    """All ratings as JSON Lines (the long format :func:`ultravqa_ray.labels.importer.read_ratings` reads)."""
    path = Path(path)
    lines = "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in ratings)
    atomic_write(path, lambda tmp: tmp.write_text(lines, encoding="utf-8"))
    return path


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path`` and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(name))
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
