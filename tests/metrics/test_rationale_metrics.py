"""Rationale metrics on hand-made text, with the expected numbers worked out in each docstring."""

from __future__ import annotations

import pytest

from connectors.wire.dimensions import Dimension
from ultravqa_ray.data.config import SynthConfig
from ultravqa_ray.data.factors import sample_factors
from ultravqa_ray.data.rationale import parse_rationale
from ultravqa_ray.data.synth import RaterPool, annotate, clip_streams
from ultravqa_ray.metrics.rationale import band_contradicts, rationale_counts, rationale_metrics

C = Dimension.CLARITY_QUALITY


def test_parser_reads_band_and_cited_defects_not_slight_or_negated_ones():
    parsed = parse_rationale(
        C,
        "Clarity Quality is poor, with strong blur that softens the edges and slight noise over flat areas.",
    )
    assert parsed.band == 1 and parsed.sub_attributes == {"blur"}  # "slight" is below the label threshold
    clean = parse_rationale(
        Dimension.MOTION_QUALITY,
        "Motion Quality is excellent: motion is smooth, without shake, jitter or stutter.",
    )
    assert clean.band == 4 and clean.sub_attributes == frozenset()
    amp = parse_rationale(
        Dimension.MOTION_AMPLITUDE,
        "Motion is very large (large motion): the camera pans fast and the objects move slowly.",
    )
    assert amp.band == 4 and amp.sub_attributes == {"large_motion", "camera_motion"}
    static = parse_rationale(
        Dimension.MOTION_AMPLITUDE, "The clip is essentially static: neither the camera nor the objects move."
    )
    assert static.band == 0 and static.sub_attributes == {"static"}
    content = parse_rationale(
        Dimension.CONTENT_QUALITY, "Content is poor: a sparse scene, one subject over a plain background."
    )
    assert content.band == 1 and content.sub_attributes == {"sparse_scene"}
    digits = parse_rationale(C, "11455555554555")
    assert digits.band is None and digits.sub_attributes == frozenset()


@pytest.mark.parametrize(
    ("band", "score", "expected"),
    [
        (3, 3.8, False),  # "good" is [3.4, 4.2]: inside
        (3, 3.1, False),  # 0.3 below: within half a band (0.4)
        (3, 2.9, True),  # 0.5 below
        (3, 4.6, False),  # 0.4 above: on the tolerance
        (3, 4.7, True),
        (0, 1.0, False),
        (None, 3.0, True),  # no band stated
    ],
)
def test_band_contradiction_is_half_a_band_outside(band, score, expected):
    assert band_contradicts(band, score, k=5) is expected


def test_counts_on_hand_made_rationales():
    """Three clarity rationales:

    1. cites blur, noise; annotated blur             -> cited 2, annotated 1, matched 1; "poor" [1.8, 2.6] vs 2.0: agrees
    2. cites nothing ("excellent"); annotated noise  -> cited 0, annotated 1, matched 0; [4.2, 5] vs 2.5: contradicts
    3. digits; annotated nothing                     -> no band: contradicts

    precision 1/2, recall 1/2, contradiction 2/3, no_band 1.
    """
    items = [
        (
            "Clarity Quality is poor, with strong blur that softens the edges and noticeable noise over flat areas.",
            2.0,
            ["blur"],
        ),
        (
            "Clarity Quality is excellent: edges are crisp and free of noise and compression artifacts.",
            2.5,
            ["noise"],
        ),
        ("11455555", 3.0, []),
    ]
    c = rationale_counts(C, items, k=5)
    assert (c.n, c.cited, c.annotated, c.matched, c.contradicting, c.no_band) == (3, 2, 2, 1, 2, 1)
    assert c.precision == pytest.approx(0.5) and c.recall == pytest.approx(0.5)
    assert c.contradiction == pytest.approx(2 / 3)


def test_metrics_pool_the_dimensions():
    """Clarity: 1 cited 1 annotated 1 matched; content: 1 cited 0 annotated -> overall precision 1/2, recall 1."""
    out = rationale_metrics(
        {
            C: [
                (
                    "Clarity Quality is fair, with severe pixelation from low resolution.",
                    3.0,
                    ["low_resolution"],
                )
            ],
            Dimension.CONTENT_QUALITY: [
                (
                    "Content is excellent: a rich scene, a subject and 5 other objects over a richly textured background.",
                    4.8,
                    [],
                )
            ],
        },
        k=5,
    )
    assert out["per_dimension"]["clarity_quality"]["recall"] == 1.0
    assert out["per_dimension"]["content_quality"]["recall"] is None  # nothing annotated
    assert out["overall"]["precision"] == pytest.approx(0.5)
    assert out["overall"]["recall"] == 1.0 and out["overall"]["contradiction"] == 0.0


def test_synthetic_rationales_name_exactly_their_sub_attributes_and_band():
    """The corpus' own rationales read back to their annotations: recall 1, precision 1, no contradiction
    against the latent score (the generator and the parser speak the same template language)."""
    config = SynthConfig(n=400, seed=3)
    pool = RaterPool.from_config(config)
    items: dict[Dimension, list] = {d: [] for d in Dimension}
    for i in range(config.n):
        rng_factors, _, rng_ratings = clip_streams(config.seed, i)
        record = annotate(i, sample_factors(rng_factors, config), config, rng_ratings, pool)
        for d in Dimension:
            items[d].append(
                (record.rationale[d], record.metadata["latent"][d.value], record.sub_attributes[d])
            )
    out = rationale_metrics(items, k=5)["overall"]
    assert out["annotated"] > 400  # labels are common enough for the check to mean something
    assert out["precision"] == 1.0 and out["recall"] == 1.0 and out["contradiction"] == 0.0


def test_report_writes_the_rationale_block_into_metrics_json_and_the_page(tmp_path):
    import json

    from ultravqa_ray.metrics.quality import evaluate_predictions
    from ultravqa_ray.metrics.report import write_report

    from .test_report import corpus

    records, predictions = corpus(12)
    result = evaluate_predictions(records, predictions, k=5)
    block = rationale_metrics(
        {C: [("Clarity Quality is fair, with severe blur that softens the edges.", 3.0, ["blur"])]}, k=5
    )
    block["examples"] = [{"video_id": "v0000", "dimension": "clarity_quality", "score": 3.0,
                          "rationale": "Clarity Quality is fair, with severe <blur>."}]  # fmt: skip
    files = write_report(result, records, predictions, tmp_path, rationale=block)
    saved = json.loads(files.metrics_json.read_text())
    assert saved["rationale"]["overall"]["recall"] == 1.0 and saved["per_dimension"]  # EvalResult fields kept
    page = files.index_html.read_text()
    assert "<h2>Rationales</h2>" in page and "severe &lt;blur&gt;" in page
