"""Rationale metrics: do the generated rationales cite the annotated sub-attributes, and does the band
they state agree with the score printed beside them?

Each rationale is read back with :func:`ultravqa_ray.data.rationale.parse_rationale` (the template
language the synthetic rationales are written in, and that a model trained on them writes).
Per dimension, over the rationales of that dimension:

- ``precision`` = sum |cited & annotated| / sum |cited|, ``recall`` = sum |cited & annotated| /
  sum |annotated| (micro-averaged: a clip with three labels weighs three times one with one);
  None when the denominator is 0;
- ``contradiction``: share of rationales whose stated band does not fit the score printed with it.
  The band ``i`` of ``B`` equal bands of 1..K is the interval ``[1 + (K-1) i/B, 1 + (K-1)(i+1)/B]``;
  a rationale contradicts its score when the score lies more than half a band width outside that
  interval (0.4 points on 1..5), or when it states no band at all (``no_band`` counts those).
  For example on 1..5, "Clarity Quality is good" (band 3, [3.4, 4.2]) with score 3.1 agrees
  (0.3 outside), with score 2.9 contradicts (0.5 outside).

``overall`` pools the counts of every dimension the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, Field

from connectors.wire.dimensions import Dimension
from ultravqa_ray.data.rationale import LEVELS, parse_rationale


class RationaleCounts(BaseModel):
    """Counts and rates of one dimension (or of all, pooled)."""

    n: int = Field(0, description="Rationales read.")
    cited: int = Field(0, description="Sub-attributes cited, summed over rationales.")
    annotated: int = Field(0, description="Sub-attributes annotated, summed over rationales.")
    matched: int = Field(0, description="Cited and annotated.")
    contradicting: int = Field(
        0, description="Rationales whose band contradicts their score (or states none)."
    )
    no_band: int = Field(0, description="Rationales that state no band.")

    @property
    def precision(self) -> float | None:
        return self.matched / self.cited if self.cited else None

    @property
    def recall(self) -> float | None:
        return self.matched / self.annotated if self.annotated else None

    @property
    def contradiction(self) -> float | None:
        return self.contradicting / self.n if self.n else None

    def add(self, other: RationaleCounts) -> RationaleCounts:
        return RationaleCounts(
            **{f: getattr(self, f) + getattr(other, f) for f in RationaleCounts.model_fields}
        )

    def summary(self) -> dict[str, float | int | None]:
        return {**self.model_dump(), "precision": self.precision, "recall": self.recall,
                "contradiction": self.contradiction}  # fmt: skip


def band_contradicts(band: int | None, score: float, k: int, n_bands: int = len(LEVELS)) -> bool:
    """Whether ``score`` lies more than half a band width outside stated ``band`` (None: no band)."""
    if band is None:
        return True
    width = (k - 1) / n_bands
    lo, hi = 1 + width * band, 1 + width * (band + 1)
    outside = max(lo - score, score - hi, 0.0)
    return outside > width / 2 + 1e-9


def rationale_counts(
    dimension: Dimension, items: Sequence[tuple[str, float, Sequence[str]]], k: int
) -> RationaleCounts:
    """Counts over ``(rationale text, printed score, annotated sub-attributes)`` of one dimension."""
    c = RationaleCounts()
    for text, score, labels in items:
        parsed = parse_rationale(dimension, text)
        annotated = set(labels)
        c.n += 1
        c.cited += len(parsed.sub_attributes)
        c.annotated += len(annotated)
        c.matched += len(parsed.sub_attributes & annotated)
        c.no_band += parsed.band is None
        c.contradicting += band_contradicts(parsed.band, score, k)
    return c


def rationale_metrics(
    items: Mapping[Dimension, Sequence[tuple[str, float, Sequence[str]]]], k: int
) -> dict[str, object]:
    """``{"per_dimension": {dim: summary}, "overall": summary}`` (the ``rationale`` block of metrics.json)."""
    per = {dim: rationale_counts(dim, rows, k) for dim, rows in items.items()}
    total = RationaleCounts()
    for c in per.values():
        total = total.add(c)
    return {"per_dimension": {d.value: c.summary() for d, c in per.items()}, "overall": total.summary()}
