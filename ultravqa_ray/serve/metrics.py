"""The project's own counters, exported as Ray metrics (they appear on Ray's Prometheus endpoint).

- ``ultravqa_scored_total``: videos scored;
- ``ultravqa_dead_lettered_total{kind}``: inputs that failed, by error kind;
- ``ultravqa_score_latency_ms``: receipt-to-result latency of scored videos;
- ``ultravqa_http_unauthorized_total``: HTTP requests refused with 401 (bearer token missing or wrong);
- ``ultravqa_model_swaps_total{outcome}``: model swaps by ``reconfigure()``, ``done`` or ``failed``
  (a failed one keeps the old model serving; the reason is in the log and ``Scorer.model_status``).

Every series carries a ``component`` tag (``scorer``, ``http``, ``stream``). Inside a Serve replica
the Serve variants are used, which add the deployment, replica and application tags; elsewhere (the
Kafka bridge, a driver process) the plain ``ray.util.metrics`` ones. Ray exports them from each
node's metrics agent (``ray metrics launch-prometheus`` or a Prometheus scraping the node's
``metrics_export_port``); Ray prefixes the names with ``ray_``.
"""

from __future__ import annotations

from typing import Any

from connectors.wire.errors import ErrorKind

LATENCY_BOUNDARIES_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]


class ScoringMetrics:
    """The series for one component; cheap to build, one per replica or bridge."""

    def __init__(self, component: str, *, in_replica: bool) -> None:
        import ray.serve.metrics
        import ray.util.metrics

        metrics: Any = ray.serve.metrics if in_replica else ray.util.metrics  # same classes, replica tags or not
        self._tags = {"component": component}
        self.scored = metrics.Counter(
            "ultravqa_scored_total", description="Videos scored.", tag_keys=("component",)
        )
        self.failed = metrics.Counter(
            "ultravqa_dead_lettered_total",
            description="Inputs that failed, by error kind.",
            tag_keys=("component", "kind"),
        )
        self.latency = metrics.Histogram(
            "ultravqa_score_latency_ms",
            description="Receipt-to-result latency of scored videos, in milliseconds.",
            boundaries=LATENCY_BOUNDARIES_MS,
            tag_keys=("component",),
        )

        self.unauthorized = metrics.Counter(
            "ultravqa_http_unauthorized_total",
            description="HTTP requests refused for a missing or wrong bearer token (401).",
            tag_keys=("component",),
        )
        self.unauthorized_count = 0  # the same, readable in the process (tests, logs)
        self.swaps = metrics.Counter(
            "ultravqa_model_swaps_total",
            description="Model swaps on a live replica, by outcome (done, failed: the old model kept serving).",
            tag_keys=("component", "outcome"),
        )

    def record_swap(self, outcome: str) -> None:
        self.swaps.inc(1, tags={**self._tags, "outcome": outcome})

    def record_unauthorized(self) -> None:
        self.unauthorized.inc(1, tags=self._tags)
        self.unauthorized_count += 1

    def record_scored(self, latency_ms: float) -> None:
        self.scored.inc(1, tags=self._tags)
        self.latency.observe(latency_ms, tags=self._tags)

    def record_failed(self, kind: ErrorKind) -> None:
        self.failed.inc(1, tags={**self._tags, "kind": ErrorKind(kind).value})
