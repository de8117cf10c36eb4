"""Synthetic labelled corpus: controlled factors -> pixels, latent scores, raters, manifest."""

from ultravqa_ray.data.config import SynthConfig
from ultravqa_ray.data.factors import Factors, latent_scores, sample_factors, sub_attributes
from ultravqa_ray.data.rationale import rationale
from ultravqa_ray.data.render import encode_clip, render_clip
from ultravqa_ray.data.synth import RaterPool, generate_corpus, simulate_ratings

__all__ = [
    "Factors",
    "RaterPool",
    "SynthConfig",
    "encode_clip",
    "generate_corpus",
    "latent_scores",
    "rationale",
    "render_clip",
    "sample_factors",
    "simulate_ratings",
    "sub_attributes",
]
