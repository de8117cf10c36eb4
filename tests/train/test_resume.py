"""Fault tolerance: a worker that dies mid-epoch (``os._exit``) is replaced and the run resumes from
the last checkpoint (FailureConfig); a re-submitted run with the same name continues from its latest
checkpoint instead of starting over."""

from __future__ import annotations

import json

from tests.train.conftest import DECODE
from ultravqa_ray.model import ModelConfig
from ultravqa_ray.train.config import DataConfig, FaultConfig, TrainConfig
from ultravqa_ray.train.loop import FAULT_MARKER
from ultravqa_ray.train.session import STEPS_FILE


def _steps(run_dir) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / STEPS_FILE).read_text().splitlines()]


def test_worker_death_mid_epoch_resumes_from_checkpoint_and_resubmission_continues(
    ray_local, train_corpus, tiny_model, tmp_path
):
    from ultravqa_ray.train.trainer import fit

    config = TrainConfig(
        objective="sft", model=ModelConfig(name_or_path=str(tiny_model)),
        data=DataConfig(manifest=str(train_corpus), decode=DECODE, cache_dir=str(tmp_path / "cache")),
        output_dir=str(tmp_path / "runs"), run_name="faulty", workers=2, cpus_per_worker=0.5,
        batch_size=1, epochs=2, lr=1e-3, log_every=1, max_failures=1,
        fault=FaultConfig(exit_at_step=6, rank=1),
    )  # fmt: skip
    # 8 decodable videos / 2 workers / 1 video a step = 4 steps an epoch; rank 1 dies after step 6
    result = fit(config)
    run_dir = config.run_dir
    assert json.loads((run_dir / FAULT_MARKER).read_text()) == {"step": 6, "rank": 1}
    state = json.loads((tmp_path / "runs" / "faulty").joinpath(result.checkpoint.split("/")[-1], "train_state.json").read_text())
    assert (state["epoch"], state["step"]) == (2, 8)
    steps = _steps(run_dir)
    assert steps.count(1) == 1, "the restart must not start from scratch"
    assert steps.count(5) == 2 and steps[-1] == 8, f"epoch 2 is replayed from the epoch-1 checkpoint: {steps}"

    more = fit(config.model_copy(update={"epochs": 3, "fault": FaultConfig()}))
    state = json.loads((tmp_path / "runs" / "faulty").joinpath(more.checkpoint.split("/")[-1], "train_state.json").read_text())
    assert (state["epoch"], state["step"]) == (3, 12)
    assert _steps(run_dir).count(1) == 1 and _steps(run_dir)[-1] == 12
