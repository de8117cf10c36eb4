"""decode_batch: the shared Ray Data decode step keeps every row and says why a row failed."""

from __future__ import annotations

import json

import numpy as np

from tests.fixtures.clips import make_clip
from ultravqa_ray.video import DecodeConfig, decode_batch, ok_rows


def test_decode_batch_keeps_bad_rows_with_their_kind(tmp_path):
    good = make_clip(tmp_path / "good.mp4", n_frames=20)
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    config = DecodeConfig(num_frames=4, height=32, width=48)
    batch = {
        "uri": np.array([str(good), str(tmp_path / "missing.mp4"), str(text)], dtype=object),
        "video_id": np.array(["a", "b", "c"], dtype=object),
    }
    out = decode_batch(batch, config)
    assert out["frames"].shape == (3, 4, 32, 48, 3) and out["frames"].dtype == np.uint8
    assert list(out["video_id"]) == ["a", "b", "c"]
    assert list(out["error_kind"]) == ["", "not_found", "not_a_video"]
    assert ok_rows(out).tolist() == [True, False, False]
    assert out["frames"][0].any() and not out["frames"][1].any()
    assert json.loads(out["decode"][0])["num_frames"] == 4
    assert "missing.mp4" in out["error"][1]


def test_decode_batch_names_a_missing_uri_column():
    import pytest

    with pytest.raises(KeyError, match="'uri'"):
        decode_batch({"path": np.array(["x"])}, DecodeConfig())
