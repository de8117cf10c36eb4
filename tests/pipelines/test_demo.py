"""The demo end to end: every upload, good or bad, comes back as exactly one output."""

from __future__ import annotations

import io

from ultravqa_ray.pipelines.demo import DemoConfig, run_demo


def test_demo_scores_good_uploads_and_dead_letters_bad_ones(tmp_path):
    out = io.StringIO()
    summary = run_demo(DemoConfig(work_dir=tmp_path, n_clips=4, timeout_s=120), out)
    assert summary["missing"] == 0
    assert summary["scored"] == 4
    assert summary["dead_letters"] == {
        "invalid_message": 2,
        "not_found": 1,
        "not_a_video": 1,
        "corrupt_video": 1,
    }
    text = out.getvalue()
    assert "synth-s0-000003" in text and "dead letter [not_found]" in text
    # A second run reuses the cached corpus and model.
    again = io.StringIO()
    assert run_demo(DemoConfig(work_dir=tmp_path, n_clips=4, bad_inputs=False, timeout_s=120), again)["scored"] == 4
    assert "cached" in again.getvalue()
