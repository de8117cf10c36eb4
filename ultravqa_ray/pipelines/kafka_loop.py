"""A synchronous Kafka scoring loop: poll uploads, score, write outputs, then commit.

Delivery (DESIGN.md section 6): offsets are committed only after the producer has acknowledged
every output of the batch, so a crash between the two re-delivers the batch (at least once) and
never drops it. Downstream de-duplicates by (video_id, model).

This loop scores in-process. It is what the demo runs today; the Ray Serve bridge (issue 6) keeps
the same per-record logic (:mod:`ultravqa_ray.pipelines.uploads`) and the same commit rule.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from connectors.kafka import KafkaSettings, KafkaSink, KafkaSource, OutgoingRecord, Topics
from ultravqa_ray.pipelines.uploads import InputRecord, Output

log = logging.getLogger(__name__)

Processor = Callable[[Sequence[InputRecord]], list[Output]]


def run_kafka_scorer(
    settings: KafkaSettings,
    topics: Topics,
    group_id: str,
    process: Processor,
    stop: threading.Event,
    *,
    max_batch: int = 8,
    poll_timeout_ms: int = 200,
) -> int:
    """Consume ``topics.uploads`` until ``stop`` is set; returns the number of records handled."""
    handled = 0
    with KafkaSource(settings, [topics.uploads], group_id) as source, KafkaSink(settings) as sink:
        while not stop.is_set():
            records = source.poll(poll_timeout_ms / 1000, max_batch)
            if not records:
                continue
            outputs = process(records)
            sink.send_all(
                OutgoingRecord(
                    topics.scores if out.is_score else topics.dead_letters, out.key, out.message.to_bytes()
                )
                for out in outputs
            )  # raises unless every output is acknowledged
            source.commit(records)  # only now: every output of the batch is durable
            handled += len(records)
    log.info("kafka scorer stopped after %d records", handled)
    return handled
