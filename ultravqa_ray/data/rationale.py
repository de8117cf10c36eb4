"""Templated rationales: a verdict per dimension and the reasons for it.

Two writers share the verdict words. :func:`rationale` writes for synthetic clips from the factors
that made them (the synthetic corpus); :func:`pooled_rationale` writes from the pooled human
judgment of a video (:class:`~ultravqa_ray.data.pooled.PooledJudgment`: rating distribution, mean,
sub-attribute counts, rater comments), the fallback of the language-model writer.
"""

from __future__ import annotations

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
            text = _amplitude(v, latent[dim], k)
        elif dim is Dimension.CONTENT_QUALITY:
            text = _content(factors, level)
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


def _amplitude(v: dict[str, float], latent: float, k: int) -> str:
    amount = level_word(latent, k, AMOUNTS)
    if v["motion_amount"] < 0.08:
        return "The clip is essentially static: neither the camera nor the objects move."
    movers = []
    if v["camera_motion"] >= 0.05:
        movers.append(f"the camera pans {_speed(v['camera_motion'])}")
    if v["object_motion"] >= 0.05:
        movers.append(f"the objects move {_speed(v['object_motion'])}")
    return f"Motion is {amount}: {_join(movers)}."


def _speed(x: float) -> str:
    return "fast" if x >= 0.66 else "at a moderate pace" if x >= 0.33 else "slowly"


def _content(factors: Factors, level: str) -> str:
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
    things = "one subject" if n == 1 else f"a subject and {n - 1} other object{'s' if n > 2 else ''}"
    return f"Content is {level}: {things} over {texture} background."


def pooled_rationale(judgment: PooledJudgment, max_comments: int = 3, max_comment_chars: int = 200) -> str:
    """The verdict from the raters' mean, the rating distribution, the sub-attributes, then comments.

    For example (three raters gave 4, 4 and 3; two marked blur, one noise)::

        Clarity Quality is good: a mean of 3.67 out of 5 from 3 raters (2 gave 4, 1 gave 3).
        2 of 3 raters noted blur; 1 noted noise.
    """
    j = judgment
    spread = ", ".join(f"{n} gave {s}" for s, n in reversed(list(enumerate(j.counts, 1))) if n)
    raters = "1 rater" if j.n_raters == 1 else f"{j.n_raters} raters"
    parts = [f"{j.dimension.label} is {j.band}: a mean of {j.mean:.2f} out of {j.k} from {raters} ({spread})."]
    noted = []
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
