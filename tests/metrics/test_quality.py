"""Model-versus-rater metrics on hand-made cases, with the expected numbers worked out in docstrings."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy import stats

from connectors.wire.dimensions import DIMENSIONS, Dimension
from connectors.wire.messages import DecodeInfo, DimensionScore, ModelRef, ScoreEvent, Timings
from ultravqa_ray.metrics.quality import (
    EvalResult,
    correlations,
    evaluate_predictions,
    read_predictions_jsonl,
)
from ultravqa_ray.schemas.annotation import AnnotationRecord

MQ = Dimension.MOTION_QUALITY
AQ = Dimension.AESTHETIC_QUALITY


def record(video_id: str, ratings: dict[Dimension, list[int | None]]) -> AnnotationRecord:
    return AnnotationRecord(video_id=video_id, uri=f"{video_id}.mp4", ratings=ratings)


def read_out(probs, label: int | None = None) -> DimensionScore:
    """The section-3 read-out of ``probs``: expected score, argmax label (first on ties unless given)."""
    p = np.asarray(probs, dtype=np.float64)
    score = float((np.arange(1, len(p) + 1) * p).sum())
    return DimensionScore(score=score, label=label or int(p.argmax()) + 1, probs=p.tolist())


def one_hot(s: int, k: int = 5) -> DimensionScore:
    return read_out(np.eye(k)[s - 1])


def test_perfect_predictions():
    """Raters agree on s and the model puts all mass on s: every error is 0, every correlation 1.

    acc@0.5 = exact = 1, mae = 0, srcc = plcc = krcc = 1; calibration: p = q one-hot, so
    nll = -log 1 = 0, brier = 0, and every label is right at confidence 1, so ece = 0.
    """
    records = [record(f"v{s}", {MQ: [s, s, s], AQ: [s, s]}) for s in range(1, 6)]
    predictions = {f"v{s}": {MQ: one_hot(s), AQ: one_hot(s)} for s in range(1, 6)}
    result = evaluate_predictions(records, predictions, k=5)
    assert list(result.per_dimension) == [MQ, AQ]
    for row in [*result.per_dimension.values(), result.overall]:
        assert (row.acc_at_0_5, row.exact, row.mae) == (1.0, 1.0, 0.0)
        assert (row.srcc, row.plcc, row.krcc) == pytest.approx((1.0, 1.0, 1.0))
        assert (row.ece, row.nll, row.brier) == pytest.approx((0.0, 0.0, 0.0), abs=1e-12)
        assert row.warnings == []
    assert result.per_dimension[MQ].n == 5
    assert result.overall.n == 10
    assert result.missing == [] and result.unmatched == []


# Four videos on K = 5 (q = rater distribution, p = predicted distribution):
#   video  ratings   y_mean  rounded  p                        score  label  |score-y|  acc  exact  p(label)
#   a      3 3 4     10/3    3        (0, 0, .5, .5, 0)        3.5    3      1/6        yes  yes    .5
#   b      2 3       5/2     3        (0, .4, .6, 0, 0)        2.6    3      1/10       yes  yes    .6
#   c      5 5 4     14/3    5        (0, 0, .2, .6, .2)       4.0    4      2/3        no   no     .6
#   d      1 2 1     4/3     1        (.5, .25, .25, 0, 0)     1.75   1      5/12       yes  yes    .5
FOUR = {
    "a": ([3, 3, 4], [0, 0, 0.5, 0.5, 0]),
    "b": ([2, 3], [0, 0.4, 0.6, 0, 0]),
    "c": ([5, 5, 4], [0, 0, 0.2, 0.6, 0.2]),
    "d": ([1, 2, 1], [0.5, 0.25, 0.25, 0, 0]),
}


@pytest.fixture
def four():
    records = [record(vid, {MQ: ratings}) for vid, (ratings, _) in FOUR.items()]
    predictions = {vid: {MQ: read_out(probs)} for vid, (_, probs) in FOUR.items()}
    return evaluate_predictions(records, predictions, k=5).per_dimension[MQ]


def test_four_videos_accuracy_exact_mae(four):
    """acc@0.5 = exact = 3/4 (video c misses both); mae = (1/6 + 1/10 + 2/3 + 5/12) / 4 = (81/60) / 4 = 0.3375."""
    assert four.n == 4
    assert four.acc_at_0_5 == pytest.approx(0.75)
    assert four.exact == pytest.approx(0.75)
    assert four.mae == pytest.approx(0.3375)


def test_four_videos_correlations(four):
    """Scores (3.5, 2.6, 4.0, 1.75) and rater means (3.33, 2.5, 4.67, 1.33) rank alike: srcc = krcc = 1.

    The Pearson correlation is not 1 (the gaps differ) and equals numpy's corrcoef.
    """
    x = [3.5, 2.6, 4.0, 1.75]
    y = [10 / 3, 5 / 2, 14 / 3, 4 / 3]
    assert four.srcc == pytest.approx(1.0)
    assert four.krcc == pytest.approx(1.0)
    assert four.plcc == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert four.plcc < 0.99


def test_four_videos_calibration(four):
    """ECE, NLL and Brier of the four videos, by hand.

    ECE (10 bins): bin [.5, .6) holds a, d (confidence .5, both right: gap .5); bin [.6, .7) holds
    b (right) and c (wrong) (confidence .6, accuracy .5: gap .1). ECE = 2/4 * .5 + 2/4 * .1 = 0.30.

    NLL = mean of -sum_s q(s) log p(s):
      a: -(2/3 log .5 + 1/3 log .5) = log 2
      b: -(1/2 log .4 + 1/2 log .6)
      c: -(1/3 log .6 + 2/3 log .2)
      d: -(2/3 log .5 + 1/3 log .25)

    Brier = mean of sum_s (p(s) - q(s))^2:
      a: 2 * (1/6)^2 = 1/18;  b: .1^2 + .1^2 = 1/50;  c: .2^2 + (4/15)^2 + (7/15)^2 = 74/225;
      d: (1/6)^2 + (1/12)^2 + (1/4)^2 = 14/144.
    """
    log = math.log
    nll = [
        log(2),
        -(log(0.4) + log(0.6)) / 2,
        -(log(0.6) + 2 * log(0.2)) / 3,
        -(2 * log(0.5) + log(0.25)) / 3,
    ]
    brier = [1 / 18, 1 / 50, 74 / 225, 14 / 144]
    assert four.ece == pytest.approx(0.30)
    assert four.nll == pytest.approx(sum(nll) / 4)
    assert four.brier == pytest.approx(sum(brier) / 4)
    assert [(b.lower, b.count, b.accuracy) for b in four.reliability] == [
        (0.5, 2, 1.0),
        (pytest.approx(0.6), 2, 0.5),
    ]


def test_round_half_up_and_the_half_boundary():
    """Ratings 2, 3 give y_mean 2.5, rounded up to 3 (Python's round() would say 2).

    Predicting label 3 (score 3.0) is exact; predicting label 2 (score 2.0) is not. Both are at
    |score - y| = 0.5 exactly and count for acc@0.5 (the bound is inclusive).
    """
    records = [record("up", {MQ: [2, 3]}), record("down", {MQ: [2, 3]})]
    predictions = {"up": {MQ: one_hot(3)}, "down": {MQ: one_hot(2)}}
    result = evaluate_predictions(records, predictions, k=5)
    up = evaluate_predictions(records[:1], {"up": predictions["up"]}, k=5).per_dimension[MQ]
    down = evaluate_predictions(records[1:], {"down": predictions["down"]}, k=5).per_dimension[MQ]
    assert (up.exact, up.acc_at_0_5, up.mae) == (1.0, 1.0, 0.5)
    assert (down.exact, down.acc_at_0_5, down.mae) == (0.0, 1.0, 0.5)
    assert result.per_dimension[MQ].exact == 0.5


@pytest.mark.parametrize("seed", range(3))
def test_correlations_equal_scipy(seed):
    rng = np.random.default_rng(seed)
    n = 40
    ratings = rng.integers(1, 6, size=(n, 3))
    records = [record(f"v{i}", {MQ: ratings[i].tolist()}) for i in range(n)]
    logits = rng.normal(size=(n, 5))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    predictions = {f"v{i}": {MQ: read_out(probs[i])} for i in range(n)}
    row = evaluate_predictions(records, predictions, k=5).per_dimension[MQ]

    x = (probs * np.arange(1, 6)).sum(axis=1)
    y = ratings.mean(axis=1)
    assert row.srcc == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert row.plcc == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert row.krcc == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert row.mae == pytest.approx(np.abs(x - y).mean())
    assert row.acc_at_0_5 == pytest.approx(np.mean(np.abs(x - y) <= 0.5))


def test_constant_input_gives_nan_and_a_warning_not_an_error():
    """MQ predictions are all 3.0: its correlations are NaN with a warning; the other metrics stand.

    The overall srcc is then the mean over the one dimension where it is defined (AQ, perfect = 1).
    """
    records = [record(f"v{s}", {MQ: [s], AQ: [s]}) for s in range(1, 4)]
    predictions = {f"v{s}": {MQ: one_hot(3), AQ: one_hot(s)} for s in range(1, 4)}
    result = evaluate_predictions(records, predictions, k=5)
    mq = result.per_dimension[MQ]
    assert math.isnan(mq.srcc) and math.isnan(mq.plcc) and math.isnan(mq.krcc)
    assert any("constant" in w for w in mq.warnings)
    assert mq.mae == pytest.approx(1.0)  # (|3-1| + |3-2| + |3-3|) / 3
    assert result.overall.srcc == pytest.approx(1.0)
    assert (
        "srcc, plcc, krcc: mean over 1 of 2 dimensions (undefined for motion_quality)"
        in result.overall.warnings
    )
    assert result.overall.mae == pytest.approx((1.0 + 0.0) / 2)

    constant_target, warnings = correlations(np.array([1.0, 2.0]), np.array([4.0, 4.0]))
    assert math.isnan(constant_target["srcc"]) and "constant" in warnings[0]
    too_few, warnings = correlations(np.array([1.0]), np.array([2.0]))
    assert math.isnan(too_few["plcc"]) and "need at least 2" in warnings[0]


def test_missing_predictions_are_counted_and_listed():
    """Three rated videos, one without any prediction, one without the AQ prediction.

    MQ pairs 2 of 3 (n_missing 1), AQ pairs 1 of 3 (n_missing 2); both videos are listed as missing.
    A prediction for an unknown video is listed as unmatched.
    """
    records = [record(v, {MQ: [3], AQ: [3]}) for v in ("a", "b", "c")]
    predictions = {"a": {MQ: one_hot(3), AQ: one_hot(3)}, "b": {MQ: one_hot(3)}, "zzz": {MQ: one_hot(1)}}
    result = evaluate_predictions(records, predictions, k=5)
    assert result.per_dimension[MQ].n == 2 and result.per_dimension[MQ].n_missing == 1
    assert result.per_dimension[AQ].n == 1 and result.per_dimension[AQ].n_missing == 2
    assert result.missing == ["b", "c"]
    assert result.unmatched == ["zzz"]
    assert "1 of 3 rated videos have no prediction" in result.per_dimension[MQ].warnings


def test_a_dimension_with_no_prediction_at_all_is_nan_not_an_error():
    records = [record("a", {MQ: [3], AQ: [2]})]
    result = evaluate_predictions(records, {"a": {MQ: one_hot(3)}}, k=5)
    aq = result.per_dimension[AQ]
    assert aq.n == 0 and aq.n_missing == 1 and math.isnan(aq.mae) and math.isnan(aq.exact)
    assert result.overall.mae == 0.0  # mean over MQ only, with a warning
    assert result.overall.warnings == [
        "acc@0.5, exact, mae, ece, nll, brier: mean over 1 of 2 dimensions (undefined for aesthetic_quality)",
        "srcc, plcc, krcc: mean over 0 of 2 dimensions (undefined for motion_quality, aesthetic_quality)",
    ]


def test_k_equals_10():
    """K = 10, two videos.

    x: ratings 7, 8 -> y = 7.5, rounded 8; all mass on 8 -> score 8, |err| = .5 (acc yes), exact yes.
    y: ratings 10, 10, 9 -> y = 29/3, rounded 10; p(9) = p(10) = .5 -> score 9.5, label 9 (first
    argmax), |err| = 1/6 (acc yes), exact no. acc@0.5 = 1, exact = 1/2, mae = (1/2 + 1/6) / 2 = 1/3.
    """
    records = [record("x", {MQ: [7, 8]}), record("y", {MQ: [10, 10, 9]})]
    half = np.zeros(10)
    half[8:] = 0.5
    predictions = {"x": {MQ: one_hot(8, k=10)}, "y": {MQ: read_out(half)}}
    row = evaluate_predictions(records, predictions, k=10).per_dimension[MQ]
    assert (row.acc_at_0_5, row.exact) == (1.0, 0.5)
    assert row.mae == pytest.approx(1 / 3)
    assert row.srcc == pytest.approx(1.0)


def test_bad_inputs_raise_with_the_video_named():
    records = [record("a", {MQ: [3]})]
    with pytest.raises(ValueError, match=r"'a' motion_quality: probs has 5 entries, expected K = 10"):
        evaluate_predictions(records, {"a": {MQ: one_hot(3)}}, k=10)
    with pytest.raises(ValueError, match=r"ratings\[motion_quality\] \[4\] outside 1..3"):
        evaluate_predictions([record("b", {MQ: [4]})], {}, k=3)
    with pytest.raises(ValueError, match="label 6 outside 1..5"):
        evaluate_predictions(records, {"a": {MQ: {"score": 3.0, "label": 6, "probs": [0, 0, 1, 0, 0]}}}, k=5)
    with pytest.raises(ValueError, match="duplicate video_id"):
        evaluate_predictions(records * 2, {}, k=5)
    with pytest.raises(ValueError, match="not a score read-out"):
        evaluate_predictions(records, {"a": {MQ: {"score": 3.0}}}, k=5)


def test_plain_mappings_are_accepted_as_read_outs():
    records = [record("a", {MQ: [2]}), record("b", {MQ: [4]})]
    predictions = {
        "a": {"motion_quality": {"score": 2.0, "label": 2, "probs": [0, 1, 0, 0, 0]}},
        "b": {"motion_quality": {"score": 4.0, "label": 4, "probs": [0, 0, 0, 1, 0]}},
    }
    row = evaluate_predictions(records, predictions, k=5).per_dimension[MQ]
    assert (row.n, row.exact, row.mae) == (2, 1.0, 0.0)


def test_json_round_trip_names_acc_at_half_and_writes_nan_as_null():
    records = [record("a", {MQ: [3]})]
    result = evaluate_predictions(records, {"a": {MQ: one_hot(3)}}, k=5, meta={"model": "tiny"})
    data = json.loads(result.model_dump_json())
    row = data["per_dimension"]["motion_quality"]
    assert row["acc@0.5"] == 1.0 and row["srcc"] is None
    back = EvalResult.model_validate_json(result.model_dump_json())
    assert back.per_dimension[MQ].acc_at_0_5 == 1.0 and math.isnan(back.per_dimension[MQ].srcc)
    assert back.meta == {"model": "tiny"}


def test_default_dimensions_are_the_rated_ones_in_canonical_order():
    records = [record("a", {Dimension.CLARITY_QUALITY: [3], MQ: [2]})]
    result = evaluate_predictions(records, {}, k=5)
    assert list(result.per_dimension) == [MQ, Dimension.CLARITY_QUALITY]
    explicit = evaluate_predictions(records, {}, k=5, dimensions=DIMENSIONS)
    assert list(explicit.per_dimension) == list(DIMENSIONS)


def test_read_predictions_jsonl_reads_score_events_and_keeps_error_lines(tmp_path):
    event = ScoreEvent(
        video_id="a",
        uri="a.mp4",
        model=ModelRef(name="tiny", revision="0"),
        scores={MQ: one_hot(4)},
        decode=DecodeInfo(frames=8, duration_s=1.0, width=64, height=64),
        timings_ms=Timings(decode=1, infer=1, total=2),
        produced_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    error = {"uri": "b.mp4", "error_kind": "corrupt_video", "error": "bad"}
    path = tmp_path / "scores.jsonl"
    path.write_text(event.to_bytes().decode() + "\n\n" + json.dumps(error) + "\n")
    predictions, errors = read_predictions_jsonl(path)
    assert predictions["a"][MQ].label == 4
    assert errors == [error]
    path.write_text(event.to_bytes().decode() + "\n{not json\n")
    with pytest.raises(ValueError, match=r"scores.jsonl line 2"):
        read_predictions_jsonl(path)
