"""Pooling long-format ratings into annotation records, and idempotent manifest merges."""

from __future__ import annotations

from connectors.wire.dimensions import Dimension
from ultravqa_ray.labels.records import Rating, build_records, merge_manifest
from ultravqa_ray.schemas.manifest import read_manifest

MQ, CQ = Dimension.MOTION_QUALITY, Dimension.CLARITY_QUALITY


def _r(video, rater, dim, score, labels=(), comment=None):
    return Rating(video, rater, dim, score, tuple(labels), comment, f"/v/{video}.mp4")


RATINGS = [
    _r("a", "ann", MQ, 4, ["shake"], "wobbly start"),
    _r("a", "ann", CQ, 2, ["blur", "noise"], "wobbly start"),
    _r("a", "bob", MQ, 5),
    _r("a", "bob", CQ, 3, ["blur"]),
    _r("a", "cid", CQ, 2, ["noise"]),  # cid skipped motion quality
    _r("b", "ann", MQ, 1),
    _r("b", "bob", MQ, 2),
]


def test_records_keep_rater_order_missing_entries_majority_labels_and_comments():
    built = build_records(RATINGS, needed=3)
    assert [r.video_id for r in built.records] == ["a"] and built.waiting == {"b": 2}
    rec = built.records[0]
    assert rec.raters == ["ann", "bob", "cid"]
    assert rec.ratings == {MQ: [4, 5, None], CQ: [2, 3, 2]}
    assert rec.y_mean(MQ) == 4.5
    # Labels ticked by at least half of the 3 raters (2 of 3); every vote kept in metadata.
    assert rec.sub_attributes == {MQ: [], CQ: ["blur", "noise"]}
    assert rec.metadata["sub_attribute_votes"] == {
        "motion_quality": {"shake": 1},
        "clarity_quality": {"blur": 2, "noise": 2},
    }
    assert rec.metadata["comments"] == {"ann": "wobbly start"}


def test_dropped_raters_and_excluded_videos_do_not_count():
    built = build_records(RATINGS, needed=2, drop_raters=["bob"], exclude_videos=["b"])
    assert [r.video_id for r in built.records] == ["a"]
    assert built.records[0].raters == ["ann", "cid"] and built.waiting == {}


def test_merge_adds_only_new_videos(tmp_path):
    out = tmp_path / "m.jsonl"
    first = build_records(RATINGS, needed=3).records
    assert merge_manifest(first, out, k=5) == (1, 0)
    before = out.read_text()
    assert merge_manifest(first, out, k=5) == (0, 1)
    assert out.read_text() == before
    both = build_records(RATINGS + [_r("b", "cid", MQ, 2)], needed=3).records
    assert merge_manifest(both, out, k=5) == (1, 1)
    assert [r.video_id for r in read_manifest(out)] == ["a", "b"]
