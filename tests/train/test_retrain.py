"""The retraining job, stopped after the reference pass and submitted again: only ASO, the two
evaluations and the gate run the second time (read from its step log), through the CLI."""

from __future__ import annotations

import json

import pytest
import yaml

import ultravqa_ray.cli as cli
from tests.train.conftest import DECODE
from ultravqa_ray.data.config import SynthConfig
from ultravqa_ray.data.synth import generate_corpus
from ultravqa_ray.train.retrain import STEP_LOG, RetrainConfig, retrain


# Two Ray Train runs (SFT, ASO) and three Ray Data passes (reference, two evaluations): 582 s on a
# 2-core machine under load average ~50 (shared); the default 600 s timeout is too close.
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_retrain_resumes_after_the_reference_pass(ray_local, train_corpus, tiny_model, tmp_path, monkeypatch):
    heldout = generate_corpus(tmp_path / "heldout", SynthConfig(n=4, seed=11, width=64, height=64, duration_s=1.0,
                                                               workers=1))  # fmt: skip
    settings = {
        "manifests": [str(train_corpus)], "heldout": str(heldout), "base_model": str(tiny_model),
        "production": str(tiny_model), "work_dir": str(tmp_path / "work"), "decode": DECODE.model_dump(mode="json"),
        "sft": {"epochs": 1, "lr": 1e-3, "batch_size": 4}, "aso": {"epochs": 1, "lr": 1e-3, "batch_size": 4},
        "workers": 1, "cpus_per_worker": 0.5, "cpus_per_actor": 0.5, "rule": {"draws": 200},
    }  # fmt: skip
    first = retrain(RetrainConfig.model_validate({**settings, "stop_after": "reference"}))
    assert first.ran == ["manifest", "sft", "reference"] and first.accepted is None

    config_file = tmp_path / "retrain.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    monkeypatch.setattr(cli, "COMMANDS", ("retrain",))
    status = cli.main(["retrain", "--config", str(config_file)])
    assert status in (0, 3)  # accepted or refused: the gate decided

    lines = [json.loads(line) for line in (tmp_path / "work" / STEP_LOG).read_text().splitlines()]
    second = lines[3:]
    assert [(e["step"], e["status"]) for e in second] == [
        ("manifest", "skipped"), ("sft", "skipped"), ("reference", "skipped"), ("aso", "done"),
        ("eval_candidate", "done"), ("eval_production", "done"), ("gate", "done"),
    ]  # fmt: skip
    assert [e["key"] for e in second[:3]] == [e["key"] for e in lines[:3]]  # same inputs, same keys
    record = json.loads((tmp_path / "work" / f"gate-{second[-1]['key']}" / "promotion.json").read_text())
    assert record["candidate"]["content_hash"].startswith("sha256:") and "interval" in record["mean"]["mae"]
    assert (status == 0) == record["accepted"]


def test_the_shipped_retrain_config_loads():
    from pathlib import Path

    config = RetrainConfig.load(Path(__file__).parents[2] / "jobs" / "configs" / "retrain.yaml")
    assert config.aso.set == ["aso.beta=0.1"] and config.rule.decide_on == ["mae"]
