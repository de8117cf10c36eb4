"""Controlled factors of a synthetic clip, the latent true scores they imply, and their labels.

Every factor is a severity in [0, 1] (``exposure`` in [-1, 1]: dark .. blown out), rendered by
:mod:`ultravqa_ray.data.render`. Each dimension's latent score is a simple monotone function of
its own factors, mapped linearly onto 1..K::

    motion_amplitude   a = 1 - (1 - object_speed * min(1, n_objects / 3)) * (1 - camera_speed)
    motion_quality     (1 - jitter*[objects]) * (1 - shake) * (1 - frame_defects * min(1, a / 0.3))
    aesthetic_quality  (1 - |exposure|) (1 - disharmony) (1 - tilt) (1 - framing*[objects]) (1 - clutter)
    content_quality    richness                       (no objects below 1/7: an empty scene is 1)
    clarity_quality    (1 - blur) (1 - noise) (1 - compression) (1 - downscale)
    latent             1 + (K - 1) * value

A factor that cannot be seen does not count: jitter and framing need an object, object speed
counts in proportion to how many objects move (fully from three),
and dropped or duplicated frames only show when something moves (a static clip's motion quality
is its jitter and shake). Sampling draws each dimension's value uniformly and independently of
the other dimensions, then splits its damage over the dimension's visible factors with Dirichlet
weights, so one defect usually dominates and is named in the sub-attributes and rationale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from connectors.wire.dimensions import Dimension
from ultravqa_ray.data.config import SynthConfig

MAX_OBJECTS = 6
_STUTTER_FULL_AT = 0.3  # motion amount from which dropped/duplicated frames are fully visible
_STATIC_BELOW = 0.08
_OBJECTS_FULL_MOTION = 3  # object count from which object speed counts fully as motion  # motion amount under which a clip is labelled static


@dataclass(frozen=True)
class Factors:
    """The controlled factors of one clip; the defaults are a clean, moderately rich static clip."""

    object_speed: float = 0.0
    camera_speed: float = 0.0
    jitter: float = 0.0
    shake: float = 0.0
    frame_defects: float = 0.0
    exposure: float = 0.0
    disharmony: float = 0.0
    tilt: float = 0.0
    framing: float = 0.0
    clutter: float = 0.0
    richness: float = 0.6
    blur: float = 0.0
    noise: float = 0.0
    compression: float = 0.0
    downscale: float = 0.0

    @property
    def n_objects(self) -> int:
        """Objects in the scene (0 = empty scene); object 0 is the framed subject."""
        return min(MAX_OBJECTS, int(self.richness * (MAX_OBJECTS + 1)))

    def visible(self) -> dict[str, float]:
        """Effective severities: each factor times whether it can be seen in this clip."""
        has = 1.0 if self.n_objects else 0.0
        object_motion = self.object_speed * _object_weight(self.n_objects)
        amount = 1.0 - (1.0 - object_motion) * (1.0 - self.camera_speed)
        return {
            "object_motion": object_motion,
            "camera_motion": self.camera_speed,
            "motion_amount": amount,
            "jitter": self.jitter * has,
            "shake": self.shake,
            "stutter": self.frame_defects * min(1.0, amount / _STUTTER_FULL_AT),
            "overexposed": max(self.exposure, 0.0),
            "underexposed": max(-self.exposure, 0.0),
            "color_disharmony": self.disharmony,
            "tilted": self.tilt,
            "poor_framing": self.framing * has,
            "cluttered": self.clutter,
            "richness": self.richness,
            "blur": self.blur,
            "noise": self.noise,
            "compression_artifacts": self.compression,
            "low_resolution": self.downscale,
        }

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 6) for k, v in dataclasses.asdict(self).items()}


def _object_weight(n_objects: int) -> float:
    """How much of the picture moving objects cover: one object a third, three or more all."""
    return min(1.0, n_objects / _OBJECTS_FULL_MOTION)


def _quality(v: dict[str, float], dim: Dimension) -> float:
    """The dimension's value in [0, 1] (1 = best, or most motion for amplitude)."""
    if dim is Dimension.MOTION_AMPLITUDE:
        return v["motion_amount"]
    if dim is Dimension.CONTENT_QUALITY:
        return v["richness"]
    names = DEFECTS[dim]
    return float(np.prod([1.0 - v[name] for name in names]))


