"""``ultravqa-ray score``: score local paths or URIs, one JSON line per input."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "score",
        help="score videos (paths or URIs) on the quality dimensions, JSON Lines out",
        description=(
            "Decode each input, score it on every dimension with the model (all dimensions in one "
            "pass) and write one JSON line per input: a score event, or {uri, error_kind, error} for "
            "an input that could not be decoded. Exit 0 when every input was handled, even if some "
            "were bad; non-zero only when the run cannot proceed (no model, bad arguments)."
        ),
    )
    p.add_argument(
        "inputs", nargs="+", metavar="PATH_OR_URI", help="local paths, file://, s3:// or gs:// URIs"
    )
    p.add_argument(
        "--model", default=None,
        help="model folder (its scoring_config.json gives the decode settings, K and prompt) or hub name; "
        "default: the shipped default model",
    )
    p.add_argument("--out", type=Path, help="write the JSON lines here (default: stdout)")
    p.add_argument("--model-config", type=Path, help="YAML file with ModelConfig fields")
    p.add_argument("--decode-config", type=Path,
                   help="YAML file with DecodeConfig fields (default: the model folder's, else DecodeConfig defaults)")
    p.add_argument("--rationale", action="store_true", help="also generate the written rationale (slower)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a ModelConfig field (k=10, device=cpu, prompt.question='...') or, "
                        "prefixed with 'decode.', a DecodeConfig field (decode.num_frames=16); repeatable")  # fmt: skip
    p.set_defaults(func=run)


def run(args) -> int:
    from pydantic import ValidationError

    from ultravqa_ray.cli import CommandError
    from ultravqa_ray.model import ModelConfig, ScorerModel
    from ultravqa_ray.model.folder import folder_decode_config
    from ultravqa_ray.pipelines.score_files import score_inputs
    from ultravqa_ray.video import DecodeConfig

    if args.model is None:
        args.model = str(_default_model())
    decode_overrides = [o.removeprefix("decode.") for o in args.overrides if o.startswith("decode.")]
    model_overrides = [o for o in args.overrides if not o.startswith("decode.")]
    try:
        model_config = ModelConfig.load(args.model_config, [f"name_or_path={args.model}", *model_overrides])
        if args.decode_config:
            decode_config = DecodeConfig.load(args.decode_config, decode_overrides)
        else:  # what the model was trained with, then the --set decode.* overrides
            decode_config = folder_decode_config(args.model).override(decode_overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
        raise CommandError(f"bad {exc.title} settings: {problems}") from exc
    except ValueError as exc:  # an override that does not apply, an unreadable scoring_config.json
        raise CommandError(str(exc).splitlines()[0]) from exc
    local = Path(args.model).expanduser()
    if "://" not in args.model and not local.exists() and (args.model.startswith((".", "/", "~")) or args.model.count("/") != 1):
        raise CommandError(
            f"model folder {args.model} does not exist (build one with 'ultravqa-ray model init')"
        )
    scorer = ScorerModel(model_config)
    try:
        scorer.setup()
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CommandError(f"cannot load model {args.model}: {reason}") from exc
    with open(args.out, "w", encoding="utf-8") if args.out else nullcontext(sys.stdout) as out:
        summary = score_inputs(args.inputs, scorer, decode_config, out, want_rationale=args.rationale)
    print(f"scored {summary.scored} of {summary.inputs} inputs ({summary.failed} failed) in "
          f"{summary.seconds:.1f}s", file=sys.stderr)  # fmt: skip
    return 0


def _default_model():
    """The shipped (or cached) default model's folder; never trains (that is 'ultravqa-ray model default')."""
    from ultravqa_ray.cli import CommandError
    from ultravqa_ray.serve.config import DEFAULT_CACHE
    from ultravqa_ray.train.default_model import ensure_default_model

    try:
        return ensure_default_model(DEFAULT_CACHE / "default-model", train=False, log=lambda _: None)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from exc
