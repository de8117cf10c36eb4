"""``ultravqa-ray promote``: the evaluation gate between a candidate and the production model."""

from __future__ import annotations

import json
import sys

from ultravqa_ray.cli._config import add_config_arguments, load_config, result_stdout
from ultravqa_ray.cli.serve_swap import add_swap_arguments, apply, join

_SHORTCUTS = (
    ("--candidate", "candidate", "model that may replace production (folder, s3://, gs://)"),
    ("--baseline", "baseline", "model in production now"),
    ("--heldout", "heldout", "held-out annotation manifest (local or s3://)"),
    ("--out", "out", "output folder (promotion.json, promotion.html, both evaluations)"),
)


def register(sub) -> None:
    p = sub.add_parser(
        "promote",
        help="gate a candidate model against production on a held-out set: promotion record",
        description="Evaluate both models on the same held-out manifest, bootstrap the paired "
        "differences in MAE, acc@0.5 and SRCC over videos (per dimension and on the mean), apply the "
        "rule (rule.decide_on must improve on the mean beyond the interval, no dimension worse than "
        "rule.tolerance) and write OUT/promotion.json and OUT/promotion.html. Exit status 0 when the "
        "candidate is accepted, 3 when it is refused.",
    )
    add_config_arguments(p, "PromoteConfig", _SHORTCUTS, set_example="rule.tolerance.srcc=0.1")
    add_swap_arguments(p, required=False)
    p.set_defaults(func=run)


REFUSED = 3


def run(args) -> int:
    from ultravqa_ray.train.promote import PromoteConfig, promote

    out = result_stdout()
    if args.app:  # evaluate on the cluster that serves the application, not on a local Ray of our own
        join(args.address)
    outcome = promote(load_config(PromoteConfig, args, _SHORTCUTS))
    verdict = "accepted" if outcome.accepted else "refused: " + "; ".join(outcome.record["reasons"])
    print(f"candidate {verdict}", file=sys.stderr)
    result = {"accepted": outcome.accepted, "record": str(outcome.record_json), "report": str(outcome.report_html)}
    print(json.dumps(result), file=out, flush=True)
    if not outcome.accepted:
        return REFUSED
    if args.app:  # --apply-to: the accepted candidate goes live, no restart
        return apply(args.app, str(outcome.record["candidate"]["model"]), args.address, args.swap_timeout_s, out)
    return 0
