"""Annotation records: validation, derived aggregates, JSON Lines and Parquet round trips."""

from __future__ import annotations

import numpy as np
import pytest

from ultravqa_ray.schemas import AnnotationRecord, Dimension, ManifestError, read_manifest, write_manifest
from ultravqa_ray.schemas.annotation import round_half_up
from ultravqa_ray.schemas.manifest import resolve_uri

from ..fixtures.object_store import OBJECT_STORES

CLARITY = Dimension.CLARITY_QUALITY
MOTION = Dimension.MOTION_QUALITY


def _record(video_id="v1", **over):
    base = dict(
        video_id=video_id,
        uri="videos/v1.mp4",
        duration_s=3.0,
        ratings={CLARITY: [2, 3, 3], MOTION: [5, 4, None]},
        raters=["r1", "r2", "r3"],
        sub_attributes={CLARITY: ["blur"]},
        rationale={CLARITY: "Soft edges throughout."},
        metadata={"latent": {"clarity_quality": 2.7}},
    )
    base.update(over)
    return AnnotationRecord(**base)


def test_aggregates_are_derived_from_the_ratings():
    rec = _record()
    assert rec.y_mean(CLARITY) == pytest.approx(8 / 3)
    np.testing.assert_allclose(rec.distribution(CLARITY, 5), [0, 1 / 3, 2 / 3, 0, 0])
    assert rec.rounded_mean(CLARITY) == 3
    # The missing third rating of motion is ignored: mean of 5 and 4 is 4.5, rounded half up to 5.
    assert rec.y_mean(MOTION) == 4.5
    assert rec.rounded_mean(MOTION) == 5
    np.testing.assert_allclose(rec.distribution(MOTION, 10)[:6], [0, 0, 0, 0.5, 0.5, 0])
    assert rec.dimensions() == (MOTION, CLARITY)


def test_round_half_up_differs_from_bankers_rounding():
    assert [round_half_up(x) for x in (1.5, 2.5, 3.49, 3.5)] == [2, 3, 3, 4]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_manifest_round_trip(tmp_path, suffix):
    records = [_record("a"), _record("b", raters=None, ratings={CLARITY: [1, 1, 2]})]
    path = write_manifest(records, tmp_path / f"manifest{suffix}")
    assert read_manifest(path) == records


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"ratings": {CLARITY: [2, 3]}}, "raters"),  # 2 ratings, 3 raters
        ({"ratings": {CLARITY: [None, None, None]}}, "no rating"),
        ({"ratings": {CLARITY: [0, 3, 3]}}, "below 1"),
        ({"ratings": {}}, "at least one"),
        ({"raters": ["r1", "r1", "r2"]}, "unique"),
    ],
)
def test_invalid_records_are_refused(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        _record(**kwargs)


def test_reader_checks_scale_duplicates_and_names_the_line(tmp_path):
    path = write_manifest([_record("a", ratings={CLARITY: [6, 3, 3]})], tmp_path / "m.jsonl")
    with pytest.raises(ManifestError, match=r"line 1.*outside 1..5"):
        read_manifest(path, k=5)
    assert read_manifest(path, k=10)[0].y_mean(CLARITY) == 4.0

    dup = write_manifest([_record("a"), _record("a")], tmp_path / "dup.jsonl")
    with pytest.raises(ManifestError, match="line 2: duplicate video_id 'a'"):
        read_manifest(dup)

    broken = tmp_path / "broken.jsonl"
    broken.write_text(_record().model_dump_json() + "\n{oops\n")
    with pytest.raises(ManifestError, match="line 2: not valid JSON"):
        read_manifest(broken)


def test_relative_uris_resolve_against_the_manifest(tmp_path):
    manifest = tmp_path / "corpus" / "manifest.jsonl"
    assert resolve_uri("videos/a.mp4", manifest) == str(tmp_path / "corpus" / "videos" / "a.mp4")
    assert resolve_uri("s3://b/a.mp4", manifest) == "s3://b/a.mp4"
    assert resolve_uri("/abs/a.mp4", manifest) == "/abs/a.mp4"


@pytest.mark.parametrize("object_store", OBJECT_STORES, indirect=True)
@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_manifest_on_object_storage_reads_like_a_local_one(object_store, suffix, tmp_path):
    records = [_record("a"), _record("b", uri="s3://videos/b.mp4")]
    local = write_manifest(records, tmp_path / f"manifest{suffix}")
    folder = f"data/heldout-{suffix[1:]}"
    uri = object_store.upload("data", f"heldout-{suffix[1:]}/manifest{suffix}", local)
    assert read_manifest(uri) == read_manifest(local) == records
    assert resolve_uri(records[0].uri, uri) == f"{object_store.scheme}://{folder}/videos/v1.mp4"
    with pytest.raises(ManifestError, match=r"missing\.jsonl: manifest not found"):
        read_manifest(f"{object_store.scheme}://data/missing.jsonl")
