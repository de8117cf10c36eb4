"""Templated rationales: a verdict per dimension and the reasons for it.

Two writers share the verdict words. :func:`rationale` writes for synthetic clips from the factors
that made them (the synthetic corpus); :func:`pooled_rationale` writes from the pooled human
judgment of a video (:class:`~ultravqa_ray.data.pooled.PooledJudgment`: rating distribution, mean,
sub-attribute counts, rater comments), the fallback of the language-model writer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import groupby
from typing import TYPE_CHECKING

from connectors.wire.dimensions import Dimension
from ultravqa_ray.data.factors import DEFECTS, Factors

if TYPE_CHECKING:
    from ultravqa_ray.data.pooled import PooledJudgment

LEVELS = ("very poor", "poor", "fair", "good", "excellent")
AMOUNTS = ("very small", "small", "moderate", "large", "very large")

_PHRASES: dict[str, str] = {
    "jitter": "{adj} jitter of the objects from frame to frame",
    "shake": "{adj} camera shake",
    "stutter": "{adj} stutter from dropped or repeated frames",
    "overexposed": "{adj} overexposure that washes out the highlights",
    "underexposed": "{adj} underexposure that leaves the scene dark",
    "color_disharmony": "{adj} clashing, oversaturated colours",
    "tilted": "{adj} tilt of the horizon",
    "poor_framing": "{adj} off-centre framing that cuts into the subject",
    "cluttered": "{adj} clutter of small distracting specks",
    "blur": "{adj} blur that softens the edges",
    "noise": "{adj} noise over flat areas",
    "compression_artifacts": "{adj} blocky compression artifacts",
    "low_resolution": "{adj} pixelation from low resolution",
}

_CLEAN: dict[Dimension, str] = {
    Dimension.MOTION_QUALITY: "motion is smooth, without shake, jitter or stutter",
    Dimension.AESTHETIC_QUALITY: "exposure, colours, horizon and framing are well balanced",
    Dimension.CLARITY_QUALITY: "edges are crisp and free of noise and compression artifacts",
}
_SLIGHT = 0.1  # severity from which an unlabelled defect is still cited as "slight"


def _adjective(severity: float) -> str:
    if severity >= 0.8:
        return "severe"
    if severity >= 0.55:
        return "strong"
    if severity >= 0.3:
        return "noticeable"
    return "slight"


def level_word(value: float, k: int, words: tuple[str, ...] = LEVELS) -> str:
    """The verdict word of a score ``value`` in [1, k]: [1, k] cut into ``len(words)`` equal bands."""
    x = (value - 1.0) / (k - 1)
    return words[max(0, min(len(words) - 1, int(x * len(words))))]


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def rationale(
    factors: Factors,
    latent: dict[Dimension, float],
    k: int,
    labels: dict[Dimension, list[str]],
) -> dict[Dimension, str]:
    """One or two sentences per dimension: the verdict, then the sub-attributes that explain it."""
    v = factors.visible()
    out: dict[Dimension, str] = {}
    for dim in Dimension:
        level = level_word(latent[dim], k)
        if dim is Dimension.MOTION_AMPLITUDE:
            text = _amplitude(v, latent[dim], k, labels.get(dim, []))
        elif dim is Dimension.CONTENT_QUALITY:
            text = _content(factors, level, labels.get(dim, []))
        else:
            text = _defects(dim, v, labels.get(dim, []), level, latent[dim], k)
        out[dim] = text[0].upper() + text[1:]
    return out


def _defects(
    dim: Dimension, v: dict[str, float], labels: list[str], level: str, latent: float, k: int
) -> str:
    cited = list(labels)
    if not cited and (latent - 1.0) / (k - 1) < 0.8:  # several mild defects: name the worst two
        mild = sorted((name for name in DEFECTS[dim] if v[name] >= _SLIGHT), key=lambda n: -v[n])
        cited = mild[:2]
    if not cited:
        return f"{dim.label} is {level}: {_CLEAN[dim]}."
    return (
        f"{dim.label} is {level}, with "
        + _join([_PHRASES[n].format(adj=_adjective(v[n])) for n in cited])
        + "."
    )


def _amplitude(v: dict[str, float], latent: float, k: int, labels: list[str]) -> str:
    """The amount of motion and who moves; a labelled mover moves "at a moderate pace" or "fast", an
    unlabelled one "slowly", and ``large_motion`` is said as "(large motion)" (:func:`parse_rationale` reads them back)."""
    amount = level_word(latent, k, AMOUNTS)
    if v["motion_amount"] < 0.08:
        return "The clip is essentially static: neither the camera nor the objects move."
    movers = []
    if v["camera_motion"] >= 0.05:
        movers.append(f"the camera pans {_speed(v['camera_motion'], 'camera_motion' in labels)}")
    if v["object_motion"] >= 0.05:
        movers.append(f"the objects move {_speed(v['object_motion'], 'object_motion' in labels)}")
    large = " (large motion)" if "large_motion" in labels else ""
    return f"Motion is {amount}{large}: {_join(movers) or 'the picture moves slightly'}."


def _speed(x: float, labelled: bool) -> str:
    if not labelled:
        return "slowly"
    return "fast" if x >= 0.66 else "at a moderate pace"


def _content(factors: Factors, level: str, labels: list[str]) -> str:
    n = factors.n_objects
    if n == 0:
        return "Content is very poor: the scene is empty, a nearly flat background with no subject."
    texture = (
        "a richly textured"
        if factors.richness >= 0.66
        else "a lightly textured"
        if factors.richness >= 0.33
        else "a plain"
    )
    scene = (
        "a sparse scene, " if "sparse_scene" in labels else "a rich scene, " if "rich_scene" in labels else ""
    )
    things = "one subject" if n == 1 else f"a subject and {n - 1} other object{'s' if n > 2 else ''}"
    return f"Content is {level}: {scene}{things} over {texture} background."


_CITED = "noticeable|strong|severe"  # a defect at or above the label threshold (below it: "slight")


def _defect_pattern(name: str) -> re.Pattern[str]:
    """The adjective then the first word of the defect's phrase, e.g. ``strong clashing``."""
    word = _PHRASES[name].split()[1].strip(",.")
    return re.compile(rf"\b(?:{_CITED}) {re.escape(word)}\b")


