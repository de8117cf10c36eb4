"""The synthetic corpus: determinism, rating ranges, factor -> score monotonicity, factors in pixels."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np
import pytest
from pydantic import ValidationError
from scipy.stats import spearmanr

from connectors.wire.dimensions import DIMENSIONS, Dimension
from ultravqa_ray.data import (
    Factors,
    RaterPool,
    SynthConfig,
    encode_clip,
    generate_corpus,
    latent_scores,
    render_clip,
    sample_factors,
    sub_attributes,
)
from ultravqa_ray.data.synth import annotate, clip_streams
from ultravqa_ray.schemas.manifest import read_manifest, resolve_uri

MQ, MA, AQ, CQ, CL = (
    Dimension.MOTION_QUALITY,
    Dimension.MOTION_AMPLITUDE,
    Dimension.AESTHETIC_QUALITY,
    Dimension.CONTENT_QUALITY,
    Dimension.CLARITY_QUALITY,
)
CFG = SynthConfig(n=8, seed=7, workers=1)
# a moving, moderately damaged clip with objects: every factor is visible and has room to move
MID = Factors(
    object_speed=0.3,
    camera_speed=0.3,
    jitter=0.2,
    shake=0.2,
    frame_defects=0.2,
    exposure=0.2,
    disharmony=0.2,
    tilt=0.2,
    framing=0.2,
    clutter=0.2,
    richness=0.6,
    blur=0.2,
    noise=0.2,
    compression=0.2,
    downscale=0.2,
)
LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _strictly_monotone(values: list[float], increasing: bool) -> bool:
    d = np.diff(values)
    return bool(np.all(d > 0) if increasing else np.all(d < 0))


# --- determinism -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("synth")
    return {
        "a": generate_corpus(base / "a", CFG.override(["workers=1"])),
        "b": generate_corpus(base / "b", CFG.override(["workers=2"])),
        "c": generate_corpus(base / "c", CFG.override(["seed=8"])),
    }


def test_same_seed_gives_byte_identical_corpus_whatever_the_workers(corpora):
    a, b = corpora["a"], corpora["b"]
    assert a.read_bytes() == b.read_bytes()
    videos = sorted((a.parent / "videos").glob("*.mp4"))
    assert len(videos) == CFG.n
    for path in videos:
        assert path.read_bytes() == (b.parent / "videos" / path.name).read_bytes()


def test_different_seeds_differ(corpora):
    a, c = read_manifest(corpora["a"]), read_manifest(corpora["c"])
    assert [r.metadata["latent"] for r in a] != [r.metadata["latent"] for r in c]
    va = sorted((corpora["a"].parent / "videos").glob("*.mp4"))[0].read_bytes()
    vc = sorted((corpora["c"].parent / "videos").glob("*.mp4"))[0].read_bytes()
    assert va != vc


def test_manifest_round_trips_and_points_at_decodable_clips(corpora):
    path = corpora["a"]
    records = read_manifest(path, k=CFG.k)
    assert [r.video_id for r in records] == [f"synth-s7-{i:06d}" for i in range(CFG.n)]
    for rec in records:
        assert rec.uri == f"videos/{rec.video_id}.mp4"
        assert set(rec.ratings) == set(DIMENSIONS) == set(rec.rationale) == set(rec.sub_attributes)
        assert set(rec.metadata["latent"]) == {d.value for d in DIMENSIONS}
        assert Factors(**rec.metadata["factors"]).as_dict() == rec.metadata["factors"]
    with av.open(resolve_uri(records[0].uri, path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == CFG.n_frames and frames[0].shape == (CFG.height, CFG.width, 3)
    assert records[0].duration_s == pytest.approx(CFG.duration_s)
    # the record is rebuilt exactly from its seed, without pixels
    rng_f, _, rng_r = clip_streams(CFG.seed, 3)
    again = annotate(3, sample_factors(rng_f, CFG), CFG, rng_r, RaterPool.from_config(CFG))
    assert again == records[3]


def test_corpus_with_ten_levels_reads_back_on_that_scale(tmp_path):
    cfg = SynthConfig(n=3, k=10, seed=1, workers=1, width=64, height=48)
    records = read_manifest(generate_corpus(tmp_path, cfg), k=10)
    assert len(records) == 3 and all(r.width == 64 and r.height == 48 for r in records)


# --- latent scores and ratings ---------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 5, 10])
def test_ratings_lie_in_1_to_k_with_3_to_5_raters(k):
    cfg = SynthConfig(n=1, k=k, seed=3)
    pool = RaterPool.from_config(cfg)
    counts, means, latents = set(), [], []
    for i in range(300):
        rng_f, _, rng_r = clip_streams(cfg.seed, i)
        rec = annotate(i, sample_factors(rng_f, cfg), cfg, rng_r, pool)
        counts.add(len(rec.raters))
        for dim in DIMENSIONS:
            latent = rec.metadata["latent"][dim.value]
            assert 1.0 <= latent <= k
            assert all(1 <= r <= k for r in rec.ratings[dim]) and len(rec.ratings[dim]) == len(rec.raters)
            means.append(rec.y_mean(dim))
            latents.append(latent)
    assert counts == {3, 4, 5}
    assert spearmanr(means, latents).statistic > (0.85 if k == 2 else 0.95)  # raters follow the latent


def test_latent_dimensions_are_spread_and_not_correlated():
    rng = np.random.default_rng(0)
    latent = np.array([list(latent_scores(sample_factors(rng, CFG), 5).values()) for _ in range(3000)])
    corr = np.corrcoef(latent.T)
    assert np.abs(corr - np.eye(5)).max() < 0.1
    for j in range(5):  # every fifth of the scale is used
        hist = np.histogram(latent[:, j], bins=5, range=(1, 5))[0]
        assert hist.min() > 0.1 * len(latent)


def test_clean_and_worst_clips_hit_the_ends_of_the_scale():
    best = Factors(object_speed=1.0, camera_speed=1.0, richness=1.0)
    worst = Factors(
        jitter=1, shake=1, exposure=1, disharmony=1, tilt=1, clutter=1, richness=0, blur=1, noise=1
    )
    for k in (2, 5, 10):
        assert all(v == pytest.approx(k) for v in latent_scores(best, k).values())
        assert all(v == pytest.approx(1) for v in latent_scores(worst, k).values())


@pytest.mark.parametrize(
    ("factor", "dim", "increasing"),
    [
        ("object_speed", MA, True),
        ("camera_speed", MA, True),
        ("jitter", MQ, False),
        ("shake", MQ, False),
        ("frame_defects", MQ, False),
        ("disharmony", AQ, False),
        ("tilt", AQ, False),
        ("framing", AQ, False),
        ("clutter", AQ, False),
        ("richness", CQ, True),
        ("blur", CL, False),
        ("noise", CL, False),
        ("compression", CL, False),
        ("downscale", CL, False),
    ],
)
def test_each_factor_moves_only_its_own_dimension(factor, dim, increasing):
    # richness from 3/7 up: three or more objects, so object motion counts fully throughout
    levels = [0.43 + 0.57 * x for x in LEVELS] if factor == "richness" else LEVELS
    scores = [latent_scores(dataclasses.replace(MID, **{factor: x}), 5) for x in levels]
    assert _strictly_monotone([s[dim] for s in scores], increasing), [s[dim] for s in scores]
    for other in DIMENSIONS:
        if other is not dim and not (factor in ("object_speed", "camera_speed") and other is MQ):
            assert len({round(s[other], 9) for s in scores}) == 1, other


def test_exposure_away_from_zero_lowers_aesthetics_both_ways():
    scores = [latent_scores(dataclasses.replace(MID, exposure=e), 5)[AQ] for e in (-1, -0.5, 0, 0.5, 1)]
    assert scores[0] < scores[1] < scores[2] > scores[3] > scores[4]


def test_invisible_factors_do_not_count():
    static = dataclasses.replace(MID, object_speed=0.0, camera_speed=0.0)
    empty = dataclasses.replace(MID, richness=0.05)
    assert empty.n_objects == 0 and static.n_objects > 0
    # a static clip's motion quality is jitter and shake only; stutter shows only with motion
    assert (
        latent_scores(dataclasses.replace(static, frame_defects=1.0), 5)[MQ] == latent_scores(static, 5)[MQ]
    )
    assert latent_scores(dataclasses.replace(static, shake=0.9), 5)[MQ] < latent_scores(static, 5)[MQ]
    # one object counts a third of full object motion, an empty scene has none to move, twitch or frame
    one = dataclasses.replace(MID, richness=0.2, camera_speed=0.0, object_speed=0.9)
    assert one.n_objects == 1 and latent_scores(one, 5)[MA] == pytest.approx(1 + 4 * 0.3)
    for name, dim in (("object_speed", MA), ("jitter", MQ), ("framing", AQ)):
        lo, hi = (latent_scores(dataclasses.replace(empty, **{name: x}), 5)[dim] for x in (0.0, 1.0))
        assert lo == hi, name
    assert latent_scores(empty, 5)[CQ] < 1.25


@pytest.mark.parametrize(
    ("factor", "value", "dim", "label", "cited"),
    [
        ("blur", 0.9, CL, "blur", "blur"),
        ("noise", 0.9, CL, "noise", "noise"),
        ("compression", 0.9, CL, "compression_artifacts", "compression"),
        ("downscale", 0.9, CL, "low_resolution", "resolution"),
        ("jitter", 0.9, MQ, "jitter", "jitter"),
        ("shake", 0.9, MQ, "shake", "shake"),
        ("frame_defects", 0.9, MQ, "stutter", "stutter"),
        ("exposure", 0.9, AQ, "overexposed", "overexposure"),
        ("exposure", -0.9, AQ, "underexposed", "underexposure"),
        ("tilt", 0.9, AQ, "tilted", "tilt"),
        ("clutter", 0.9, AQ, "cluttered", "clutter"),
        ("framing", 0.9, AQ, "poor_framing", "framing"),
        ("disharmony", 0.9, AQ, "color_disharmony", "clashing"),
        ("richness", 0.02, CQ, "empty_scene", "empty"),
        ("camera_speed", 0.0, MA, "static", "static"),
        ("camera_speed", 0.9, MA, "large_motion", "very large"),
    ],
)
def test_sub_attribute_appears_when_its_factor_is_strong(factor, value, dim, label, cited):
    clean = Factors(richness=0.6, camera_speed=0.5)
    assert label not in sub_attributes(clean)[dim]
    strong = dataclasses.replace(clean, **{factor: value})
    labels = sub_attributes(strong)
    assert label in labels[dim]
    _, _, rng_r = clip_streams(0, 0)
    rec = annotate(0, strong, CFG, rng_r, RaterPool.from_config(CFG))
    assert rec.sub_attributes[dim] == labels[dim]
    assert cited in rec.rationale[dim], rec.rationale[dim]


def test_rationale_names_the_dimension_and_a_clean_clip_reads_clean():
    _, _, rng_r = clip_streams(0, 0)
    rec = annotate(0, Factors(richness=0.9, camera_speed=0.8), CFG, rng_r, RaterPool.from_config(CFG))
    assert (
        rec.rationale[CL]
        == "Clarity Quality is excellent: edges are crisp and free of noise and compression artifacts."
    )
    assert "camera pans fast" in rec.rationale[MA]
    assert "static" in annotate(0, Factors(), CFG, rng_r, RaterPool.from_config(CFG)).rationale[MA]


def test_config_rejects_odd_sizes_and_bad_rater_ranges():
    with pytest.raises(ValidationError):
        SynthConfig(width=127)
    with pytest.raises(ValidationError):
        SynthConfig(raters_min=5, raters_max=3)
    assert SynthConfig.load(overrides=["k=10", "n=4"]).k == 10


# --- factors are visible in the pixels (measured at 64 px, as the model sees them) -----------------


def _render(factors: Factors, seed: int = 0) -> np.ndarray:
    """Frames at 64x64 (2x2 box down-sampling of the 128 px render), float in 0..255."""
    frames = render_clip(factors, CFG, np.random.default_rng(seed)).astype(np.float32)
    t, h, w, _ = frames.shape
    return frames.reshape(t, h // 2, 2, w // 2, 2, 3).mean(axis=(2, 4))


def _mean_over_seeds(measure, factors: Factors, seeds=(0, 1, 2)) -> float:
    return float(np.mean([measure(_render(factors, s)) for s in seeds]))


def _frame_diff(frames):  # 8 of 24 frames, as the model samples them
    return np.abs(np.diff(frames[::3], axis=0)).mean()


def _laplacian_var(frames):
    luma = frames.mean(axis=-1)
    lap = (
        luma[:, 1:-1, 1:-1] * 4
        - luma[:, :-2, 1:-1]
        - luma[:, 2:, 1:-1]
        - luma[:, 1:-1, :-2]
        - luma[:, 1:-1, 2:]
    )
    return lap.var()


SHARP = Factors(richness=0.7)


@pytest.mark.parametrize("factor", ["camera_speed", "object_speed"])
def test_frame_difference_grows_with_motion_amplitude(factor):
    diffs = [_mean_over_seeds(_frame_diff, dataclasses.replace(SHARP, **{factor: x})) for x in LEVELS]
    assert _strictly_monotone(diffs, True), diffs
    assert diffs[0] == 0 and diffs[-1] > 5


def test_laplacian_energy_falls_with_blur():
    energy = [_mean_over_seeds(_laplacian_var, dataclasses.replace(SHARP, blur=x)) for x in LEVELS]
    assert _strictly_monotone(energy, False), energy
    assert energy[-1] < 0.2 * energy[0]


def test_noise_and_shake_show_as_frame_to_frame_change_in_a_static_clip():
    for factor in ("noise", "shake"):
        diffs = [_mean_over_seeds(_frame_diff, dataclasses.replace(SHARP, **{factor: x})) for x in LEVELS]
        assert _strictly_monotone(diffs, True), (factor, diffs)


def test_mean_luminance_follows_exposure():
    lum = [_render(dataclasses.replace(SHARP, exposure=e)).mean() for e in (-1, -0.5, 0, 0.5, 1)]
    assert _strictly_monotone(lum, True), lum
    assert lum[0] < 80 and lum[-1] > 190


def _local_std(frames):
    """Mean luma sd inside 8x8 blocks: detail, not the sky/ground split."""
    luma = frames.mean(-1)
    t, h, w = luma.shape
    return luma.reshape(t, h // 8, 8, w // 8, 8).std(axis=(2, 4)).mean()


def test_empty_scene_has_low_spatial_variance():
    detail = [_mean_over_seeds(_local_std, Factors(richness=r)) for r in (0, 0.5, 1)]
    assert _strictly_monotone(detail, True), detail
    assert detail[0] < 0.5 * detail[2]


def test_disharmony_raises_saturation():
    def saturation(frames):
        return (frames.max(-1) - frames.min(-1)).mean()

    sat = [_mean_over_seeds(saturation, dataclasses.replace(SHARP, disharmony=x)) for x in (0, 0.5, 1)]
    assert _strictly_monotone(sat, True), sat


def test_frame_defects_repeat_frames():
    moving = dataclasses.replace(SHARP, camera_speed=0.6)
    for defects, expect_repeats in ((0.0, False), (1.0, True)):
        frames = _render(dataclasses.replace(moving, frame_defects=defects))
        repeats = (np.abs(np.diff(frames, axis=0)).max(axis=(1, 2, 3)) == 0).sum()
        assert (repeats > 0) == expect_repeats


def test_compression_lowers_fidelity_after_encoding(tmp_path):
    frames = render_clip(SHARP, CFG, np.random.default_rng(0))
    psnr = []
    for crf in (CFG.crf, 32, CFG.crf_max):
        path = encode_clip(frames, tmp_path / f"{crf}.mp4", CFG.fps, crf=crf)
        with av.open(str(path)) as container:
            decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        mse = ((decoded.astype(np.float64) - frames) ** 2).mean()
        psnr.append(10 * np.log10(255**2 / mse))
    assert _strictly_monotone(psnr, False), psnr
    assert psnr[0] > 35 > psnr[-1] + 5


def test_encode_rejects_odd_sizes(tmp_path):
    with pytest.raises(ValueError, match="even"):
        encode_clip(np.zeros((2, 15, 16, 3), np.uint8), tmp_path / "x.mp4", 8)


# --- speed ---------------------------------------------------------------------------------------


# Generation speed is measured in bench/bench_report.py (40 clips, 2 workers), not asserted here.
