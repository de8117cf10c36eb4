"""Annotation records (DESIGN.md section 2) and the score scale 1..K.

A record holds every rater's integer score per dimension; the per-dimension aggregates the
trainers and metrics need (rater mean, empirical distribution over 1..K, rounded mean) are
derived here, never stored, so they cannot drift from the ratings.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.wire.dimensions import DIMENSIONS, Dimension


class ScoreScale(BaseModel):
    """The ordinal scale 1..K (K = 5 in UltraVQA; any K >= 2 works end to end)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    k: int = Field(5, ge=2, le=100, description="Number of score levels; scores are 1..k.")

    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(range(1, self.k + 1))

    def contains(self, value: int) -> bool:
        return 1 <= value <= self.k


class AnnotationRecord(BaseModel):
    """One video with its ratings, sub-attribute labels and rationale."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    video_id: str = Field(min_length=1, description="Unique id of the video.")
    uri: str = Field(min_length=1, description="Path or URI; relative paths are relative to the manifest.")
    duration_s: float | None = Field(None, ge=0)
    width: int | None = Field(None, ge=1)
    height: int | None = Field(None, ge=1)
    fps: float | None = Field(None, ge=0)
    ratings: dict[Dimension, list[int | None]] = Field(
        description="Per dimension, one entry per rater (None where that rater gave none)."
    )
    raters: list[str] | None = Field(None, description="Rater ids in the order of every ratings list.")
    sub_attributes: dict[Dimension, list[str]] = Field(default_factory=dict)
    rationale: dict[Dimension, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free map (the synthetic corpus keeps latent scores here)."
    )

    @model_validator(mode="after")
    def _check_ratings(self) -> AnnotationRecord:
        if not self.ratings:
            raise ValueError("ratings must name at least one dimension")
        for dim, values in self.ratings.items():
            given = [v for v in values if v is not None]
            if not given:
                raise ValueError(f"ratings[{dim.value}] has no rating")
            if any(v < 1 for v in given):
                raise ValueError(f"ratings[{dim.value}] has a value below 1: {values}")
            if self.raters is not None and len(values) != len(self.raters):
                raise ValueError(
                    f"ratings[{dim.value}] has {len(values)} entries but there are {len(self.raters)} raters"
                )
        if self.raters is not None and len(set(self.raters)) != len(self.raters):
            raise ValueError("raters must be unique")
        return self

    def check_scale(self, scale: ScoreScale) -> None:
        """Raise ``ValueError`` if a rating is outside 1..K."""
        for dim, values in self.ratings.items():
            bad = [v for v in values if v is not None and not scale.contains(v)]
            if bad:
                raise ValueError(f"video {self.video_id}: ratings[{dim.value}] {bad} outside 1..{scale.k}")

    # --- derived per-dimension aggregates -------------------------------------------------

    def given(self, dim: Dimension) -> list[int]:
        """The ratings actually given for ``dim`` (missing ones dropped)."""
        return [v for v in self.ratings.get(dim, []) if v is not None]

    def y_mean(self, dim: Dimension) -> float:
        """Mean of the raters' scores (the regression target)."""
        values = self.given(dim)
        if not values:
            raise KeyError(f"video {self.video_id} has no rating for {dim.value}")
        return float(sum(values)) / len(values)

    def distribution(self, dim: Dimension, k: int) -> np.ndarray:
        """Empirical rating distribution q(s) over s = 1..k (float64, sums to 1)."""
        values = self.given(dim)
        if not values:
            raise KeyError(f"video {self.video_id} has no rating for {dim.value}")
        counts = np.bincount(np.asarray(values) - 1, minlength=k)[:k].astype(np.float64)
        return counts / counts.sum()

    def rounded_mean(self, dim: Dimension) -> int:
        """Round-half-up of the rater mean (2.5 -> 3), the label the `exact` metric compares to."""
        return round_half_up(self.y_mean(dim))

    def dimensions(self) -> tuple[Dimension, ...]:
        """Rated dimensions in canonical order."""
        return tuple(d for d in DIMENSIONS if d in self.ratings)


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves up (Python's round() would send 2.5 to 2)."""
    return int(math.floor(x + 0.5))
