"""What the long-running commands (``stream``, ``moderate``) share: SIGTERM/SIGINT -> a stop event,
and the optional probe server."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading

log = logging.getLogger(__name__)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (the loop then drains, commits and returns)."""
    stop = threading.Event()

    def handler(signum, _frame) -> None:
        log.info("received %s: stopping after the records in flight", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def add_probe_arguments(parser) -> None:
    parser.add_argument("--health-port", type=int, default=None, metavar="PORT",
                        help="serve /healthz (loop alive) and /readyz (ready) on this port (default: off)")  # fmt: skip
    parser.add_argument("--health-host", default="0.0.0.0",
                        help="address of the probe server (default: 0.0.0.0, for Kubernetes probes)")  # fmt: skip


def probes(args, service):
    """A running HealthServer for ``service`` (``live()``, ``ready()``) when --health-port is given."""
    if args.health_port is None:
        return contextlib.nullcontext()
    from ultravqa_ray.pipelines.health import HealthServer

    return HealthServer(args.health_host, args.health_port, live=service.live, ready=service.ready)
