"""Krippendorff's alpha against the published worked example and the `krippendorff` package."""

from __future__ import annotations

import math

import krippendorff
import numpy as np
import pytest

from ultravqa_ray.metrics.agreement import krippendorff_alpha, ordinal_alpha_by_dimension
from ultravqa_ray.schemas import AnnotationRecord, Dimension

N = None
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 coders x 12 units.
CODERS = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
]
UNITS = list(zip(*CODERS, strict=True))


@pytest.mark.parametrize("metric, published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_published_worked_example(metric, published):
    assert krippendorff_alpha(UNITS, metric=metric) == pytest.approx(published, abs=5e-4)


@pytest.mark.parametrize("seed", range(6))
def test_matches_the_krippendorff_package_on_random_data_with_gaps(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, size=40)
    data = np.clip(truth + rng.integers(-1, 2, size=(4, 40)), 1, 5).astype(float)
    data[rng.random(data.shape) < 0.2] = np.nan
    ours = krippendorff_alpha(list(data.T), metric="ordinal", values=range(1, 6))
    theirs = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal", value_domain=range(1, 6))
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_perfect_agreement_is_one_and_unpairable_data_is_nan():
    assert krippendorff_alpha([[1, 1], [3, 3, 3], [5, 5]]) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha([[1], [2, None]]))


def test_systematic_disagreement_is_negative():
    assert krippendorff_alpha([[1, 5], [5, 1], [1, 5], [5, 1]], metric="ordinal") < 0


def test_per_dimension_alpha_over_records():
    clarity, motion = Dimension.CLARITY_QUALITY, Dimension.MOTION_QUALITY
    records = [
        AnnotationRecord(
            video_id=f"v{i}",
            uri=f"{i}.mp4",
            ratings={clarity: list(unit), motion: [1 + i % 5, 5 - i % 5, 3, 3]},
        )
        for i, unit in enumerate(UNITS)
    ]
    alphas = ordinal_alpha_by_dimension(records, k=5, dimensions=(clarity, motion))
    expected = krippendorff_alpha([r.ratings[clarity] for r in records], values=range(1, 6))
    assert alphas[clarity] == pytest.approx(expected)
    assert alphas[motion] < 0.2  # raters pulling opposite ways
