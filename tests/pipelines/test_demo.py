"""The demo end to end on Ray Serve and the bridge (tiny model: training is tested with the jobs)."""

from __future__ import annotations

import io

from ultravqa_ray.pipelines.demo import DemoConfig, run_demo


def test_demo_scores_good_uploads_and_dead_letters_bad_ones(ray_local, serve_http, tmp_path):
    # serve_http first: Serve keeps the HTTP options of whoever starts it, and the HTTP tests that
    # run later need the fixture's port (the demo itself joins a running Serve as it is).
    out = io.StringIO()
    summary = run_demo(DemoConfig(work_dir=tmp_path, model_cache_dir=tmp_path, n_clips=4, model="tiny", timeout_s=120), out)
    assert summary["missing"] == 0
    assert summary["scored"] == 4
    assert summary["dead_letters"] == {
        "invalid_message": 2,
        "not_found": 1,
        "not_a_video": 1,
        "corrupt_video": 1,
        "forbidden": 1,
    }
    text = out.getvalue()
    assert "synth-s100-000003" in text and "dead letter [forbidden]" in text
    assert "Scorer deployed on Ray Serve" in text and summary["latency_ms_p50"] > 0
    # A second run reuses the cached corpus and model.
    again = io.StringIO()
    assert run_demo(DemoConfig(work_dir=tmp_path, model_cache_dir=tmp_path, n_clips=4, model="tiny", bad_inputs=False,
                               timeout_s=120),
                    again)["scored"] == 4  # fmt: skip
    assert "corpus cached" in again.getvalue()
