"""``ultravqa-ray eval``: metrics JSON and a plot report for a manifest or a MOS CSV."""

from __future__ import annotations

import sys

from ultravqa_ray.cli._config import add_config_arguments, load_config, result_stdout

_SHORTCUTS = (
    ("--model", "model.name_or_path", "model folder"),
    ("--manifest", "manifest", "annotation manifest"),
    ("--mos-csv", "mos_csv", "MOS CSV (KoNViD-1k / LSVQ style) instead of a manifest"),
    ("--video-dir", "video_dir", "folder of the MOS CSV's videos"),
    ("--out", "out", "output folder (metrics.json, index.html, plots/)"),
    ("--rationales", "rationales", "also generate rationales for the first N videos: sub-attribute precision/recall "
     "and band contradiction in metrics.json and the report"),
)


def register(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a model on a manifest or MOS CSV: metrics.json + report",
        description="Decode and score every video (Ray Data actor pool), compute acc@0.5, exact, MAE, "
        "SRCC, PLCC, KRCC and calibration per dimension and overall (or the correlations with MOS), "
        "and write OUT/metrics.json, OUT/index.html and OUT/plots/. Bad videos are counted and skipped.",
    )
    add_config_arguments(p, "EvalConfig", _SHORTCUTS)
    p.set_defaults(func=run)


def run(args) -> int:
    from ultravqa_ray.train.config import EvalConfig
    from ultravqa_ray.train.evaluate import evaluate

    out = result_stdout()
    config = load_config(EvalConfig, args, _SHORTCUTS)
    outcome = evaluate(config)
    print(outcome.ingest.summary(), file=sys.stderr)
    print(outcome.metrics_json, file=out, flush=True)
    return 0
