"""Rater quality control on hand-made crowds, and the subject model against ``sureal`` itself."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.wire.dimensions import DIMENSIONS, Dimension
from ultravqa_ray.labels.quality import fit_subject_model, quality_report
from ultravqa_ray.labels.records import Rating
from ultravqa_ray.metrics.agreement import krippendorff_alpha

CQ = Dimension.CLARITY_QUALITY


def _crowd(true: np.ndarray, raters: dict[str, np.ndarray]) -> list[Rating]:
    """``raters[name]`` is (videos x dimensions) scores; NaN = not rated."""
    out = []
    for name, scores in raters.items():
        for j in range(true.shape[0]):
            for d, dim in enumerate(DIMENSIONS):
                if not np.isnan(scores[j, d]):
                    out.append(Rating(f"v{j:02d}", name, dim, int(scores[j, d])))
    return out


def test_a_rater_who_always_adds_one_point_shows_bias_plus_one():
    """Three raters give the true score 1..4, a fourth always one more.

    Leave-one-out consensus of the fourth = the true score, so its bias is exactly +1; an honest
    rater's consensus includes the +1 rater: (t + t + t + 1) / 3 - t = 1/3, bias -1/3. The subject
    model separates the two groups by exactly one point as well.
    """
    rng = np.random.default_rng(0)
    true = rng.integers(1, 5, size=(20, 5)).astype(float)
    crowd = {"h1": true, "h2": true, "h3": true, "plus1": true + 1}
    report = quality_report(_crowd(true, crowd), k=5, dimensions=DIMENSIONS)
    by = {r.rater: r for r in report.raters}
    assert by["plus1"].bias == pytest.approx(1.0)
    assert by["h1"].bias == pytest.approx(-1 / 3)
    assert by["plus1"].consensus_corr == pytest.approx(1.0)
    model = report.per_dimension[CQ].model
    delta = dict(zip(model.raters, model.bias, strict=True))
    assert delta["plus1"] - delta["h1"] == pytest.approx(1.0, abs=1e-6)
    assert sum(model.bias) == pytest.approx(0.0, abs=1e-9)
    assert report.flagged == ["plus1"]
    assert by["plus1"].reasons[0].startswith("motion_quality: bias +1.00 beyond +-0.75")


def test_a_random_rater_is_flagged_and_honest_noisy_raters_are_not():
    rng = np.random.default_rng(1)
    true = rng.integers(1, 6, size=(40, 5)).astype(float)
    noisy = {f"h{i}": np.clip(true + rng.choice([-1, 0, 0, 0, 1], size=true.shape), 1, 5) for i in range(4)}
    noisy["random"] = rng.integers(1, 6, size=true.shape).astype(float)
    ratings = _crowd(true, noisy)
    report = quality_report(ratings, k=5, dimensions=DIMENSIONS)
    by = {r.rater: r for r in report.raters}
    assert report.flagged == ["random"]
    assert abs(by["random"].consensus_corr) < 0.3 and by["h0"].consensus_corr > 0.7
    assert by["random"].inconsistency > 2 * max(by[f"h{i}"].inconsistency for i in range(4))
    # Alpha is the project's own statistic on the video x rater table.
    units = [[s for s in (noisy[r][j, 4] for r in noisy)] for j in range(40)]
    assert report.per_dimension[CQ].alpha == pytest.approx(krippendorff_alpha(units, values=[1, 2, 3, 4, 5]))
    # Recovered scores follow the truth better than the plain mean does (the random rater is down-weighted).
    model = report.per_dimension[CQ].model
    mos = np.mean([noisy[r][:, 4] for r in noisy], axis=0)
    err_model = np.abs(np.array(model.scores) - true[:, 4]).mean()
    assert err_model < np.abs(mos - true[:, 4]).mean()
    lo, hi = np.array(model.ci95()).T
    assert np.all(lo < np.array(model.scores)) and np.all(np.array(model.scores) < hi)


def test_gold_accuracy_marks_a_rater_who_misses_known_answers():
    true = np.tile(np.array([[1, 2, 3, 4, 5]], float), (10, 1))
    crowd = {"a": true, "b": true, "c": true, "lazy": np.full_like(true, 3)}
    gold = {f"v{j:02d}": {d: int(true[j, i]) for i, d in enumerate(DIMENSIONS)} for j in range(5)}
    report = quality_report(_crowd(true, crowd), k=5, dimensions=DIMENSIONS, gold=gold)
    by = {r.rater: r for r in report.raters}
    assert by["a"].gold_n == 25 and by["a"].gold_accuracy == 1.0
    assert by["lazy"].gold_accuracy == pytest.approx(3 / 5)  # within 1 point of 2, 3, 4 only
    assert "lazy" in report.flagged


def test_raters_with_too_few_videos_are_reported_but_never_marked():
    true = np.tile(np.array([[1, 2, 3, 4, 5]], float), (10, 1))
    late = np.full_like(true, np.nan)
    late[:2] = 5
    report = quality_report(_crowd(true, {"a": true, "b": true, "late": late}), k=5, dimensions=DIMENSIONS)
    by = {r.rater: r for r in report.raters}
    assert by["late"].n_videos == 2 and by["late"].bias > 0.75 and not by["late"].flagged


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # sureal's own divide-by-zero on its content-aware terms
def test_subject_model_matches_sureal():
    sureal = pytest.importorskip("sureal.subjective_model", reason="sureal is in the test extras")
    from sureal.dataset_reader import RawDatasetReader

    rng = np.random.default_rng(3)
    n_videos, n_raters = 30, 6
    psi = rng.uniform(1, 5, n_videos)
    bias = np.array([0.0, 0.5, -0.5, 0.2, -0.2, 0.0])
    noise = np.array([0.3, 0.4, 0.5, 0.3, 0.6, 1.5])
    scores = np.round(
        psi[:, None] + bias[None, :] + noise[None, :] * rng.standard_normal((n_videos, n_raters))
    )
    scores[rng.random(scores.shape) < 0.1] = np.nan  # missing ratings
    ours = fit_subject_model(scores, min_upsilon=1e-6)  # sureal has no floor: compare the plain MLE

    class Dataset:
        dataset_name = "labels"
        ref_videos = [
            {"content_id": j, "content_name": f"c{j}", "path": f"c{j}.yuv"} for j in range(n_videos)
        ]
        dis_videos = [
            {"content_id": j, "asset_id": j, "path": f"d{j}.yuv",
             "os": {f"s{i}": float(scores[j, i]) for i in range(n_raters) if not np.isnan(scores[j, i])}}
            for j in range(n_videos)
        ]  # fmt: skip

    theirs = sureal.MaximumLikelihoodEstimationModelContentOblivious(
        RawDatasetReader(Dataset())
    ).run_modeling()
    assert np.allclose(ours[0], theirs["quality_scores"], atol=1e-3)
    assert np.allclose(ours[2], theirs["observer_bias"], atol=1e-3)
    assert np.allclose(ours[3], theirs["observer_inconsistency"], atol=1e-3)
    assert np.allclose(ours[1], theirs["quality_scores_std"], atol=1e-3)
