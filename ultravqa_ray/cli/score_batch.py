"""``ultravqa-ray score-batch``: score a Kafka offset range, a manifest or a bucket prefix on Ray Data."""

from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "score-batch",
        aliases=["score_batch"],  # the module name, which the CLI tests and COMMANDS use
        help="batch-score an uploads offset range, a manifest or an object-store prefix on Ray",
        description=(
            "Decode sampled frames in Ray Data CPU tasks, score them in an actor pool holding the model "
            "(GPU when present) and write score events (key = video_id) and dead letters to Kafka and/or "
            "one Parquet row per input. Every input ends as a score or a dead letter; re-running the same "
            "range writes the same keys. Prints the summary as JSON on stdout."
        ),
    )
    p.add_argument(
        "--config", type=Path, help="YAML with ScoreBatchConfig fields (see jobs/configs/score_batch.yaml)"
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set input.kind=prefix --set input.prefix=s3://b/p/ (repeatable)")  # fmt: skip
    p.set_defaults(func=run)


def run(args) -> int:
    from ultravqa_ray.cli._config import result_stdout
    from ultravqa_ray.pipelines.score_batch import run_score_batch
    from ultravqa_ray.pipelines.score_batch_config import ScoreBatchConfig

    out = result_stdout()
    summary = run_score_batch(ScoreBatchConfig.load(args.config, args.overrides))
    print(json.dumps(summary.to_dict(), indent=2), file=out, flush=True)
    return 0
