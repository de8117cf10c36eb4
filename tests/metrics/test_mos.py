"""MOS CSV datasets (KoNViD-1k, LSVQ, YouTube-UGC styles) and the metrics against MOS."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from connectors.wire.dimensions import Dimension
from connectors.wire.messages import DimensionScore
from ultravqa_ray.metrics.mos import (
    MosFormatError,
    MosItem,
    evaluate_mos,
    infer_mos_range,
    mos_to_scale,
    read_mos_csv,
)

MQ = Dimension.MOTION_QUALITY
CQ = Dimension.CLARITY_QUALITY


def write(tmp_path, text: str, name: str = "mos.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def at(score: float, k: int = 5) -> DimensionScore:
    """A read-out with expected value ``score``: mass split between the two neighbouring levels."""
    lo = min(int(math.floor(score)), k - 1)
    probs = np.zeros(k)
    probs[lo - 1], probs[lo] = lo + 1 - score, score - lo
    return DimensionScore(score=score, label=int(probs.argmax()) + 1, probs=probs.tolist())


# --- reading --------------------------------------------------------------------------------


def test_konvid_style_header(tmp_path):
    path = write(tmp_path, "flickr_id,mos\n3337642103,4.64\n8536919744,2.1\n")
    items = read_mos_csv(path, video_dir="/data/konvid")
    assert items == [
        MosItem(video_id="3337642103", uri="/data/konvid/3337642103.mp4", mos=4.64),
        MosItem(video_id="8536919744", uri="/data/konvid/8536919744.mp4", mos=2.1),
    ]


def test_konvid_attributes_style_upper_case_mos_and_bom(tmp_path):
    path = write(tmp_path, "\ufeffflickr_id,MOS,SD,n\n3337642103,4.64,0.6,80\n")
    (item,) = read_mos_csv(path)
    assert (item.video_id, item.mos) == ("3337642103", 4.64)
    assert item.uri == str(tmp_path / "3337642103.mp4")  # default folder: the CSV's


def test_lsvq_style_picks_mos_not_mos_p1_and_keeps_the_subfolder(tmp_path):
    path = write(
        tmp_path,
        "name,p1,p2,p3,height,width,mos_p1,mos_p2,mos_p3,mos,frame_number\n"
        "ia-batch1/abc,1,2,3,720,1280,60.1,61.0,59.2,72.25,300\n",
    )
    (item,) = read_mos_csv(path, video_dir="s3://bucket/lsvq/")
    assert item == MosItem(video_id="ia-batch1/abc", uri="s3://bucket/lsvq/ia-batch1/abc.mp4", mos=72.25)


def test_youtube_ugc_style_semicolons_pattern_and_names_with_extensions(tmp_path):
    path = write(tmp_path, "vid;MOS full\nAnimation_1080P-05f8;3.9\nGaming_360P-0b98.mkv;2.5\n")
    items = read_mos_csv(path, video_dir="ugc", pattern="{name}.mkv")
    assert [(i.video_id, i.uri, i.mos) for i in items] == [
        ("Animation_1080P-05f8", "ugc/Animation_1080P-05f8.mkv", 3.9),
        ("Gaming_360P-0b98", "ugc/Gaming_360P-0b98.mkv", 2.5),
    ]


def test_explicit_columns_override_detection(tmp_path):
    path = write(tmp_path, "clip\tquality\tmos\nx\t80\t1\n")
    (item,) = read_mos_csv(path, name_column="clip", mos_column="quality", video_dir="v")
    assert (item.video_id, item.mos, item.uri) == ("x", 80.0, "v/x.mp4")
    with pytest.raises(MosFormatError, match=r"mos\.csv line 1: no MOS column 'rating'"):
        read_mos_csv(path, name_column="clip", mos_column="rating")


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "flickr_id,mos\n1,4.0\n2,abc\n",
            r"mos\.csv line 3: MOS 'abc' in column 'mos' is not a finite number",
        ),
        ("flickr_id,mos\n1,4.0\n\n2,nan\n", r"mos\.csv line 4: MOS 'nan'"),
        ("flickr_id,mos\n,4.0\n", r"mos\.csv line 2: empty video name"),
        ("flickr_id,mos\n1,4.0\n1,3.0\n", r"mos\.csv line 3: video '1' repeats line 2"),
        ("flickr_id,mos\n1\n", r"mos\.csv line 2: 1 field\(s\), the header \(line 1\) has 2"),
        ("id,value\n1,4.0\n", r"mos\.csv line 1: no video name column found"),
        ("flickr_id,dmos\n1,4.0\n", r"mos\.csv line 1: no MOS column found"),
        ("flickr_id,mos\n", r"mos\.csv: no data rows"),
        ("\n", r"mos\.csv: empty MOS file"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path, text, message):
    with pytest.raises(MosFormatError, match=message):
        read_mos_csv(write(tmp_path, text))


def test_missing_file_and_bad_pattern(tmp_path):
    with pytest.raises(MosFormatError, match="not found"):
        read_mos_csv(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="must contain"):
        read_mos_csv(write(tmp_path, "name,mos\na,1\n"), pattern="video.mp4")


# --- range and map --------------------------------------------------------------------------


def test_infer_mos_range_snaps_to_known_scales():
    assert infer_mos_range([1.2, 4.6]) == (1.0, 5.0)  # KoNViD-1k
    assert infer_mos_range([2.1, 91.7]) == (0.0, 100.0)  # LSVQ
    assert infer_mos_range([0.5, 4.5]) == (0.0, 5.0)
    assert infer_mos_range([-3.0, 250.0]) == (-3.0, 250.0)  # unknown: the data's own span


def test_linear_map_onto_1_to_k():
    """1..5 onto K = 5 is the identity; 0..100 onto 1..5 sends 0 -> 1, 50 -> 1 + 50 * 4/100 = 3, 100 -> 5."""
    mos = np.array([1.0, 2.5, 4.2, 5.0])
    np.testing.assert_allclose(mos_to_scale(mos, (1, 5), 5), mos)
    np.testing.assert_allclose(mos_to_scale(np.array([0.0, 50.0, 100.0]), (0, 100), 5), [1.0, 3.0, 5.0])
    assert mos_to_scale(75.0, (0, 100), 10) == pytest.approx(1 + 75 * 9 / 100)
    with pytest.raises(ValueError, match="lo < hi"):
        mos_to_scale(1.0, (5, 5), 5)


# --- metrics --------------------------------------------------------------------------------


def test_evaluate_mos_by_hand():
    """MOS 0..100: (20, 50, 90) maps to (1.8, 3.0, 4.6); scores (2.0, 3.0, 4.0) give
    mae = (0.2 + 0 + 0.6) / 3 = 0.8 / 3, and rank alike: srcc = krcc = 1. Video d has no prediction.
    """
    items = [
        MosItem(video_id=v, uri=f"{v}.mp4", mos=m) for v, m in [("a", 20), ("b", 50), ("c", 90), ("d", 10)]
    ]
    predictions = {"a": {MQ: at(2.0)}, "b": {MQ: at(3.0)}, "c": {MQ: at(4.0)}}
    result = evaluate_mos(items, predictions, MQ, k=5)
    assert result.mos_range == (0.0, 100.0) and result.mos_range_inferred
    assert result.n == 3 and result.missing == ["d"]
    assert result.mae == pytest.approx(0.8 / 3)
    assert (result.srcc, result.krcc) == pytest.approx((1.0, 1.0))
    assert result.plcc == pytest.approx(np.corrcoef([2, 3, 4], [20, 50, 90])[0, 1])
    assert "1 of 4 videos have no prediction" in result.warnings


def test_evaluate_mos_matches_scipy_and_averages_dimensions():
    rng = np.random.default_rng(0)
    mos = rng.uniform(1, 5, size=30)
    s1, s2 = rng.uniform(1, 5, size=30), rng.uniform(1, 5, size=30)
    items = [MosItem(video_id=f"v{i}", uri=f"v{i}.mp4", mos=float(m)) for i, m in enumerate(mos)]
    predictions = {f"v{i}": {MQ: at(float(s1[i])), CQ: at(float(s2[i]))} for i in range(30)}
    result = evaluate_mos(items, predictions, [MQ, CQ], k=5, mos_range=(1, 5))
    x = (s1 + s2) / 2
    assert result.srcc == pytest.approx(stats.spearmanr(x, mos).statistic, abs=1e-12)
    assert result.plcc == pytest.approx(stats.pearsonr(x, mos).statistic, abs=1e-12)
    assert result.krcc == pytest.approx(stats.kendalltau(x, mos).statistic, abs=1e-12)
    assert result.mae == pytest.approx(np.abs(x - mos).mean())  # 1..5 onto K = 5 is the identity
    assert not result.mos_range_inferred


def test_evaluate_mos_constant_scores_and_out_of_range_values_warn():
    items = [MosItem(video_id=v, uri=v, mos=m) for v, m in [("a", 1.0), ("b", 7.0)]]
    predictions = {"a": {MQ: at(3.0)}, "b": {MQ: at(3.0)}}
    result = evaluate_mos(items, predictions, MQ, k=5, mos_range=(1, 5))
    assert math.isnan(result.srcc)
    assert any("constant" in w for w in result.warnings)
    assert any("outside the range" in w for w in result.warnings)
    assert result.mae == pytest.approx((2.0 + 4.0) / 2)  # 7 on 1..5 maps to 7 on K = 5


def test_evaluate_mos_k10_and_csv_end_to_end(tmp_path):
    """LSVQ-style 0..100 onto K = 10: MOS 50 -> 1 + 50 * 9/100 = 5.5; a score of 5.5 is an exact hit."""
    path = write(tmp_path, "name,mos\nx,50\ny,100\n")
    items = read_mos_csv(path)
    predictions = {"x": {MQ: at(5.5, k=10)}, "y": {MQ: at(10.0, k=10)}}
    result = evaluate_mos(items, predictions, MQ, k=10)
    assert result.mae == pytest.approx(0.0)
    assert result.srcc == pytest.approx(1.0)
