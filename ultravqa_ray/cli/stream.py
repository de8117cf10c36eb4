"""``ultravqa-ray stream``: the Kafka bridge from the uploads topic to the Scorer deployment."""

from __future__ import annotations

from ultravqa_ray.cli._config import add_config_arguments
from ultravqa_ray.cli._service import add_probe_arguments, probes, stop_on_signals


def register(sub) -> None:
    p = sub.add_parser(
        "stream",
        help="Kafka bridge: upload events -> Ray Serve Scorer -> score events / dead letters",
        description=(
            "Consume upload events in a consumer group (default ultravqa-stream), score them through "
            "the Scorer deployment of a running Serve application (serve_configs/*.yaml) with bounded "
            "work in flight, write score events and dead letters, and commit offsets only after the "
            "writes are acknowledged. Kafka connection: ULTRAVQA_KAFKA_* variables, overridden by the "
            "config file's `kafka:` section. The Ray cluster: scorer.ray_address, else $RAY_ADDRESS. "
            "At start it checks its topics (create_topics: true creates missing ones). Run more "
            "processes in the same group to scale. SIGTERM stops after draining the records in flight."
        ),
    )
    add_config_arguments(p, "StreamConfig", example="serve_configs/stream.yaml", set_example="max_in_flight=16")
    add_probe_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    # Ray must never start or join a cluster by itself (e.g. from a pool thread on the way out):
    # the bridge joins the one it is told to, once, below.
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    from connectors.kafka.topics import MissingTopicError
    from connectors.kafka.transactions import TransactionsUnsupported
    from ultravqa_ray.cli import CommandError
    from ultravqa_ray.pipelines.kafka_client import OutputLost
    from ultravqa_ray.pipelines.serve_client import connect
    from ultravqa_ray.pipelines.stream import Bridge, StreamConfig

    config = StreamConfig.load(args.config, args.overrides)
    client = connect(config.scorer)  # joins Ray first: ray.init installs its own SIGTERM handler
    stop = stop_on_signals()  # ... which this replaces with a clean, draining stop
    metrics = None
    if config.scorer.mode == "handle":
        from ultravqa_ray.serve.metrics import ScoringMetrics

        metrics = ScoringMetrics("stream", in_replica=False)
    bridge = Bridge(config, client, metrics=metrics)
    with probes(args, bridge):
        try:
            bridge.run(stop)
        except (OutputLost, MissingTopicError, TransactionsUnsupported) as exc:
            raise CommandError(str(exc)) from exc
    return 0
