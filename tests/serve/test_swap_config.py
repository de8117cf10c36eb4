"""The swap request: only the Scorer's ``user_config.model`` changes in the application's config."""

from __future__ import annotations

from ultravqa_ray.serve.swap import SwapReport, with_model


def test_with_model_changes_only_the_scorer_user_config():
    app = {"name": "ultravqa", "import_path": "ultravqa_ray.serve.app:build_app", "args": {"model": "/m/a"},
           "deployments": [{"name": "Scorer", "max_ongoing_requests": 64,
                            "user_config": {"max_batch_size": 16, "batch_wait_timeout_s": 0.02, "model": "/m/a"}},
                           {"name": "ScoreAPI", "num_replicas": 2}]}  # fmt: skip
    out = with_model(app, "s3://models/b")
    assert out["deployments"][0] == {"name": "Scorer", "max_ongoing_requests": 64,
                                     "user_config": {"max_batch_size": 16, "batch_wait_timeout_s": 0.02,
                                                     "model": "s3://models/b"}}  # fmt: skip
    assert out["deployments"][1] == app["deployments"][1] and out["args"] == app["args"]
    assert app["deployments"][0]["user_config"]["model"] == "/m/a"  # the input is not modified


def test_with_model_keeps_the_code_default_batching_when_the_config_names_no_scorer():
    app = {"name": "x", "import_path": "ultravqa_ray.serve.app:build_app",
           "args": {"model": "/m/a", "scorer": {"batching": {"max_batch_size": 3}}}}  # fmt: skip
    (scorer,) = with_model(app, "/m/b")["deployments"]
    assert scorer == {"name": "Scorer", "user_config": {"max_batch_size": 3, "batch_wait_timeout_s": 0.01,
                                                        "model": "/m/b"}}  # fmt: skip


def test_a_report_with_a_refusing_replica_is_not_ok():
    ok = {"configured": "/m/b", "last_swap": {"to": "/m/b", "ok": True, "error": None}}
    refused = {"configured": "/m/a", "last_swap": {"to": "/m/b", "ok": False, "error": "OSError: no such folder"}}
    report = SwapReport("x", "/m/b", 1.0, {"r1": ok, "r2": refused})
    assert not report.ok and report.serving_new == ["r1"] and report.refused == {"r2": "OSError: no such folder"}
    assert SwapReport("x", "/m/b", 1.0, {"r1": ok}).ok and not SwapReport("x", "/m/b", 1.0, {}).ok
