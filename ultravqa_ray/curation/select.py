"""Which uploads to send for rating next: the scorer's own uncertainty, plus a stratified random share.

A platform rates only a sample of its uploads, so raters should go where the scorer is least sure.
The inputs are score events (DESIGN.md section 6), read from the Parquet file ``score-batch`` writes
(``message`` column of the ``scored`` rows) or from an offset range of the scores topic. For each
upload, with ``pi_d`` the score distribution of dimension ``d`` over 1..K:

- ``entropy``: the mean over dimensions of ``H(pi_d) / log K`` (0 = certain, 1 = uniform);
- ``disagreement``: the spread of the expected scores of the quality dimensions (motion amplitude
  is an amount, not a quality, and is left out), each mapped to [0, 1], as a standard deviation
  divided by its largest possible value 0.5 (0 = the dimensions agree, 1 = half at each end);
- ``uncertainty = entropy + disagreement_weight * disagreement``.

The budget is split in two. A ``random_share`` of it is drawn first, at random from all
candidates, stratified by the predicted band (the rounded mean expected score of the quality
dimensions) with proportional allocation, so it is a self-weighting sample of the pool: evaluate
the scorer on these lines only (``selected_by == "random"``). The rest goes to the most uncertain of
the remaining candidates. Uploads already labelled (any manifest with ``video_id`` and ``uri``) are never
candidates, and a video scored twice counts once, with its newest score event.
"""

from __future__ import annotations

import json
import logging
import math
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, ValidationError

from connectors.kafka.settings import KafkaSettings
from connectors.wire.dimensions import Dimension
from connectors.wire.messages import ScoreEvent
from ultravqa_ray.config import Config
from ultravqa_ray.schemas.annotation import round_half_up

log = logging.getLogger(__name__)

SELECTED_BY = ("uncertainty", "random")


class SelectConfig(Config):
    """How many uploads to pick and how the budget is split."""

    budget: int = Field(ge=1, description="Number of uploads to select.")
    random_share: float = Field(
        0.2, ge=0.0, le=1.0, description="Share of the budget drawn at random (stratified), for evaluation."
    )
    disagreement_weight: float = Field(
        0.5, ge=0.0, description="Weight of the between-dimension disagreement next to the entropy."
    )
    seed: int = Field(0, description="Seed of the random share (same inputs and seed: same selection).")


@dataclass(frozen=True)
class ScoredUpload:
    """The score distributions of one upload, from its score event."""

    video_id: str
    uri: str
    probs: dict[Dimension, tuple[float, ...]]
    produced_at: datetime

    @classmethod
    def from_event(cls, event: ScoreEvent) -> ScoredUpload:
        return cls(
            video_id=event.video_id,
            uri=event.uri,
            probs={d: tuple(s.probs) for d, s in event.scores.items()},
            produced_at=event.produced_at,
        )

    def expected(self, dim: Dimension) -> float:
        """Expected score of ``dim`` mapped to [0, 1] (``(E[s] - 1) / (K - 1)``)."""
        p = np.asarray(self.probs[dim], dtype=np.float64)
        k = len(p)
        return float((np.arange(1, k + 1) @ p / p.sum() - 1.0) / (k - 1))


@dataclass(frozen=True)
class Selected:
    """One line of the selection list (what ``label push`` reads: ``video_id`` and ``uri``)."""

    video_id: str
    uri: str
    selected_by: str
    uncertainty: float
    entropy: float
    disagreement: float
    stratum: int

    def to_json(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "uri": self.uri,
            "selected_by": self.selected_by,
            "uncertainty": round(self.uncertainty, 6),
            "entropy": round(self.entropy, 6),
            "disagreement": round(self.disagreement, 6),
            "stratum": self.stratum,
        }


# -- uncertainty -------------------------------------------------------------------------------


def normalised_entropy(probs: Sequence[float]) -> float:
    """``H(p) / log K`` in [0, 1]; zeros contribute nothing."""
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum()
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum() / math.log(len(p)))


def _quality_dims(upload: ScoredUpload) -> list[Dimension]:
    quality = [d for d in upload.probs if d is not Dimension.MOTION_AMPLITUDE]
    return quality or list(upload.probs)


def entropy(upload: ScoredUpload) -> float:
    """Mean normalised entropy over the scored dimensions."""
    return float(np.mean([normalised_entropy(p) for p in upload.probs.values()]))


def disagreement(upload: ScoredUpload) -> float:
    """Standard deviation of the quality dimensions' expected scores on [0, 1], divided by 0.5."""
    values = [upload.expected(d) for d in _quality_dims(upload)]
    return float(np.std(values) / 0.5) if len(values) > 1 else 0.0


def stratum(upload: ScoredUpload) -> int:
    """Predicted band 1..K: the rounded mean expected score of the quality dimensions."""
    dims = _quality_dims(upload)
    k = len(upload.probs[dims[0]])
    mean01 = float(np.mean([upload.expected(d) for d in dims]))
    return round_half_up(1.0 + mean01 * (k - 1))


# -- selection ---------------------------------------------------------------------------------


