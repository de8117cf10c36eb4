"""The retraining job: manifests -> SFT -> reference pass -> ASO -> evaluation -> promotion gate.

    python jobs/retrain.py --config jobs/configs/retrain.yaml [--set key=value ...]

Resumable: each step is skipped when its output exists for the same content-hashed inputs
(``work_dir/steps.jsonl``). Same function as ``ultravqa-ray retrain``. Prints the outputs as JSON;
exit status 3 when the gate refuses the candidate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ultravqa_ray.train.retrain import RetrainConfig, RetrainResult, retrain


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, help="YAML with RetrainConfig fields")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set sft.epochs=2 (repeatable)")  # fmt: skip
    return p


def main(config: RetrainConfig) -> RetrainResult:
    return retrain(config)


if __name__ == "__main__":
    args = build_parser().parse_args()
    result = main(RetrainConfig.load(args.config, args.overrides))
    print(json.dumps({"outputs": result.outputs, "accepted": result.accepted}))
    sys.exit(3 if result.accepted is False else 0)
