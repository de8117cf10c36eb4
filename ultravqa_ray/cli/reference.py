"""``ultravqa-ray reference``: the pi_ref pass with the frozen SFT model (before ``train aso``)."""

from __future__ import annotations

import sys

from ultravqa_ray.cli._config import add_config_arguments, load_config, result_stdout

_SHORTCUTS = (
    ("--model", "model.name_or_path", "the SFT model folder"),
    ("--manifest", "data.manifest", "training manifest"),
    ("--output", "output", "pi_ref Parquet file (default: beside the manifest)"),
)


def register(sub) -> None:
    p = sub.add_parser(
        "reference",
        help="write pi_ref (K floats per video and dimension) with the frozen SFT model",
        description="Score the training set once with the frozen SFT model in a Ray Data actor pool and "
        "store pi_ref beside the data, so that ASO never runs the reference model in its loop.",
    )
    add_config_arguments(p, "ReferenceConfig", _SHORTCUTS)
    p.set_defaults(func=run)


def run(args) -> int:
    from ultravqa_ray.train.config import ReferenceConfig
    from ultravqa_ray.train.reference import reference_pass

    out = result_stdout()
    config = load_config(ReferenceConfig, args, _SHORTCUTS)
    result = reference_pass(config)
    print(result.ingest.summary(), file=sys.stderr)
    print(result.path, file=out, flush=True)
    return 0
