"""Evaluation: ``python jobs/evaluate.py --config jobs/configs/eval.yaml [--set key=value ...]``.

A manifest (``--set manifest=...``) or a MOS CSV (``--set mos_csv=... --set video_dir=...``) in,
``OUT/metrics.json``, ``OUT/index.html`` and ``OUT/plots/`` out. Same function as ``ultravqa-ray eval``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ultravqa_ray.train.config import EvalConfig
from ultravqa_ray.train.evaluate import EvalOutcome, evaluate


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, help="YAML with EvalConfig fields")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set out=runs/eval (repeatable)")  # fmt: skip
    return p


def main(config: EvalConfig) -> EvalOutcome:
    return evaluate(config)


if __name__ == "__main__":
    args = build_parser().parse_args()
    print(main(EvalConfig.load(args.config, args.overrides)).metrics_json)
