"""Templated rationales for synthetic clips: a verdict per dimension that cites the visible factors."""

from __future__ import annotations

from connectors.wire.dimensions import Dimension
from ultravqa_ray.data.factors import DEFECTS, Factors

_LEVELS = ("very poor", "poor", "fair", "good", "excellent")
_AMOUNTS = ("very small", "small", "moderate", "large", "very large")

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


def _level(latent: float, k: int, words: tuple[str, ...] = _LEVELS) -> str:
    x = (latent - 1.0) / (k - 1)
    return words[min(len(words) - 1, int(x * len(words)))]


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
        level = _level(latent[dim], k)
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
    amount = _level(latent, k, _AMOUNTS)
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
