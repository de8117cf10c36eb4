"""The console script: --help everywhere, synth end to end, one-line reasons on failure."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ultravqa_ray.cli import COMMANDS, main
from ultravqa_ray.schemas import read_manifest


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ultravqa_ray.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_command():
    out = _run("--help")
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: ultravqa-ray" in capsys.readouterr().out


def test_synth_writes_a_corpus_and_reports_agreement(tmp_path):
    out = _run("synth", "--out", str(tmp_path / "c"), "--n", "6", "--seed", "3", "--set", "workers=1")
    assert out.returncode == 0, out.stderr
    records = read_manifest(tmp_path / "c" / "manifest.jsonl")
    assert len(records) == 6
    assert all((tmp_path / "c" / r.uri).is_file() for r in records)
    assert "Krippendorff" in out.stderr


def test_bad_override_fails_with_one_line_reason(tmp_path):
    out = _run("synth", "--out", str(tmp_path), "--n", "2", "--set", "no_such_field=1")
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0
    assert "no_such_field" in out.stderr


def test_root_cause_unwraps_ray_style_wrappers():
    from ultravqa_ray.cli import root_cause

    class WorkerGroupFailed(RuntimeError):  # shaped like Ray Train's: failures per rank
        def __init__(self, failures):
            super().__init__("Training failed due to worker errors:\n<tracebacks>")
            self.worker_failures = failures

    class TaskError(RuntimeError):  # shaped like ray.exceptions.RayTaskError: the user error in .cause
        def __init__(self, cause):
            super().__init__("ray::RayTrainWorker.run() (pid=1)\n<traceback>")
            self.cause = cause

    missing = OSError("models/init is not a local folder and not a hub model")
    wrapped = WorkerGroupFailed({1: ValueError("rank 1"), 0: TaskError(missing)})
    assert root_cause(wrapped) is missing
    try:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise RuntimeError("outer") from exc
    except RuntimeError as outer:
        assert isinstance(root_cause(outer), KeyError)
    plain = RuntimeError("x")
    assert root_cause(plain) is plain
