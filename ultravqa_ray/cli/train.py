"""``ultravqa-ray train sft|aso|grpo``: the training jobs on Ray Train (same function as jobs/train_*.py)."""

from __future__ import annotations

import json
import sys

from ultravqa_ray.cli._config import add_config_arguments, load_config, result_stdout

_SHORTCUTS = (
    ("--model", "model.name_or_path", "starting checkpoint folder (for aso/grpo: the SFT model)"),
    ("--manifest", "data.manifest", "annotation manifest (.jsonl or .parquet)"),
    ("--reference", "data.reference", "pi_ref file from 'ultravqa-ray reference' (aso)"),
    ("--output-dir", "output_dir", "Ray Train storage path (checkpoints go to OUTPUT_DIR/RUN_NAME)"),
    ("--run-name", "run_name", "run name"),
    ("--workers", "workers", "number of Ray Train workers"),
    ("--epochs", "epochs", "passes over the data"),
)


def register(sub) -> None:
    train = sub.add_parser(
        "train",
        help="train on Ray Train: SFT, ASO or the GRPO baseline",
        description="Run a training job on the Ray cluster of RAY_ADDRESS (or a local Ray): decoded-frame "
        "cache, TorchTrainer workers (DDP or FSDP2), a Hugging Face checkpoint every epoch, resume after "
        "failures and on re-submission. Prints the final model folder.",
    )
    objectives = train.add_subparsers(dest="objective", metavar="OBJECTIVE", required=True)
    for name, text in (
        ("sft", "supervised fine-tuning on '<rationale> Score: N'"),
        ("aso", "analytic score optimisation on the stored pi_ref"),
        ("grpo", "GRPO baseline (sampling) on the same plumbing"),
        ("soft_sft", "baseline: cross-entropy of the score distribution against the raters' distribution"),
        ("expected_score", "baseline: squared error of the expected score against the rater mean"),
    ):
        p = objectives.add_parser(name, help=text, description=text)
        add_config_arguments(p, "TrainConfig", _SHORTCUTS)
        p.set_defaults(func=run)


def run(args) -> int:
    from ultravqa_ray.train.config import TrainConfig
    from ultravqa_ray.train.trainer import fit

    out = result_stdout()
    result = fit(load_config(TrainConfig, args, _SHORTCUTS, first=[f"objective={args.objective}"]))
    print(result.ingest.summary(), file=sys.stderr)
    print(json.dumps({"model_dir": result.model_dir, "metrics": result.metrics}, default=str), file=out, flush=True)
    return 0
