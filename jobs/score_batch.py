"""Score a range of upload events, a manifest or a bucket prefix on Ray Data.

    python jobs/score_batch.py --config jobs/configs/score_batch.yaml --set input.kafka.end=latest
    ray job submit -- python jobs/score_batch.py --config ... --set input.kind=prefix --set input.prefix=s3://b/p/

The same function as ``ultravqa-ray score-batch``; prints the run summary as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ultravqa_ray.pipelines.score_batch import BatchSummary, run_score_batch
from ultravqa_ray.pipelines.score_batch_config import ScoreBatchConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, help="YAML with ScoreBatchConfig fields")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set input.kafka.start=100 (repeatable)")  # fmt: skip
    return p


def main(config: ScoreBatchConfig) -> BatchSummary:
    return run_score_batch(config)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args()
    summary = main(ScoreBatchConfig.load(args.config, args.overrides))
    print(json.dumps(summary.to_dict(), indent=2), file=sys.stdout)
