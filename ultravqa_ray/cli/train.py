"""``ultravqa-ray train sft|aso|grpo``: the training jobs on Ray Train (same function as jobs/train_*.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

_SHORTCUTS = (
    ("--model", "model.name_or_path", "starting checkpoint folder (for aso/grpo: the SFT model)"),
    ("--manifest", "data.manifest", "annotation manifest (.jsonl or .parquet)"),
    ("--reference", "data.reference", "pi_ref file from 'ultravqa-ray reference' (aso, grpo)"),
    ("--output-dir", "output_dir", "Ray Train storage path (checkpoints go to OUTPUT_DIR/RUN_NAME)"),
    ("--run-name", "run_name", "run name"),
    ("--workers", "workers", "number of Ray Train workers"),
    ("--epochs", "epochs", "passes over the data"),
)


def add_config_arguments(p, what: str) -> None:
    """``--config FILE``, repeatable ``--set key=value`` and the shortcut flags."""
    p.add_argument("--config", type=Path, help=f"YAML file with {what} fields (e.g. jobs/configs/*.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field with a dotted key, e.g. --set data.decode.num_frames=16 (repeatable)")  # fmt: skip


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
    ):
        p = objectives.add_parser(name, help=text, description=text)
        add_config_arguments(p, "TrainConfig")
        for flag, key, help_text in _SHORTCUTS:
            p.add_argument(flag, dest=key, metavar=key.split(".")[-1].upper(), help=f"{help_text} (sets {key})")
        p.set_defaults(func=run)


def shortcut_overrides(args, keys) -> list[str]:
    return [f"{key}={getattr(args, key)}" for key in keys if getattr(args, key, None) is not None]


def run(args) -> int:
    from ultravqa_ray.train.config import TrainConfig
    from ultravqa_ray.train.trainer import fit

    overrides = [f"objective={args.objective}", *shortcut_overrides(args, [k for _, k, _ in _SHORTCUTS]), *args.overrides]
    result = fit(TrainConfig.load(args.config, overrides))
    print(result.ingest.summary(), file=sys.stderr)
    print(json.dumps({"model_dir": result.model_dir, "metrics": result.metrics}, default=str))
    return 0
