"""Zero-downtime model swap: the Kafka bridge streams uploads while the Scorer's model changes.

An application of its own (deployed from a config, as ``serve deploy`` and a RayService do, so a
``user_config`` change reconfigures live replicas) starts on tiny model A; ``swap_model`` moves it to
tiny model B (another seed and depth) while the bridge is busy. Every input ends as exactly one score
event, none fails, and the ``model`` named by the events goes from A to B and never back. A swap to
a model that cannot load keeps A serving and says why.
"""

from __future__ import annotations

import shutil
import time

import pytest

from connectors.wire.messages import ScoreEvent
from tests.fixtures.bridge import (
    PARTITIONS,
    assert_one_output_each,
    outputs_by_key,
    publish,
    running_bridge,
    upload,
)
from tests.pipelines.kafka_reader import read_all
from ultravqa_ray.model.tiny import build_tiny_model
from ultravqa_ray.serve.swap import SCORER, deploy_config, swap_model

SWAP_APP = "ultravqa-swap"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("swap-models")
    a = build_tiny_model("qwen2_vl", root / "model-a", seed=1)
    b = build_tiny_model("qwen2_vl", root / "model-b", seed=2, num_layers=1)
    return str(a), str(b)


@pytest.fixture(scope="module")
def swap_clips(allowed_dir):
    from tests.fixtures.clips import make_clip

    return [make_clip(allowed_dir / f"swap-{i}.mp4", n_frames=12 + i, size=(80, 64)) for i in range(4)]


@pytest.fixture
def swap_app(serve_http, allowed_dir, clip_dir, models):
    """The application on model A, deployed from a config; deleted after the test."""
    from ray import serve

    args = {
        "model": models[0],
        "decode": {"num_frames": 8, "height": 64, "width": 64, "max_bytes": 2_000_000, "max_pixels": 1_000_000},
        "storage": {"allow": [str(allowed_dir), str(clip_dir)]},
        "torch_threads": 1,
        "http": False,
        "scorer": {"num_replicas": 1, "num_cpus": 0.5, "graceful_shutdown_timeout_s": 2},
    }
    deploy_config([{
        "name": SWAP_APP, "route_prefix": "/swap-test", "import_path": "ultravqa_ray.serve.app:build_app",
        "args": args,
        "deployments": [{"name": SCORER, "user_config": {"max_batch_size": 4, "batch_wait_timeout_s": 0.02,
                                                         "model": models[0]}}],
    }])  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        app = serve.status().applications.get(SWAP_APP)
        if app is not None and str(app.status).endswith("RUNNING"):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"{SWAP_APP} did not start: {serve.status().applications.get(SWAP_APP)}")
    yield serve.get_deployment_handle(SCORER, SWAP_APP)
    serve.delete(SWAP_APP)


def test_swap_under_load_changes_the_model_once_and_drops_nothing(
    swap_app, models, kafka_settings, topics, swap_clips
):
    a, b = models
    first = [(f"s-{i}", upload(f"s-{i}", str(swap_clips[i % 4]))) for i in range(32)]
    published = publish(kafka_settings, topics.uploads, first)
    with running_bridge(kafka_settings, topics, app=SWAP_APP, max_in_flight=4) as bridge:
        deadline = time.monotonic() + 60
        while bridge.stats.written < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert 0 < bridge.stats.written < len(first), "the stream finished before the swap: make it longer"
        report = swap_model(SWAP_APP, b, timeout_s=60)
        assert report.ok, report.summary()
        second = [(f"t-{i}", upload(f"t-{i}", str(swap_clips[i % 4]))) for i in range(8)]  # after: all on B
        published |= publish(kafka_settings, topics.uploads, second)
        records = read_all(kafka_settings.bootstrap_servers, [topics.scores, topics.dead_letters], len(published))
    by_key = outputs_by_key(records)
    assert_one_output_each(by_key, published)
    assert all(m.topic() == topics.scores for (m,) in by_key.values())  # no request failed
    assert bridge.stats.retries == 0
    events = {k: ScoreEvent.from_bytes(m.value()) for k, (m,) in by_key.items()}
    names = {e.model.name for e in events.values()}
    assert names == {a, b}, names
    assert {events[k].model.name for k, _ in second} == {b}
    for partition in range(PARTITIONS):  # in each output partition: A ... A B ... B
        in_order = [ScoreEvent.from_bytes(m.value()).model.name for m in records
                    if m.topic() == topics.scores and m.partition() == partition]  # fmt: skip
        switched = in_order.index(b) if b in in_order else len(in_order)
        assert set(in_order[switched:]) <= {b}, in_order
    by_time = sorted(events.values(), key=lambda e: e.produced_at)  # the order the batches were scored in
    names_in_time = [e.model.name for e in by_time]
    assert names_in_time == sorted(names_in_time, key=lambda n: n == b), names_in_time
    # The swap was a reconfigure of the replica that was there, not a restart.
    status = swap_app.model_status.remote().result(timeout_s=30)
    assert status["configured"] == b and status["swaps"] == {"done": 1, "failed": 0}
    assert status["replica"] in report.replicas


