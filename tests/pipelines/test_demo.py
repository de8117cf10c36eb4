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


def test_the_live_table_shows_the_lowest_scored_dimensions_rationale_shortened():
    from connectors.wire.dimensions import DIMENSIONS
    from connectors.wire.messages import DecodeInfo, ModelRef, ScoreEvent, Timings
    from ultravqa_ray.pipelines.demo import short_rationale

    def event(rationale):
        scores = {d.value: {"score": 3.0, "label": 3, "probs": [0, 0, 1, 0, 0]} for d in DIMENSIONS}
        scores["clarity_quality"] = {"score": 1.62, "label": 2, "probs": [0.4, 0.6, 0, 0, 0]}
        return ScoreEvent(
            video_id="v", uri="/v.mp4", model=ModelRef(name="m", revision="r"), scores=scores, rationale=rationale,
            decode=DecodeInfo(frames=8, duration_s=1, width=64, height=64), timings_ms=Timings(decode=1, infer=1, total=2),
        )  # fmt: skip

    written = {d.value: f"{d.label} is fair." for d in DIMENSIONS}
    written["clarity_quality"] = "Clarity Quality is poor, with strong blur that softens the edges."
    assert short_rationale(event(written)) == "why clarity 1.62: Clarity Quality is poor, with strong blur that softens the edges."
    long = {"clarity_quality": "Clarity Quality is poor, with " + "severe noise, " * 20}
    line = short_rationale(event(long), width=60)
    assert line is not None and len(line) == 60 and line.endswith("...")
    assert short_rationale(event(None)) is None and short_rationale(event({"clarity_quality": " "})) is None