DEFECTS: dict[Dimension, tuple[str, ...]] = {
    Dimension.MOTION_QUALITY: ("jitter", "shake", "stutter"),
    Dimension.AESTHETIC_QUALITY: (
        "overexposed",
        "underexposed",
        "color_disharmony",
        "tilted",
        "poor_framing",
        "cluttered",
    ),
    Dimension.CLARITY_QUALITY: ("blur", "noise", "compression_artifacts", "low_resolution"),
}


def latent_scores(factors: Factors, k: int) -> dict[Dimension, float]:
    """Latent true score per dimension in [1, k], in canonical dimension order."""
    v = factors.visible()
    return {dim: 1.0 + (k - 1) * _quality(v, dim) for dim in Dimension}


def sample_factors(rng: np.random.Generator, config: SynthConfig) -> Factors:
    """Draw one clip's factors; each dimension's latent value is uniform and independent."""
    richness = float(rng.uniform())
    n_objects = Factors(richness=richness).n_objects
    has = 1.0 if n_objects else 0.0

    amount = 0.0 if rng.uniform() < config.p_static else float(rng.uniform())
    # amplitude is 1 - prod(1 - speed): the speeds split the motion like defects split damage
    speeds = _split(rng, 1.0 - amount, {"object_speed": _object_weight(n_objects), "camera_speed": 1.0})

    stutter_vis = min(1.0, amount / _STUTTER_FULL_AT)
    motion = _split(rng, rng.uniform(), {"jitter": has, "shake": 1.0, "frame_defects": stutter_vis})
    aesthetic = _split(
        rng,
        rng.uniform(),
        {"exposure": 1.0, "disharmony": 1.0, "tilt": 1.0, "framing": has, "clutter": 1.0},
    )
    aesthetic["exposure"] *= float(rng.choice([-1.0, 1.0]))
    clarity = _split(rng, rng.uniform(), {"blur": 1.0, "noise": 1.0, "compression": 1.0, "downscale": 1.0})
    return Factors(richness=richness, **speeds, **motion, **aesthetic, **clarity)


def _split(rng: np.random.Generator, q: float, visibility: dict[str, float]) -> dict[str, float]:
    """Defects ``d_i`` with ``prod(1 - d_i * vis_i) ~= q``, the damage split by Dirichlet weights.

    Each visible factor gets ``d_i * vis_i = 1 - q ** w_i``; a factor that cannot be seen
    (``vis_i = 0``) is drawn uniformly, as it changes neither the pixels nor the score.
    """
    visible = [name for name, vis in visibility.items() if vis > 0]
    w = rng.dirichlet(np.full(len(visible), 0.6))
    out: dict[str, float] = {}
    for name, vis in visibility.items():
        if vis > 0:
            effective = 1.0 - float(q) ** float(w[visible.index(name)])
            out[name] = min(1.0, effective / vis)
        else:
            out[name] = float(rng.uniform())
    return out


def sub_attributes(factors: Factors, threshold: float = 0.3) -> dict[Dimension, list[str]]:
    """Fine-grained labels per dimension: the visible factors at or above ``threshold``."""
    v = factors.visible()
    out = {dim: [name for name in DEFECTS[dim] if v[name] >= threshold] for dim in DEFECTS}
    amp = []
    if v["motion_amount"] < _STATIC_BELOW:
        amp.append("static")
    amp += [name for name in ("camera_motion", "object_motion") if v[name] >= threshold]
    if v["motion_amount"] >= 0.75:
        amp.append("large_motion")
    content = []
    if factors.n_objects == 0:
        content.append("empty_scene")
    elif factors.richness < 0.35:
        content.append("sparse_scene")
    elif factors.richness >= 0.8:
        content.append("rich_scene")
    out[Dimension.MOTION_AMPLITUDE] = amp
    out[Dimension.CONTENT_QUALITY] = content
    return {dim: out[dim] for dim in Dimension}