@pytest.mark.parametrize("damage", ["missing", "corrupted"])
def test_swap_to_a_model_that_cannot_load_keeps_the_old_one_serving(
    swap_app, models, tmp_path, swap_clips, damage
):
    from connectors.wire.messages import UploadEvent

    a, _ = models
    if damage == "missing":
        target = str(tmp_path / "no-such-model")
    else:
        target = str(shutil.copytree(models[1], tmp_path / "corrupted"))
        weights = next((tmp_path / "corrupted").glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])  # truncated weights
    report = swap_model(SWAP_APP, target, timeout_s=60)
    assert not report.ok
    (reason,) = report.refused.values()
    assert reason and "\n" not in reason, reason
    status = swap_app.model_status.remote().result(timeout_s=30)
    assert status["model"]["name"] == a and status["configured"] == a
    assert status["last_swap"]["ok"] is False and status["swaps"]["failed"] == 1
    outcome = swap_app.score.remote(UploadEvent.from_bytes(upload("after", str(swap_clips[0])))).result(timeout_s=60)
    assert outcome.event is not None and outcome.event.model.name == a  # still serving, on A


def test_serve_swap_command_swaps_and_reports_a_refusal(swap_app, models, ray_env, tmp_path):
    import json
    import os
    import subprocess
    import sys

    import ray

    address = ray.get_runtime_context().gcs_address
    env = {**os.environ, **ray_env}

    def cli(model: str):
        return subprocess.run(
            [sys.executable, "-m", "ultravqa_ray.cli", "serve-swap", "--app", SWAP_APP, "--model", model,
             "--address", address, "--swap-timeout-s", "60"],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip

    done = cli(models[1])
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"] and {r["configured"] for r in report["replicas"].values()} == {models[1]}
    refused = cli(str(tmp_path / "no-such-model"))
    assert refused.returncode == 3, refused.stderr[-2000:]
    assert "swap refused" in refused.stderr and not json.loads(refused.stdout.strip().splitlines()[-1])["ok"]
    status = swap_app.model_status.remote().result(timeout_s=30)
    assert status["configured"] == models[1]  # the refused swap left B serving


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    """Four rated synthetic clips: the held-out set both models are evaluated on."""
    from ultravqa_ray.data.config import SynthConfig
    from ultravqa_ray.data.synth import generate_corpus

    out = tmp_path_factory.mktemp("promote-heldout")
    return generate_corpus(out, SynthConfig(n=4, seed=5, width=64, height=64, duration_s=1.0, workers=1))


def test_promote_apply_to_swaps_only_an_accepted_candidate(swap_app, models, heldout, ray_env, tmp_path):
    """One command from evaluation to serving: ``promote --apply-to`` evaluates both models on the
    application's cluster (named by ``--address`` alone), writes the record, and swaps only when the
    gate accepts. A candidate equal to production cannot improve beyond its interval: refused, and
    production keeps serving; with a rule that asks for no improvement B is accepted and goes live."""
    import json
    import os
    import subprocess
    import sys

    import ray

    address = ray.get_runtime_context().gcs_address
    env = {k: v for k, v in {**os.environ, **ray_env}.items() if k != "RAY_ADDRESS"}

    def promote(candidate: str, out: str, *rule: str):
        sets = [a for r in ("cpus_per_actor=0.5", "rule.draws=200", *rule) for a in ("--set", r)]
        return subprocess.run(
            [sys.executable, "-m", "ultravqa_ray.cli", "promote", "--candidate", candidate, "--baseline", models[0],
             "--heldout", str(heldout), "--out", str(tmp_path / out), *sets, "--apply-to", SWAP_APP,
             "--address", address, "--swap-timeout-s", "60"],
            capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip

    refused = promote(models[0], "same")
    assert refused.returncode == 3, refused.stderr[-2000:]
    record = json.loads((tmp_path / "same" / "promotion.json").read_text())
    assert not record["accepted"] and record["reasons"]
    assert json.loads(refused.stdout) == {"accepted": False, "record": str(tmp_path / "same" / "promotion.json"),
                                          "report": str(tmp_path / "same" / "promotion.html")}  # fmt: skip
    assert swap_app.model_status.remote().result(timeout_s=30)["configured"] == models[0]

    loose = ("rule.decide_on=[]", "rule.tolerance.mae=10", "rule.tolerance.acc=10", "rule.tolerance.srcc=10")
    accepted = promote(models[1], "b", *loose)
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    record = json.loads((tmp_path / "b" / "promotion.json").read_text())
    assert record["accepted"] and record["candidate"]["content_hash"] != record["baseline"]["content_hash"]
    assert (tmp_path / "b" / "promotion.html").exists()
    decision, swap = (json.loads(line) for line in accepted.stdout.strip().splitlines())
    assert decision["accepted"] and decision["record"].endswith("promotion.json"), accepted.stdout
    assert swap["ok"], accepted.stdout  # the swap's report follows the decision
    assert swap_app.model_status.remote().result(timeout_s=30)["configured"] == models[1]