_LABEL_PATTERNS: dict[Dimension, dict[str, re.Pattern[str]]] = {
    **{dim: {name: _defect_pattern(name) for name in names} for dim, names in DEFECTS.items()},
    Dimension.MOTION_AMPLITUDE: {
        "static": re.compile(r"\bessentially static\b"),
        "camera_motion": re.compile(r"\bcamera pans (?:fast|at a moderate pace)"),
        "object_motion": re.compile(r"\bobjects move (?:fast|at a moderate pace)"),
        "large_motion": re.compile(r"\(large motion\)"),
    },
    Dimension.CONTENT_QUALITY: {
        "empty_scene": re.compile(r"\bscene is empty\b"),
        "sparse_scene": re.compile(r"\ba sparse scene\b"),
        "rich_scene": re.compile(r"\ba rich scene\b"),
    },
}
_BAND_PATTERNS: dict[Dimension, re.Pattern[str]] = {
    dim: re.compile(
        rf"\bis ({'|'.join(sorted(AMOUNTS if dim is Dimension.MOTION_AMPLITUDE else LEVELS, key=len, reverse=True))})\b"
    )
    for dim in Dimension
}


@dataclass(frozen=True)
class ParsedRationale:
    """What a rationale says: its verdict band (index into the ``len(LEVELS)`` equal bands of
    1..K, None when it states none) and the sub-attribute labels it cites."""

    band: int | None
    sub_attributes: frozenset[str]


def parse_rationale(dimension: Dimension, text: str) -> ParsedRationale:
    """Read the band and cited sub-attributes back from a rationale in the template language.

    The inverse of :func:`rationale` (and what a model trained on it writes): a defect counts as
    cited when written with an adjective of a labelled severity (``noticeable`` or stronger; a
    ``slight`` one is mentioned but below the label threshold), the clean sentences' "without shake,
    jitter or stutter" cite nothing. ``essentially static`` states the lowest amplitude band.
    For example, ``parse_rationale(CLARITY_QUALITY, "Clarity Quality is poor, with strong blur
    that softens the edges and slight noise over flat areas.")`` gives band 1 (``poor``) and
    ``{"blur"}``.
    """
    lower = text.lower()
    found = frozenset(name for name, pattern in _LABEL_PATTERNS[dimension].items() if pattern.search(lower))
    words = AMOUNTS if dimension is Dimension.MOTION_AMPLITUDE else LEVELS
    match = _BAND_PATTERNS[dimension].search(lower)
    if match:
        band: int | None = words.index(match.group(1))
    elif dimension is Dimension.MOTION_AMPLITUDE and "static" in found:
        band = 0
    else:
        band = None
    return ParsedRationale(band, found)


def pooled_rationale(judgment: PooledJudgment, max_comments: int = 3, max_comment_chars: int = 200) -> str:
    """The verdict from the raters' mean, the rating distribution, the sub-attributes, then comments.

    For example (three raters gave 4, 4 and 3; two marked blur, one noise)::

        Clarity Quality is good: a mean of 3.67 out of 5 from 3 raters (2 gave 4, 1 gave 3).
        2 of 3 raters noted blur; 1 noted noise.
    """
    j = judgment
    spread = ", ".join(f"{n} gave {s}" for s, n in reversed(list(enumerate(j.counts, 1))) if n)
    raters = "1 rater" if j.n_raters == 1 else f"{j.n_raters} raters"
    parts = [
        f"{j.dimension.label} is {j.band}: a mean of {j.mean:.2f} out of {j.k} from {raters} ({spread})."
    ]
    noted: list[str] = []
    for count, group in groupby(j.sub_attribute_counts, key=lambda x: x[1]):
        if noted:
            who = str(count)
        elif count == j.n_raters:
            who = "The rater" if count == 1 else f"All {count} raters"
        else:
            who = f"{count} of {j.n_raters} raters"
        noted.append(f"{who} noted {_join([_label_text(name) for name, _ in group])}")
    if noted:
        parts.append("; ".join(noted) + ".")
    if j.comments:
        quoted = [_quote(c, max_comment_chars) for c in j.comments[:max_comments]]
        parts.append(("Raters wrote: " if len(quoted) > 1 else "A rater wrote: ") + "; ".join(quoted) + ".")
    return " ".join(parts)


def _label_text(name: str) -> str:
    """A sub-attribute as words (``compression_artifacts`` -> ``compression artifacts``)."""
    return name.replace("_", " ").replace("-", " ")


def _quote(text: str, limit: int) -> str:
    flat = " ".join(text.split()).replace('"', "'")
    return '"' + (flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "...") + '"'
