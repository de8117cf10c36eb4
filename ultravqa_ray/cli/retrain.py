"""``ultravqa-ray retrain``: the resumable retraining job (manifests -> SFT -> pi_ref -> ASO -> eval -> gate)."""

from __future__ import annotations

import json
import sys

from ultravqa_ray.cli._config import add_config_arguments, load_config, result_stdout

_SHORTCUTS = (("--work-dir", "work_dir", "step outputs and the step log (steps.jsonl)"),)


def register(sub) -> None:
    p = sub.add_parser(
        "retrain",
        help="one resumable retraining job: SFT, reference pass, ASO, evaluation, promotion gate",
        description="Run each step whose content-hashed inputs have no finished output in WORK_DIR "
        "(steps.jsonl says which ran and which were skipped), so a job killed and submitted again "
        "continues where it stopped. Prints the outputs as JSON; exit status 3 when the gate refuses.",
    )
    add_config_arguments(p, "RetrainConfig", _SHORTCUTS, example="jobs/configs/retrain.yaml",
                         set_example="sft.epochs=2")  # fmt: skip
    p.set_defaults(func=run)


def run(args) -> int:
    from ultravqa_ray.cli.promote import REFUSED
    from ultravqa_ray.train.retrain import RetrainConfig, retrain

    out = result_stdout()
    result = retrain(load_config(RetrainConfig, args, _SHORTCUTS))
    print(f"retrain: ran {result.ran or 'nothing'}, skipped {result.skipped or 'nothing'}", file=sys.stderr)
    print(json.dumps({"outputs": result.outputs, "accepted": result.accepted}), file=out, flush=True)
    return REFUSED if result.accepted is False else 0
