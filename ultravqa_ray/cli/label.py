"""``ultravqa-ray label``: human ratings in — Label Studio push/pull, imports, rater quality control.

Subcommands: ``install`` and ``server`` (Label Studio in its own environment, for development),
``push`` (videos -> rating tasks), ``pull`` (ratings -> manifest), ``import`` (another tool's
long-format CSV / JSON Lines -> manifest), ``report`` (rater quality control, JSON + HTML).
``label select`` (which uploads to send for rating) registers itself here when its module exists.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import random
import signal
import sys
import time
from pathlib import Path

from ultravqa_ray.cli._config import add_config_arguments, load_config

_SHORTCUTS = (
    ("--url", "studio.url", "Label Studio base URL"),
    ("--project", "studio.project", "Label Studio project title"),
    ("--raters", "raters_per_video", "ratings collected per video"),
)
_VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


def register(sub) -> None:
    label = sub.add_parser(
        "label",
        help="human ratings: Label Studio push/pull, imports, rater quality control",
        description="Send videos to raters in Label Studio, pull their ratings into an annotation manifest, "
        "import ratings from any tool, and check the raters (agreement, bias, gold, P.910 subject model).",
    )
    actions = label.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = actions.add_parser("install", help="install Label Studio into its own cached environment",
                           description="Create ~/.cache/ultravqa-ray/label-studio-<version> (once) with the pinned Label Studio.")  # fmt: skip
    p.set_defaults(func=run_install)

    p = actions.add_parser("server", help="run Label Studio locally (development)",
                           description="Install if needed, start Label Studio on 127.0.0.1, create the owner account "
                           "(and --rater accounts), print {url, email, token} as JSON and run until Ctrl-C. "
                           "Export the token as LABEL_STUDIO_API_KEY for push and pull.")  # fmt: skip
    p.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    p.add_argument(
        "--data",
        type=Path,
        default=Path("label-studio-data"),
        help="data folder (default ./label-studio-data)",
    )
    p.add_argument("--email", default="owner@example.com", help="owner account e-mail")
    p.add_argument("--password", default="ultravqa-owner", help="owner account password (development only)")
    p.add_argument("--files-root", default="/", help="document root of the local-files route (default /)")
    p.add_argument(
        "--timeout", type=float, default=600, help="seconds to wait for the first answer (default 600)"
    )
    p.add_argument(
        "--rater",
        action="append",
        default=[],
        metavar="EMAIL:PASSWORD",
        help="create a rater account (repeatable)",
    )
    p.set_defaults(func=run_server)

    p = actions.add_parser("push", help="create/update the project and import rating tasks",
                           description="Create or update the Label Studio project (interface generated from the label config, "
                           "raters per video) and import one task per video it does not have yet.")  # fmt: skip
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", type=Path, help="annotation manifest (.jsonl/.parquet) of the videos")
    src.add_argument(
        "--uploads",
        type=Path,
        help="JSON Lines list of selected uploads (video_id, uri), e.g. from 'label select'",
    )
    src.add_argument("--prefix", help="every video under a local folder or s3:// prefix")
    p.add_argument("--gold", type=Path, help="manifest of gold videos (known answers) to mix in")
    p.add_argument("--gold-rate", type=float, default=0.1, help="gold tasks per video pushed (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the gold sample")
    add_config_arguments(p, "LabelConfig", _SHORTCUTS, example="label.yaml")
    p.set_defaults(func=run_push)

    p = actions.add_parser("pull", help="export ratings and add complete videos to a manifest",
                           description="Export every submitted rating, keep them in OUT's .ratings.jsonl, and add the videos "
                           "with enough raters to the manifest OUT (a second pull adds only new videos).")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="manifest to add to (.jsonl or .parquet)")
    _qc_arguments(p)
    p.set_defaults(func=run_pull)

    p = actions.add_parser("import", help="import long-format ratings (CSV / JSON Lines) into a manifest",
                           description="Read one rating a row (video_id, rater, dimension, score, sub_attributes, comment, uri); "
                           "bad rows are listed with their line numbers and nothing is written.")  # fmt: skip
    p.add_argument("ratings", type=Path, help="ratings file (.csv or .jsonl)")
    p.add_argument("--out", type=Path, required=True, help="manifest to add to (.jsonl or .parquet)")
    p.add_argument(
        "--videos", type=Path, help="manifest or uploads list giving each video's uri (if the rows have none)"
    )
    _qc_arguments(p)
    p.set_defaults(func=run_import)

    p = actions.add_parser("report", help="rater quality control: JSON + HTML with plots",
                           description="Agreement (Krippendorff's alpha), each rater's bias and correlation against the "
                           "leave-one-out consensus, gold accuracy and the P.910 / SUREAL subject model.")  # fmt: skip
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--ratings", type=Path, help="long-format ratings (.csv/.jsonl, e.g. the .ratings.jsonl pull writes)"
    )
    src.add_argument("--from-studio", action="store_true", help="read the ratings from Label Studio")
    p.add_argument("--out", type=Path, required=True, help="report folder (quality.json, index.html, plots/)")
    p.add_argument("--gold", type=Path, help="manifest of gold videos (known answers)")
    add_config_arguments(p, "LabelConfig", _SHORTCUTS, example="label.yaml")
    p.set_defaults(func=run_report)

    if importlib.util.find_spec("ultravqa_ray.cli.label_select") is not None:
        importlib.import_module("ultravqa_ray.cli.label_select").register(actions)


def _qc_arguments(p) -> None:
    p.add_argument("--gold", type=Path, help="manifest of gold videos (known answers): scored, never written")
    p.add_argument(
        "--drop-flagged", action="store_true", help="drop the ratings of raters quality control marks"
    )
    add_config_arguments(p, "LabelConfig", _SHORTCUTS, example="label.yaml")


def _config(args):
    from ultravqa_ray.labels.config import LabelConfig

    return load_config(LabelConfig, args, _SHORTCUTS)


def _gold(args, config):
    from ultravqa_ray.labels.quality import gold_answers
    from ultravqa_ray.schemas.manifest import read_manifest

    if not getattr(args, "gold", None):
        return {}
    return gold_answers(read_manifest(args.gold, k=config.k), config.dimension_names())


def run_install(args) -> int:
    from ultravqa_ray.labels import server

    started = time.monotonic()
    path = server.install(quiet=False)
    print(json.dumps({"label_studio": str(path), "seconds": round(time.monotonic() - started, 1)}))
    return 0


def run_server(args) -> int:
    from ultravqa_ray.labels import server
    from ultravqa_ray.labels.studio import WebSession

    raters = []
    for item in args.rater:
        email, sep, password = item.partition(":")
        if not sep or not email or not password:
            raise ValueError(f"--rater {item!r}: expected EMAIL:PASSWORD")
        raters.append((email, password))
    server.install()
    proc = server.LabelStudioProcess(args.data.resolve(), args.port, username=args.email, password=args.password,
                                     files_root=args.files_root)  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: proc.send_signal())  # never wait inside the handler: main waits
    started = time.monotonic()
    proc.start(timeout_s=args.timeout)
    try:
        for email, password in raters:
            WebSession(proc.url).signup(email, password)
        token = _owner_token(proc, args)
        print(
            f"Label Studio ready at {proc.url} after {time.monotonic() - started:.0f} s (Ctrl-C to stop)",
            file=sys.stderr,
        )
        print(json.dumps({"url": proc.url, "email": args.email, "token": token}), flush=True)
        status = proc.wait()
    finally:
        proc.stop()
    return 0 if status in (0, -signal.SIGTERM) else status


def _owner_token(proc, args) -> str:
    """The owner's personal access token: created on the first start, kept in DATA/owner-token (mode 600)."""
    from ultravqa_ray.labels.studio import LabelStudio

    path = proc.data_dir / "owner-token"
    if path.exists():
        return path.read_text().strip()
    token = LabelStudio.login(proc.url, args.email, args.password).create_token()
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token


