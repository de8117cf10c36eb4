"""``ultravqa-ray serve-swap``: put another model into a running scoring application, no restart."""

from __future__ import annotations

import json
import sys
from typing import IO

from ultravqa_ray.cli._config import result_stdout


def register(sub) -> None:
    p = sub.add_parser(
        "serve-swap",
        aliases=["serve_swap"],  # the module name, which the CLI tests and COMMANDS use
        help="swap the model of a running Serve application (user_config.model), no restart",
        description="Set the Scorer's user_config.model of APP (deployed from a config: serve deploy, "
        "RayService) to MODEL: every replica loads it beside the model in service and switches between "
        "batches; a replica whose load fails keeps the old model and reports why. Waits until every "
        "replica decided and prints a JSON report. Exit status 0 when all serve MODEL, 3 otherwise. "
        "Under KubeRay change user_config.model in the RayService's serveConfigV2 instead.",
    )
    add_swap_arguments(p, required=True)
    p.add_argument("--model", required=True, help="the model to serve: folder, s3:// or gs:// folder, hub name")
    p.set_defaults(func=run)


def add_swap_arguments(p, *, required: bool) -> None:
    p.add_argument("--app" if required else "--apply-to", dest="app", required=required, metavar="APP",
                   help="the Serve application whose Scorer gets the model" + ("" if required else
                        " when the gate accepts it (ultravqa-ray serve-swap)"))  # fmt: skip
    p.add_argument("--address", default=None, help="Ray cluster to join (default: $RAY_ADDRESS, else 'auto')")
    p.add_argument("--swap-timeout-s", type=float, default=600.0, help="longest wait for every replica (600)")


SWAP_REFUSED = 3


def join(address: str | None) -> None:
    """Join the cluster that runs the application: ``address``, else ``$RAY_ADDRESS``, else ``auto``."""
    import os

    import ray

    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or "auto", log_to_driver=False)


def apply(app: str, model: str, address: str | None, timeout_s: float, out: IO[str] | None = None) -> int:
    """Join Ray, swap, print the report on ``out`` (the command's result stream; default: take
    stdout for it); the exit status (0: every replica serves ``model``)."""
    from ultravqa_ray.serve.swap import swap_model

    join(address)
    report = swap_model(app, model, timeout_s=timeout_s)
    print(json.dumps(report.summary(), default=str), file=out or result_stdout(), flush=True)
    if not report.ok:
        print(f"swap refused: {report.refused}", file=sys.stderr)
        return SWAP_REFUSED
    print(f"every replica of {app} serves {model} ({report.seconds:.2f}s)", file=sys.stderr)
    return 0


def run(args) -> int:
    return apply(args.app, args.model, args.address, args.swap_timeout_s)
