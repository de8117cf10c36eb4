"""``ultravqa-ray demo``: the main job on its embedded defaults (README's first command)."""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="synthetic uploads -> embedded Kafka -> scorer -> score events, printed live",
        description=(
            "Start the embedded broker, synthesise labelled clips, build (or load) a model, publish "
            "upload events (plus a few bad ones), score them through the Kafka scoring loop and print "
            "the score events and dead letters as they arrive, then a summary. Everything is local."
        ),
    )
    p.add_argument("--config", type=Path, help="YAML with DemoConfig fields")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a DemoConfig field, e.g. --set n_clips=32 (repeatable)")  # fmt: skip
    p.set_defaults(func=run)


def run(args) -> int:
    from ultravqa_ray.cli import CommandError
    from ultravqa_ray.pipelines.demo import DemoConfig, run_demo

    summary = run_demo(DemoConfig.load(args.config, args.overrides), sys.stdout)
    if summary["missing"]:
        raise CommandError(f"{summary['missing']} uploads produced no output within the timeout")
    return 0
