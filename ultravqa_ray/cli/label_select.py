"""``ultravqa-ray label select``: which uploads to send for rating next (a subcommand of ``label``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(label_sub) -> None:
    """Add ``select`` to the subparsers of the ``label`` group."""
    p = label_sub.add_parser(
        "select",
        help="pick uploads to rate: the scorer's most uncertain, plus a stratified random share",
        description=(
            "Rank scored uploads by the scorer's uncertainty (mean normalised entropy of the per-dimension "
            "score distributions, plus the disagreement between the quality dimensions) and draw a random "
            "share, stratified by predicted band, for unbiased evaluation. Uploads already in a --labelled "
            "manifest are skipped; a video scored twice counts once (newest score event). Writes JSON Lines "
            "(video_id, uri, selected_by, uncertainty, ...) that 'label push' accepts, and prints a summary "
            "as JSON. Scores: a score-batch Parquet file, or kafka:TOPIC[@START..END] (offsets, RFC 3339 "
            "times, earliest/latest; Kafka connection from ULTRAVQA_KAFKA_* variables)."
        ),
    )
    p.add_argument("--scores", required=True, metavar="PARQUET_OR_TOPIC_RANGE",
                   help="score-batch .parquet, or kafka:TOPIC[@START..END], e.g. kafka:vqa.scores@0..5000")  # fmt: skip
    p.add_argument("--budget", type=int, required=True, help="number of uploads to select")
    p.add_argument("--out", type=Path, required=True, help="selection list to write (.jsonl)")
    p.add_argument("--labelled", type=Path, action="append", default=[], metavar="MANIFEST",
                   help="manifest of uploads already labelled or pushed (.jsonl/.parquet with video_id and uri; repeatable)")  # fmt: skip
    p.add_argument("--random-share", type=float, default=0.2, help="share of the budget drawn at random (default 0.2)")
    p.add_argument("--disagreement-weight", type=float, default=0.5,
                   help="weight of the between-dimension disagreement next to the entropy (default 0.5)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the random share (default 0)")
    p.add_argument("--bootstrap-servers", help="Kafka host:port list (default: ULTRAVQA_KAFKA_BOOTSTRAP_SERVERS)")
    p.set_defaults(func=run_select)


def run_select(args) -> int:
    from connectors.kafka import KafkaSettings, Topics
    from ultravqa_ray.curation.select import (
        SelectConfig,
        labelled_ids,
        parse_topic_range,
        read_scores_parquet,
        read_scores_topic,
        select_uploads,
        write_selection,
    )

    config = SelectConfig(
        budget=args.budget,
        random_share=args.random_share,
        disagreement_weight=args.disagreement_weight,
        seed=args.seed,
    )
    if args.out.suffix != ".jsonl":
        raise ValueError(f"--out {args.out}: the selection list must end in .jsonl")
    done = labelled_ids(args.labelled)
    if args.scores.startswith("kafka:"):
        topic, start, end = parse_topic_range(args.scores, Topics().scores)
        overrides = {"bootstrap_servers": args.bootstrap_servers} if args.bootstrap_servers else {}
        uploads, unreadable = read_scores_topic(KafkaSettings.from_env(**overrides), topic, start=start, end=end)
    elif args.scores.endswith(".parquet"):
        uploads, unreadable = read_scores_parquet(args.scores)
    else:
        raise ValueError(f"--scores {args.scores!r}: give a .parquet file or kafka:TOPIC[@START..END]")
    selected, summary = select_uploads(uploads, done, config)
    write_selection(selected, args.out)
    print(json.dumps({"out": str(args.out), "unreadable_events": unreadable, **summary}, indent=2), file=sys.stdout)
    return 0
