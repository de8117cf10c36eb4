"""``label import``: long-format CSV / JSON Lines from other tools; bad rows named by line, nothing written."""

from __future__ import annotations

import json

import pytest

from connectors.wire.dimensions import Dimension
from ultravqa_ray.cli import main
from ultravqa_ray.labels.importer import RatingsFormatError, read_ratings
from ultravqa_ray.schemas.manifest import read_manifest

GOOD = """video_id,rater,dimension,score,sub_attributes,comment,uri
v1,w1,clarity_quality,2,blur;noise,too soft,clips/v1.mp4
v1,w2,clarity_quality,3,blur,,clips/v1.mp4
v1,w3,clarity_quality,2,,,clips/v1.mp4
v1,w1,motion_quality,5,,,clips/v1.mp4
v2,w1,clarity_quality,4,,,clips/v2.mp4
"""

BAD = """video_id,rater,dimension,score
v1,w1,clarity_quality,2
v1,w2,sharpness,3
v1,w3,clarity_quality,6
v1,w1,clarity_quality,4
v2,,clarity_quality,4
v2,w1,motion_quality,three
v2,w2,motion_quality,2
"""


def test_good_csv_becomes_records_of_videos_with_enough_raters(tmp_path):
    src = tmp_path / "ratings.csv"
    src.write_text(GOOD)
    ratings = read_ratings(src, k=5)
    assert len(ratings) == 5 and ratings[0].sub_attributes == ("blur", "noise")
    out = tmp_path / "manifest.jsonl"
    assert main(["label", "import", str(src), "--out", str(out)]) == 0
    (rec,) = read_manifest(out)
    assert rec.video_id == "v1" and rec.raters == ["w1", "w2", "w3"]
    assert rec.ratings[Dimension.CLARITY_QUALITY] == [2, 3, 2]
    assert rec.ratings[Dimension.MOTION_QUALITY] == [5, None, None]
    assert rec.sub_attributes[Dimension.CLARITY_QUALITY] == ["blur"]
    assert rec.metadata["comments"] == {"w1": "too soft"}
    kept = [json.loads(line) for line in (tmp_path / "manifest.ratings.jsonl").read_text().splitlines()]
    assert len(kept) == 5 and kept[0]["rater"] == "w1"


def test_bad_rows_are_reported_by_line_and_nothing_is_written(tmp_path, capsys):
    src = tmp_path / "ratings.csv"
    src.write_text(BAD)
    with pytest.raises(RatingsFormatError) as err:
        read_ratings(src, k=5)
    lines = {line: why for line, why in err.value.problems}
    assert sorted(lines) == [3, 4, 5, 6, 7]
    assert "unknown dimension 'sharpness'" in lines[3]
    assert lines[4] == "score 6 outside 1..5"
    assert "duplicate rating of video 'v1' by 'w1' on clarity_quality (first on line 2)" in lines[5]
    assert lines[6] == "missing rater" and "not an integer" in lines[7]
    out = tmp_path / "manifest.jsonl"
    assert main(["label", "import", str(src), "--out", str(out)]) == 1
    err_text = capsys.readouterr().err
    assert (
        err_text.count("\n") == 1 and "5 bad row(s), nothing imported: line 3: unknown dimension" in err_text
    )
    assert not out.exists() and not (tmp_path / "manifest.ratings.jsonl").exists()


def test_jsonl_with_k10_and_a_video_list_for_uris(tmp_path):
    rows = [{"video": "v1", "rater": f"r{i}", "dimension": "aesthetic_quality", "score": s,
             "sub_attributes": ["tilted"]} for i, s in enumerate([9, 10, 8])]  # fmt: skip
    src = tmp_path / "ratings.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows) + "[1]\n{oops\n")
    with pytest.raises(RatingsFormatError, match=r"line 4: not a JSON object; line 5: not valid JSON"):
        read_ratings(src, k=10)
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    videos = tmp_path / "uploads.jsonl"
    videos.write_text(json.dumps({"video_id": "v1", "uri": "s3://bucket/v1.mp4"}) + "\n")
    out = tmp_path / "m.jsonl"
    assert (
        main(["label", "import", str(src), "--out", str(out), "--videos", str(videos), "--set", "k=10"]) == 0
    )
    (rec,) = read_manifest(out, k=10)
    assert rec.uri == "s3://bucket/v1.mp4" and rec.ratings[Dimension.AESTHETIC_QUALITY] == [9, 10, 8]
    # Without a uri anywhere the import says which video lacks one.
    assert main(["label", "import", str(src), "--out", str(tmp_path / "n.jsonl"), "--set", "k=10"]) == 1