def run_push(args) -> int:
    from connectors.listing import ManifestEntry, list_prefix, read_manifest_entries
    from ultravqa_ray.labels.studio import LabelStudio, push

    config = _config(args)
    if args.prefix:
        entries = list_prefix(
            args.prefix, s3_endpoint_override=config.s3_endpoint_override, suffixes=_VIDEO_SUFFIXES
        )
    else:
        entries = read_manifest_entries(args.manifest or args.uploads)
    if not entries:
        raise ValueError("no videos to push")
    gold: list[ManifestEntry] = []
    if args.gold:
        if not 0 <= args.gold_rate <= 1:
            raise ValueError(f"--gold-rate {args.gold_rate} must lie in 0..1")
        pool = read_manifest_entries(args.gold)
        n = min(len(pool), math.ceil(args.gold_rate * len(entries)))
        gold = random.Random(args.seed).sample(pool, n)
    result = push(LabelStudio.from_config(config), config, entries, gold)
    print(json.dumps(result.to_json()))
    return 0


def run_pull(args) -> int:
    from ultravqa_ray.labels.collect import collect
    from ultravqa_ray.labels.studio import LabelStudio, pulled_ratings

    config = _config(args)
    ratings, gold_ids = pulled_ratings(LabelStudio.from_config(config), config)
    result, _ = collect(ratings, config, args.out, gold=_gold(args, config), gold_ids=sorted(gold_ids),
                        drop_flagged=args.drop_flagged or None)  # fmt: skip
    print(json.dumps(result.to_json()))
    return 0


def run_import(args) -> int:
    from connectors.listing import read_manifest_entries
    from ultravqa_ray.labels.collect import collect
    from ultravqa_ray.labels.importer import read_ratings

    config = _config(args)
    ratings = read_ratings(args.ratings, k=config.k, dimensions=config.dimension_names())
    uris = {e.video_id: e.uri for e in read_manifest_entries(args.videos)} if args.videos else {}
    result, _ = collect(ratings, config, args.out, uris=uris, gold=_gold(args, config),
                        drop_flagged=args.drop_flagged or None)  # fmt: skip
    print(json.dumps(result.to_json()))
    return 0


def run_report(args) -> int:
    from ultravqa_ray.labels.importer import read_ratings
    from ultravqa_ray.labels.quality import quality_report
    from ultravqa_ray.labels.report import write_quality_report
    from ultravqa_ray.labels.studio import LabelStudio, pulled_ratings

    config = _config(args)
    if args.from_studio:
        ratings, _ = pulled_ratings(LabelStudio.from_config(config), config)
    else:
        ratings = read_ratings(args.ratings, k=config.k, dimensions=config.dimension_names())
    if not ratings:
        raise ValueError("no ratings to report on")
    report = quality_report(ratings, k=config.k, dimensions=config.dimension_names(),
                            thresholds=config.thresholds, gold=_gold(args, config))  # fmt: skip
    files = write_quality_report(report, ratings, args.out)
    summary = {
        "index_html": str(files["index_html"]),
        "quality_json": str(files["quality_json"]),
        "alpha": {d.value: q.alpha for d, q in report.per_dimension.items()},
        "flagged": {r.rater: r.reasons for r in report.raters if r.flagged},
    }
    print(json.dumps(summary, default=lambda x: None))
    return 0
