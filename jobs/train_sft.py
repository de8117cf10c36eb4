"""SFT on Ray Train: ``python jobs/train_sft.py --config jobs/configs/sft.yaml [--set key=value ...]``.

Also ``ray job submit --working-dir . -- python jobs/train_sft.py --config ...``; the same function
as ``ultravqa-ray train sft``. Prints the final model folder (a Hugging Face checkpoint).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ultravqa_ray.train.config import TrainConfig
from ultravqa_ray.train.trainer import TrainResult, fit


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, help="YAML with TrainConfig fields")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set workers=2 (repeatable)")  # fmt: skip
    return p


def main(config: TrainConfig) -> TrainResult:
    return fit(config)


if __name__ == "__main__":
    args = build_parser().parse_args()
    result = main(TrainConfig.load(args.config, [*args.overrides, "objective=sft"]))
    print(result.model_dir)
