"""The pooled human judgment of one video on one dimension: what a rationale is written from.

From an annotation record (DESIGN.md section 2): the ratings given, their distribution over 1..K,
the mean and its band (the verdict word: ``very poor`` .. ``excellent``; for motion amplitude
``very small`` .. ``very large``), how many raters marked each sub-attribute, and the raters'
comments. The *majority* sub-attributes are those marked by at least half the raters.

Where the counts come from, first found:

1. ``metadata["sub_attribute_votes"][d]``: ``{label: raters who marked it}`` (what ``label pull``
   and ``label import`` write, next to the majority labels in ``sub_attributes[d]``);
2. ``sub_attributes[d]`` with repeats: one entry per rater who marked a label;
3. ``sub_attributes[d]`` without repeats: an already pooled consensus list (the synthetic corpus
   writes these): each label counts as marked by every rater.

Comments: ``comments[d]`` (an optional per-dimension map beside the record) are about that
dimension; ``metadata["comments"]`` (``{rater: text}``, what ``label pull`` writes) are about the
whole video. The language-model writer sees both; the template quotes only the former, since it
cannot tell which dimension a comment on the whole video concerns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from connectors.wire.dimensions import Dimension
from ultravqa_ray.data.rationale import AMOUNTS, LEVELS, level_word
from ultravqa_ray.schemas.annotation import AnnotationRecord


@dataclass(frozen=True)
class PooledJudgment:
    """The raters' collective judgment of one (video, dimension)."""

    dimension: Dimension
    k: int
    ratings: tuple[int, ...]
    sub_attribute_counts: tuple[tuple[str, int], ...] = ()  # most marked first, then by name
    comments: tuple[str, ...] = ()  # about this dimension
    video_comments: tuple[str, ...] = ()  # about the whole video

    def __post_init__(self) -> None:
        if not self.ratings:
            raise ValueError(f"{self.dimension.value}: a pooled judgment needs at least one rating")
        bad = [r for r in self.ratings if not 1 <= r <= self.k]
        if bad:
            raise ValueError(f"{self.dimension.value}: ratings {bad} outside 1..{self.k}")

    @property
    def n_raters(self) -> int:
        return len(self.ratings)

    @property
    def mean(self) -> float:
        return sum(self.ratings) / len(self.ratings)

    @property
    def counts(self) -> tuple[int, ...]:
        """How many raters gave each score 1..K."""
        c = Counter(self.ratings)
        return tuple(c.get(s, 0) for s in range(1, self.k + 1))

    @property
    def band_words(self) -> tuple[str, ...]:
        return AMOUNTS if self.dimension is Dimension.MOTION_AMPLITUDE else LEVELS

    @property
    def band(self) -> str:
        """The verdict word of the mean."""
        return level_word(self.mean, self.k, self.band_words)

    @property
    def majority(self) -> tuple[str, ...]:
        """Sub-attributes marked by at least half the raters, most marked first."""
        return tuple(name for name, n in self.sub_attribute_counts if 2 * n >= self.n_raters)

    @property
    def minority(self) -> tuple[str, ...]:
        return tuple(name for name, n in self.sub_attribute_counts if 2 * n < self.n_raters)


def count_sub_attributes(labels: Sequence[str], n_raters: int) -> tuple[tuple[str, int], ...]:
    """``(label, raters who marked it)``, most marked first; a list without repeats is a consensus list."""
    counts = Counter(labels)
    if counts and max(counts.values()) == 1:
        counts = Counter({name: n_raters for name in counts})
    return tuple(sorted(((name, min(n, n_raters)) for name, n in counts.items()), key=lambda x: (-x[1], x[0])))


def pool(
    record: AnnotationRecord, dim: Dimension, k: int, comments: Mapping[Dimension, Sequence[str]] | None = None
) -> PooledJudgment:
    """The pooled judgment of ``record`` on ``dim`` (which must be rated)."""
    ratings = tuple(record.given(dim))
    if not ratings:
        raise ValueError(f"video {record.video_id}: no rating for {dim.value}")
    votes = (record.metadata.get("sub_attribute_votes") or {}).get(dim.value)
    if isinstance(votes, Mapping):
        marked = ((str(name), min(int(n), len(ratings))) for name, n in votes.items() if int(n) > 0)
        counts = tuple(sorted(marked, key=lambda x: (-x[1], x[0])))
    else:
        counts = count_sub_attributes(record.sub_attributes.get(dim, []), len(ratings))
    video = record.metadata.get("comments") or {}
    return PooledJudgment(
        dimension=dim,
        k=k,
        ratings=ratings,
        sub_attribute_counts=counts,
        comments=_texts((comments or {}).get(dim, ())),
        video_comments=_texts(video.values() if isinstance(video, Mapping) else video),
    )


def _texts(values) -> tuple[str, ...]:
    return tuple(" ".join(str(c).split()) for c in values if c and str(c).strip())
