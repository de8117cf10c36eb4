"""Clean lifecycles of the long-running commands: the broker stops on SIGTERM and SIGINT within
seconds, services check their topics at start, and the --help examples are real fields."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest
import yaml

from connectors.kafka.broker import free_port
from tests.fixtures.processes import alive, children

CLI = [sys.executable, "-m", "ultravqa_ray.cli"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_broker_command_ends_on_signal_within_seconds(sig):
    port = free_port()
    proc = subprocess.Popen([*CLI, "broker", "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        line = ""
        while "broker ready" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert "broker ready" in line, line
        tansu = children(proc.pid)
        assert tansu, "no tansu child process"
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        time.sleep(0.2)
        assert not [pid for pid in tansu if alive(pid)], "tansu left running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_moderate_fails_in_one_line_naming_a_missing_topic(kafka_settings, tmp_path):
    missing = f"nope-{uuid.uuid4().hex[:8]}"
    config = {"topics": {"scores": missing}, "create_topics": False}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(config))
    rules = tmp_path / "rules.yaml"
    rules.write_text("default_action: allow\nrules: []\n")
    env = dict(os.environ, ULTRAVQA_KAFKA_BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers)
    done = subprocess.run([*CLI, "moderate", "--rules", str(rules), "--config", str(tmp_path / "m.yaml")],
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1 and done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ultravqa-ray moderate:") and missing in last, done.stderr[-2000:]


def test_stream_without_a_named_ray_cluster_fails_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["HOME"] = str(tmp_path)  # nothing may be written under the user's home
    done = subprocess.run([*CLI, "stream"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "ray_address" in done.stderr.strip().splitlines()[-1] and "RAY_ADDRESS" in done.stderr
    assert not (tmp_path / ".ray").exists() and "Started a local Ray instance" not in done.stderr


@pytest.mark.parametrize(
    ("command", "config_class"),
    [("stream", "ultravqa_ray.pipelines.stream:StreamConfig"),
     ("moderate", "ultravqa_ray.pipelines.moderation:ModerationConfig")],
)  # fmt: skip
def test_help_example_override_is_a_field_of_the_commands_config(command, config_class):
    import importlib

    from ultravqa_ray.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    text = sub.format_help()
    (example,) = re.findall(r"e\.g\. --set\s+(\S+=\S+)", " ".join(text.split()))
    module, name = config_class.split(":")
    cls = getattr(importlib.import_module(module), name)
    cls.load(None, [example])  # raises on an unknown field
