"""The shipped Serve configs: valid for Serve and for our builder, and ``serve run serve_configs/local.yaml``
in a subprocess (its own local Ray) answers the HTTP route.

The subprocess runs local.yaml with two fields changed: the HTTP port (a free one, still on
127.0.0.1) and ``model: tiny`` (the default model trains for minutes on first use; CI must not).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
import yaml

from connectors.kafka.broker import free_port
from tests.fixtures.clips import make_clip
from ultravqa_ray.pipelines.moderation import ModerationConfig, RuleSet
from ultravqa_ray.pipelines.stream import StreamConfig
from ultravqa_ray.serve.config import ScorerUserConfig, ServeConfig
from ultravqa_ray.train.default_model import resolve_model

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "serve_configs"


@pytest.mark.parametrize("name", ["local.yaml", "cluster.yaml"])
def test_serve_configs_validate(name):
    from ray.serve.schema import ServeDeploySchema

    data = yaml.safe_load((CONFIGS / name).read_text())
    ServeDeploySchema.model_validate(data)
    (app,) = data["applications"]
    assert app["import_path"] == "ultravqa_ray.serve.app:build_app"
    ServeConfig.model_validate(app["args"])
    names = {d["name"] for d in app["deployments"]}
    assert names <= {"Scorer", "Decoder", "ScoreAPI"}, names
    scorer = next(d for d in app["deployments"] if d["name"] == "Scorer")
    assert {"max_batch_size", "batch_wait_timeout_s"} <= set(scorer["user_config"]) <= {
        "max_batch_size", "batch_wait_timeout_s", "model"
    }
    ScorerUserConfig.model_validate(scorer["user_config"])
    assert "autoscaling_config" in scorer


def test_service_configs_validate():
    StreamConfig.load(CONFIGS / "stream.yaml")
    ModerationConfig.load(CONFIGS / "moderate.yaml")
    assert RuleSet.load(CONFIGS / "moderation_rules.yaml").rules


def test_every_serve_config_setting_is_documented():
    readme = (CONFIGS / "README.md").read_text()
    keys: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                keys.add(str(key))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for name in ("local.yaml", "cluster.yaml", "stream.yaml", "moderate.yaml"):
        walk(yaml.safe_load((CONFIGS / name).read_text()))
    missing = sorted(k for k in keys if f"`{k}`" not in readme)
    assert not missing, f"serve_configs/README.md does not document {missing}"


def test_serve_run_local_yaml_answers_the_http_route(tmp_path, ray_env):
    port = free_port()
    config = yaml.safe_load((CONFIGS / "local.yaml").read_text())
    config["http_options"]["port"] = port
    args = config["applications"][0]["args"]
    args.update(model=resolve_model("tiny", tmp_path / "cache"), cache_dir=str(tmp_path / "cache"))
    (tmp_path / "local.yaml").write_text(yaml.safe_dump(config))
    clip = make_clip(tmp_path / "clip.mp4", n_frames=10, size=(64, 48))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    ray_tmp = tempfile.mkdtemp(prefix="uvr-sr-")  # short: Ray's socket paths must stay under 107 bytes
    env.update(ray_env, RAY_TMPDIR=ray_tmp)
    serve_bin = Path(sys.executable).with_name("serve")
    proc = subprocess.Popen([str(serve_bin), "run", str(tmp_path / "local.yaml")], cwd=ROOT, env=env,
                            stdout=(tmp_path / "serve.log").open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or the app still deploying
                pass
            time.sleep(1)
        else:
            pytest.fail("serve run did not answer /healthz:\n" + (tmp_path / "serve.log").read_text()[-3000:])
        reply = requests.post(f"{base}/score", json={"uri": str(clip)}, timeout=60)
        assert reply.status_code == 200, reply.text
        assert len(reply.json()["scores"]) == 5
        bad = requests.post(f"{base}/score", json={"uri": str(tmp_path / "nope.mp4")}, timeout=60)
        assert (bad.status_code, bad.json()["error_kind"]) == (404, "not_found")
    finally:
        _stop(proc)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    """Ctrl-C to the process group of our ``serve run`` (it shuts Serve and its Ray down), then kill."""
    for sig, wait_s in ((signal.SIGINT, 60), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
