"""The five quality dimensions, in their fixed order (DESIGN.md section 1)."""

from __future__ import annotations

from enum import StrEnum


class Dimension(StrEnum):
    """A quality dimension. The value is the machine name used on the wire and in manifests."""

    MOTION_QUALITY = "motion_quality"
    MOTION_AMPLITUDE = "motion_amplitude"
    AESTHETIC_QUALITY = "aesthetic_quality"
    CONTENT_QUALITY = "content_quality"
    CLARITY_QUALITY = "clarity_quality"

    @property
    def label(self) -> str:
        """The human label, e.g. ``Motion Quality``."""
        return _LABELS[self][0]

    @property
    def description(self) -> str:
        """What raters judge on this dimension."""
        return _LABELS[self][1]


_LABELS: dict[Dimension, tuple[str, str]] = {
    Dimension.MOTION_QUALITY: ("Motion Quality", "smoothness, stutter, shake, unnatural motion"),
    Dimension.MOTION_AMPLITUDE: ("Motion Amplitude", "how much moves: static ... large motion"),
    Dimension.AESTHETIC_QUALITY: ("Aesthetic Quality", "composition, color, lighting, framing"),
    Dimension.CONTENT_QUALITY: ("Content Quality", "subject clarity, richness, meaningfulness"),
    Dimension.CLARITY_QUALITY: (
        "Clarity Quality",
        "sharpness, noise, compression artefacts, resolution",
    ),
}

#: All dimensions in the order every report, prompt batch and wire message uses.
DIMENSIONS: tuple[Dimension, ...] = tuple(Dimension)
