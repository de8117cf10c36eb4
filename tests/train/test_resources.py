"""Resource planning before a training run starts, and the stall watchdog that ends a run that waits
forever (the 2-worker, 1-CPU-each run on 2 cores whose Ray Data feed never gets a CPU)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from ultravqa_ray.train.config import TrainConfig
from ultravqa_ray.train.resources import ResourceError, plan_resources, wait_and_plan
from ultravqa_ray.train.watchdog import StallError, Watchdog

HERE = Path(__file__).resolve().parent


def _config(**kw) -> TrainConfig:
    return TrainConfig(model={"name_or_path": "m"}, data={"manifest": "/d/m.jsonl"}, **kw)


def test_default_reservation_is_lowered_to_leave_the_data_pipeline_a_cpu():
    plan = plan_resources(_config(workers=2), {"CPU": 2.0})
    assert plan.cpus_per_worker == pytest.approx(0.5)
    assert plan.note is not None and "reserving 0.5 CPU per worker" in plan.note and "\n" not in plan.note
    assert "2 workers x 1 CPU + 1 CPU" in plan.note and "cpus_per_worker" in plan.note


def test_a_run_that_fits_is_left_alone():
    assert plan_resources(_config(workers=2), {"CPU": 4.0}).cpus_per_worker == 1.0
    assert plan_resources(_config(workers=2), {"CPU": 4.0}).note is None
    assert plan_resources(_config(workers=2, cpus_per_worker=0.5), {"CPU": 2.0}).note is None


def test_an_explicit_reservation_that_cannot_fit_is_refused_in_one_line():
    with pytest.raises(ResourceError) as info:
        plan_resources(_config(workers=2, cpus_per_worker=1.0), {"CPU": 2.0})
    text = str(info.value)
    assert "need 3 CPUs, the cluster has 2" in text and "lower cpus_per_worker" in text and "0.5" in text
    assert "\n" not in text


def test_too_many_workers_or_gpus_are_refused():
    with pytest.raises(ResourceError, match="lower workers"):
        plan_resources(_config(workers=40), {"CPU": 2.0})
    with pytest.raises(ResourceError, match="need 2 GPUs, the cluster has 1"):
        plan_resources(_config(workers=2, use_gpu=True), {"CPU": 16.0, "GPU": 1.0})
    assert plan_resources(_config(workers=40, check_resources=False), {"CPU": 2.0}).cpus_per_worker == 1.0


def test_a_cluster_still_growing_is_asked_again_before_a_refusal():
    sizes = iter([{"CPU": 2.0}, {"CPU": 2.0}, {"CPU": 8.0, "GPU": 2.0}])
    plan = wait_and_plan(_config(workers=2, use_gpu=True, resource_wait_s=5), lambda: next(sizes), poll_s=0.01)
    assert plan.cpus_per_worker == 1.0
    with pytest.raises(ResourceError, match="need 2 GPUs"):
        wait_and_plan(_config(workers=2, use_gpu=True, resource_wait_s=0.05), lambda: {"CPU": 2.0}, poll_s=0.01)


def test_watchdog_interrupts_a_stalled_wait_and_names_the_stage():
    with pytest.raises(StallError, match=r"train sft: stage 'waiting for Godot' made no progress for \d+ s"):
        with Watchdog(1.0, "train sft", poll_s=0.1) as dog:
            dog.stage("waiting for Godot")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # a blocking wait; the watchdog interrupts it
                time.sleep(0.05)
    assert time.monotonic() < deadline


def test_watchdog_interrupts_even_where_the_process_ignores_sigint():
    """The interrupt goes through SIGINT's handler; a process (a test session, a host application) may
    have replaced it. Without the watchdog's own handler this waits the full 30 s."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(StallError, match="waiting for Godot"):
            with Watchdog(1.0, "train sft", poll_s=0.1) as dog:
                dog.stage("waiting for Godot")
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    time.sleep(0.05)
        assert time.monotonic() < deadline
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # the process's handler is put back
    finally:
        signal.signal(signal.SIGINT, previous)


def test_watchdog_lets_a_progressing_stage_run():
    ticks = []

    def probe():
        return len(ticks)

    def tick():
        for _ in range(12):
            ticks.append(1)
            time.sleep(0.1)

    worker = threading.Thread(target=tick)
    with Watchdog(0.5, "train sft", poll_s=0.05) as dog:
        dog.stage("decoding", probe=probe)
        worker.start()
        worker.join()
    assert dog.fired is None and len(ticks) == 12


def test_a_starved_run_fails_naming_the_stage_instead_of_hanging(train_corpus, tiny_model, tmp_path, ray_env):
    """Two workers x 1 CPU on a 2-CPU Ray with no data share (the planner told to stand aside):
    the Ray Data feed never runs; the watchdog fails the run and names the data stage. (120 s: long
    enough for the workers to start on a loaded 2-core machine, which beat only once they run.)"""
    with tempfile.TemporaryDirectory(prefix="uvr-ray-") as ray_tmp:  # short: Ray's socket paths have a limit
        env = dict(os.environ, **ray_env) | {"RAY_TMPDIR": ray_tmp}
        proc = subprocess.run(
            [sys.executable, str(HERE / "_starved_run.py"), str(train_corpus), str(tiny_model), str(tmp_path / "runs")],
            env=env, capture_output=True, text=True, timeout=540,
        )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("STALL ")]
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert lines and "stage 'waiting for data (Ray Data train shard, epoch 1)" in lines[0], lines
    assert "stall_timeout_s=120" in lines[0]