def select_uploads(
    uploads: Iterable[ScoredUpload], labelled: Iterable[str], config: SelectConfig
) -> tuple[list[Selected], dict[str, Any]]:
    """The selection (random share first, then by decreasing uncertainty) and a summary."""
    newest: dict[str, ScoredUpload] = {}
    scored = 0
    for up in uploads:
        scored += 1
        if up.video_id not in newest or up.produced_at >= newest[up.video_id].produced_at:
            newest[up.video_id] = up
    done = set(labelled)
    pool = [newest[v] for v in sorted(newest) if v not in done]
    n = min(config.budget, len(pool))
    n_random = round_half_up(n * config.random_share)

    rows = {}
    for up in pool:
        h, g = entropy(up), disagreement(up)
        rows[up.video_id] = (up, h, g, h + config.disagreement_weight * g, stratum(up))

    def line(video_id: str, by: str) -> Selected:
        up, h, g, u, s = rows[video_id]
        return Selected(up.video_id, up.uri, by, u, h, g, s)

    strata: dict[int, list[str]] = {}
    for video_id, row in rows.items():
        strata.setdefault(row[4], []).append(video_id)
    rng = np.random.default_rng(config.seed)
    random_ids: list[str] = []
    for s, quota in sorted(allocate(n_random, {s: len(ids) for s, ids in strata.items()}).items()):
        random_ids += [strata[s][i] for i in sorted(rng.choice(len(strata[s]), size=quota, replace=False))]
    chosen = set(random_ids)
    rest = sorted((v for v in rows if v not in chosen), key=lambda v: (-rows[v][3], v))
    selected = [line(v, "uncertainty") for v in rest[: n - n_random]] + [line(v, "random") for v in random_ids]
    summary = {
        "score_events": scored,
        "uploads": len(newest),
        "already_labelled": len(newest) - len(pool),
        "candidates": len(pool),
        "selected": len(selected),
        "by_uncertainty": n - n_random,
        "random": n_random,
        "random_per_stratum": {str(s): sum(1 for v in random_ids if rows[v][4] == s) for s in sorted(strata)},
        "candidates_per_stratum": {str(s): len(strata[s]) for s in sorted(strata)},
    }
    if n < config.budget:
        log.warning("budget %d but only %d candidates: selecting all of them", config.budget, n)
    return selected, summary


def allocate(n: int, sizes: dict[int, int]) -> dict[int, int]:
    """Proportional allocation of ``n`` draws over strata of ``sizes`` (largest remainder, capped)."""
    total = sum(sizes.values())
    if n <= 0 or total == 0:
        return {s: 0 for s in sizes}
    exact = {s: n * size / total for s, size in sizes.items()}
    quota = {s: min(sizes[s], math.floor(x)) for s, x in exact.items()}
    order = sorted(sizes, key=lambda s: (-(exact[s] - math.floor(exact[s])), s))
    while sum(quota.values()) < min(n, total):
        for s in order:
            if sum(quota.values()) >= min(n, total):
                break
            if quota[s] < sizes[s]:
                quota[s] += 1
    return quota


# -- inputs and output -------------------------------------------------------------------------


def read_scores_parquet(path: str | Path) -> tuple[list[ScoredUpload], int]:
    """Score events of the ``scored`` rows of a ``score-batch`` Parquet file, and how many were unreadable."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: scores file not found")
    try:
        table = pq.read_table(path, columns=["status", "message"])
    except Exception as exc:  # pyarrow raises several kinds for a file that is not Parquet
        raise ValueError(f"{path}: not a score-batch Parquet file (needs status and message columns): {exc}") from exc
    messages = [m for st, m in zip(table["status"].to_pylist(), table["message"].to_pylist(), strict=True) if st == "scored"]
    return _parse([(f"{path} row {i}", m) for i, m in enumerate(messages)])


def read_scores_topic(
    settings: KafkaSettings, topic: str, *, start: Any = "earliest", end: Any = "latest"
) -> tuple[list[ScoredUpload], int]:
    """Score events in an offset (or time) range of ``topic``, read without a consumer group."""
    from connectors.kafka.ray_read import plan_range, read_partition

    values = []
    for part in plan_range(settings, topic, start=start, end=end):
        for table in read_partition(settings, part):
            for p, o, v in zip(table["partition"].to_pylist(), table["offset"].to_pylist(), table["value"].to_pylist(), strict=True):  # fmt: skip
                values.append((f"{topic}[{p}]@{o}", v))
    return _parse(values)


def _parse(values: Sequence[tuple[str, Any]]) -> tuple[list[ScoredUpload], int]:
    out, bad = [], 0
    for where, value in values:
        try:
            out.append(ScoredUpload.from_event(ScoreEvent.from_bytes(value or b"")))
        except ValidationError as exc:
            bad += 1
            log.warning("%s: not a score event, skipped (%s)", where, str(exc).splitlines()[0])
    return out, bad


def parse_topic_range(text: str, default_topic: str) -> tuple[str, Any, Any]:
    """``kafka:TOPIC[@START..END]`` -> (topic, start, end); bounds are offsets, times or earliest/latest."""
    body = text.removeprefix("kafka:")
    topic, _, bounds = body.partition("@")
    topic = topic or default_topic
    start, end = "earliest", "latest"
    if bounds:
        first, sep, last = bounds.partition("..")
        if not sep:
            raise ValueError(f"scores range {text!r}: write kafka:TOPIC@START..END")
        start, end = _bound(first, "earliest", text), _bound(last, "latest", text)
    return topic, start, end


def _bound(text: str, default: str, spec: str) -> Any:
    text = text.strip()
    if not text:
        return default
    if text in ("earliest", "latest"):
        return text
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"scores range {spec!r}: bound {text!r} is not an offset, a time or earliest/latest") from None
    if when.tzinfo is None:
        raise ValueError(f"scores range {spec!r}: time {text!r} needs a UTC offset (e.g. Z or +00:00)")
    return when


def write_selection(selected: Sequence[Selected], path: str | Path) -> Path:
    """JSON Lines, one selected upload a line; replaced whole, never half written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for s in selected:
            fh.write(json.dumps(s.to_json(), sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def labelled_ids(paths: Sequence[str | Path]) -> set[str]:
    """The ``video_id`` of every row of these manifests (annotation records, earlier selections)."""
    from connectors.listing import read_manifest_entries

    return {e.video_id for path in paths for e in read_manifest_entries(path)}
