"""The synthetic labelled corpus: clips, simulated raters and an annotation manifest.

``generate_corpus(out_dir, config)`` writes ``out_dir/videos/<video_id>.mp4`` and
``out_dir/manifest.jsonl`` (uris relative to the manifest). Clip ``i`` draws everything from
``SeedSequence(seed, spawn_key=(1, i))`` (separate streams for factors, pixels and ratings), and
the persistent rater pool from ``spawn_key=(0,)``, so the corpus is the same, byte for byte,
whatever the number of worker processes; changing only the rater settings keeps the pixels.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from connectors.wire.dimensions import DIMENSIONS, Dimension
from ultravqa_ray.data.config import SynthConfig
from ultravqa_ray.data.factors import Factors, latent_scores, sample_factors, sub_attributes
from ultravqa_ray.data.rationale import rationale
from ultravqa_ray.data.real import load_source, real_factors, render_real_clip, resolve_real_sources
from ultravqa_ray.data.render import encode_clip, render_clip
from ultravqa_ray.schemas.annotation import AnnotationRecord
from ultravqa_ray.schemas.manifest import write_manifest

GENERATOR = "ultravqa_ray.data.synth/1"


@dataclass(frozen=True)
class RaterPool:
    """Persistent simulated raters: ids and a fixed bias per rater and dimension (score units)."""

    ids: tuple[str, ...]
    bias: np.ndarray  # (n_raters, n_dimensions), DIMENSIONS order

    @classmethod
    def from_config(cls, config: SynthConfig) -> RaterPool:
        rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0,)))
        bias = rng.normal(
            0.0, config.rater_bias_sd * (config.k - 1), size=(config.rater_pool, len(DIMENSIONS))
        )
        return cls(tuple(f"rater_{i:02d}" for i in range(config.rater_pool)), bias)


def simulate_ratings(
    rng: np.random.Generator,
    latent: dict[Dimension, float],
    config: SynthConfig,
    pool: RaterPool | None = None,
    n_raters: int | None = None,
) -> tuple[list[str], dict[Dimension, list[int]]]:
    """Pick ``n_raters`` (default: uniform in raters_min..raters_max) from the pool and rate.

    rating = clip(round_half_up(latent + rater bias + noise), 1, K), noise ~ N(0, noise_sd * (K-1)).
    Returns the rater ids and, per dimension, their ratings in the same order.
    """
    pool = pool or RaterPool.from_config(config)
    if n_raters is None:
        n_raters = int(rng.integers(config.raters_min, config.raters_max + 1))
    chosen = np.sort(rng.choice(len(pool.ids), size=n_raters, replace=False))
    noise = rng.normal(0.0, config.rater_noise_sd * (config.k - 1), size=(n_raters, len(DIMENSIONS)))
    ratings: dict[Dimension, list[int]] = {}
    for j, dim in enumerate(DIMENSIONS):
        raw = latent[dim] + pool.bias[chosen, j] + noise[:, j]
        ratings[dim] = [int(x) for x in np.clip(np.floor(raw + 0.5), 1, config.k)]
    return [pool.ids[i] for i in chosen], ratings


def clip_streams(
    seed: int, index: int
) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators for clip ``index``: (factors, pixels, ratings)."""
    children = np.random.SeedSequence(seed, spawn_key=(1, index)).spawn(3)
    return tuple(np.random.default_rng(c) for c in children)  # type: ignore[return-value]


def source_stream(seed: int, index: int) -> np.random.Generator:
    """Clip ``index``'s fourth stream (rendered or real, which real source): a corpus with
    ``real_share = 0`` never draws from it, so its rendered clips are what they were before."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, index)).spawn(4)[3])


def video_id(seed: int, index: int) -> str:
    return f"synth-s{seed}-{index:06d}"


def make_clip(index: int, config: SynthConfig, out_dir: Path, pool: RaterPool) -> AnnotationRecord:
    """Render, encode and annotate clip ``index``; writes ``out_dir/videos/<video_id>.mp4``."""
    rng_factors, rng_pixels, rng_ratings = clip_streams(config.seed, index)
    factors = sample_factors(rng_factors, config)
    vid = video_id(config.seed, index)
    source = None
    if config.real_share > 0:
        rng_source = source_stream(config.seed, index)
        if rng_source.uniform() < config.real_share:
            sources = resolve_real_sources(config)
            source = sources[int(rng_source.integers(len(sources)))]
    if source is None:
        frames = render_clip(factors, config, rng_pixels)
    else:
        factors = real_factors(factors)
        footage = load_source(str(source), round(1.5 * min(config.height, config.width)))
        frames = render_real_clip(factors, config, rng_pixels, footage)
    crf = round(config.crf + factors.compression * (config.crf_max - config.crf))
    encode_clip(
        frames, out_dir / "videos" / f"{vid}.mp4", config.fps, crf=crf, gop=config.gop, preset=config.preset
    )
    record = annotate(index, factors, config, rng_ratings, pool)
    if source is not None:
        record.metadata["source"] = source.name
    return record


def annotate(
    index: int, factors: Factors, config: SynthConfig, rng: np.random.Generator, pool: RaterPool
) -> AnnotationRecord:
    """The annotation record of a clip from its factors (no pixels needed)."""
    latent = latent_scores(factors, config.k)
    labels = sub_attributes(factors, config.label_threshold)
    raters, ratings = simulate_ratings(rng, latent, config, pool)
    vid = video_id(config.seed, index)
    return AnnotationRecord(
        video_id=vid,
        uri=f"videos/{vid}.mp4",
        duration_s=config.n_frames / config.fps,
        width=config.width,
        height=config.height,
        fps=float(config.fps),
        ratings=ratings,
        raters=raters,
        sub_attributes=labels,
        rationale=rationale(factors, latent, config.k, labels),
        metadata={
            "latent": {dim.value: round(score, 6) for dim, score in latent.items()},
            "factors": factors.as_dict(),
            "k": config.k,
            "seed": config.seed,
            "index": index,
            "generator": GENERATOR,
        },
    )


def generate_corpus(out_dir: str | Path, config: SynthConfig) -> Path:
    """Write ``config.n`` clips and their manifest under ``out_dir``; returns the manifest path."""
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    pool = RaterPool.from_config(config)
    job = partial(make_clip, config=config, out_dir=out_dir, pool=pool)
    workers = min(config.n_workers, config.n)
    if workers == 1:
        records = [job(i) for i in range(config.n)]
    else:
        context = multiprocessing.get_context(config.start_method)
        chunk = max(1, min(16, config.n // (4 * workers)))
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as ex:
            records = list(ex.map(job, range(config.n), chunksize=chunk))
    return write_manifest(records, out_dir / "manifest.jsonl")
