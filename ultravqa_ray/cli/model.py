"""``ultravqa-ray model``: ``model init`` builds an offline tiny model; ``model default`` finds or
trains the demo's default model."""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("model", help="model utilities (tiny models, the default model)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init",
        help="build a tiny random-weight model of a real class, loadable with from_pretrained",
        description=(
            "Write a small random-weight model of the real transformers class (Qwen2-VL, Qwen2.5-VL "
            "or Qwen3-VL) with a locally trained byte-level BPE tokenizer in which every score "
            "string 1..K is one token, a ChatML chat template and the preprocessor config. No "
            "download; deterministic for a seed. For tests, demos and benchmarks."
        ),
    )
    from ultravqa_ray.model.families import FAMILIES

    init.add_argument("--arch", required=True, choices=sorted(FAMILIES), help="model family")
    init.add_argument("--out", required=True, type=Path, help="output folder")
    init.add_argument("--k", type=int, default=5, help="score levels 1..K (default 5)")
    init.add_argument("--hidden", type=int, default=64, help="LLM hidden size (default 64)")
    init.add_argument("--layers", type=int, default=2, help="LLM layers (default 2)")
    init.add_argument("--heads", type=int, default=4, help="LLM attention heads (default 4)")
    init.add_argument("--vision-hidden", type=int, default=32, help="vision tower width (default 32)")
    init.add_argument("--vision-layers", type=int, default=2, help="vision tower depth (default 2)")
    init.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    init.set_defaults(func=run_init)

    default = actions.add_parser(
        "default",
        help="print the default model's folder; --out DIR trains its recipe into DIR",
        description=(
            "Without --out: print the folder of the default model the demo scores with (the checkpoint "
            "shipped in the package when its recipe stamp matches the code, else a cached or freshly "
            "trained one under --cache-dir). With --out DIR: run the recipe now (synthetic corpus, SFT, "
            "reference pass, ASO, held-out evaluation on a local Ray) and write the model, recipe.json, "
            "metrics.json and the evaluation reports to DIR (the model folder's scoring_config.json holds "
            "its decode settings). "
            "`--out ultravqa_ray/assets/default-model` reproduces the shipped checkpoint."
        ),
    )
    default.add_argument("--out", type=Path, help="train the recipe into this folder (replaces its model)")
    default.add_argument("--recipe", default="default", choices=["default", "rationale"],
                         help="with --out: the recipe to run (default: the shipped model's; rationale: the next "
                              "one, issue 19)")  # fmt: skip
    default.add_argument("--cache-dir", type=Path, default=Path("~/.cache/ultravqa-ray").expanduser(),
                         help="where a model trained without --out is cached (default ~/.cache/ultravqa-ray)")  # fmt: skip
    default.set_defaults(func=run_default)


def run_init(args) -> int:
    from ultravqa_ray.cli import CommandError
    from ultravqa_ray.model.tiny import build_tiny_model

    if args.k < 2:
        raise CommandError(f"--k must be at least 2, got {args.k}")
    out = build_tiny_model(
        args.arch,
        args.out,
        k=args.k,
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=args.heads,
        vision_hidden_size=args.vision_hidden,
        vision_layers=args.vision_layers,
        seed=args.seed,
    )
    size = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    print(
        f"wrote a tiny {args.arch} model (K={args.k}, {size / 1e6:.1f} MB of weights) to {out}",
        file=sys.stderr,
    )
    return 0


def run_default(args) -> int:
    import logging

    from ultravqa_ray.cli import CommandError
    from ultravqa_ray.train.default_model import RECIPES, ensure_default_model

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.recipe != "default" and args.out is None:
        raise CommandError("--recipe needs --out: only a model trained now can follow another recipe")
    if args.out is not None:
        folder = ensure_default_model(args.out, retrain=True, recipe=RECIPES[args.recipe])
    else:
        folder = ensure_default_model(args.cache_dir / "default-model")
    print(folder)
    return 0
