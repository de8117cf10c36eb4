"""A training run that starves its data pipeline (test_resources.py runs it in a process of its own,
with a 2-CPU Ray, so that the stalled workers die with it and never hold the test session's Ray).

``python _starved_run.py MANIFEST MODEL OUT``: exit 3 and ``STALL <message>`` on stdout when the
watchdog fails the run, 0 if the run (wrongly) completes.
"""

from __future__ import annotations

import sys

import ray

from ultravqa_ray.train.config import TrainConfig
from ultravqa_ray.train.data import build_dataset
from ultravqa_ray.train.trainer import fit
from ultravqa_ray.train.watchdog import StallError


def main(manifest: str, model: str, out: str) -> int:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    config = TrainConfig(
        model={"name_or_path": model}, output_dir=out, run_name="starved", workers=2, cpus_per_worker=1.0,
        data={"manifest": manifest, "decode": {"num_frames": 4, "height": 56, "width": 56, "threads": 1}},
        data_cpus=0.0, stall_timeout_s=120, max_failures=0, epochs=1,
    )  # fmt: skip
    build_dataset(config.data)  # decode now: the run under test starts from a complete frame cache
    try:
        fit(config)
    except StallError as exc:
        print(f"STALL {exc}", flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
