"""ASO (or the GRPO baseline) on Ray Train, from the SFT model and the stored pi_ref.

    python jobs/train_aso.py --config jobs/configs/aso.yaml [--objective grpo] [--set key=value ...]

Same plumbing as SFT (one loop, the objective is a strategy); same function as
``ultravqa-ray train aso|grpo``. Prints the final model folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ultravqa_ray.train.config import TrainConfig
from ultravqa_ray.train.trainer import TrainResult, fit


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, help="YAML with TrainConfig fields")
    p.add_argument("--objective", choices=("aso", "grpo"), default="aso", help="aso (default) or grpo")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set aso.beta=0.05 (repeatable)")  # fmt: skip
    return p


def main(config: TrainConfig) -> TrainResult:
    return fit(config)


if __name__ == "__main__":
    args = build_parser().parse_args()
    result = main(TrainConfig.load(args.config, [*args.overrides, f"objective={args.objective}"]))
    print(result.model_dir)
