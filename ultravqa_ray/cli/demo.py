"""``ultravqa-ray demo``: the main job on its embedded defaults (README's first command)."""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="synthetic uploads -> embedded Kafka -> Ray Serve scorer -> score events, printed live",
        description=(
            "Start the embedded broker and a local Ray, load the default model (the checkpoint the "
            "project's SFT and ASO jobs produced, shipped in the package), deploy the Scorer on Ray Serve, start "
            "the Kafka bridge, publish synthetic uploads (plus a few bad ones) and print the score "
            "events and dead letters as they arrive, then a summary. Everything is local."
        ),
    )
    p.add_argument("--config", type=Path, help="YAML with DemoConfig fields")
    p.add_argument("--model", help="'default' (trained, cached), 'tiny' (untrained, instant) or a checkpoint folder")
    p.add_argument("--n-clips", type=int, help="synthetic uploads to publish (default 16)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a DemoConfig field, e.g. --set replicas=2 (repeatable)")  # fmt: skip
    p.set_defaults(func=run)


def run(args) -> int:
    from ultravqa_ray.cli import CommandError
    from ultravqa_ray.pipelines.demo import DemoConfig, run_demo

    overrides = list(args.overrides)
    if args.model:
        overrides.append(f"model={args.model}")
    if args.n_clips is not None:
        overrides.append(f"n_clips={args.n_clips}")
    summary = run_demo(DemoConfig.load(args.config, overrides), sys.stdout)
    if summary["missing"]:
        raise CommandError(f"{summary['missing']} uploads produced no output within the timeout")
    return 0
