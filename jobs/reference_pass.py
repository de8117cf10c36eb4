"""The reference pass: ``python jobs/reference_pass.py --config jobs/configs/reference.yaml [--set ...]``.

Scores the training set once with the frozen SFT model (Ray Data actor pool) and writes pi_ref
(K floats per video and dimension) beside the data. Same function as ``ultravqa-ray reference``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ultravqa_ray.train.config import ReferenceConfig
from ultravqa_ray.train.reference import ReferenceResult, reference_pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, help="YAML with ReferenceConfig fields")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set actors=2 (repeatable)")  # fmt: skip
    return p


def main(config: ReferenceConfig) -> ReferenceResult:
    return reference_pass(config)


if __name__ == "__main__":
    args = build_parser().parse_args()
    print(main(ReferenceConfig.load(args.config, args.overrides)).path)
