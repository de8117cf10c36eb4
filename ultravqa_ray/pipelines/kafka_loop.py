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

from connectors.kafka import KafkaSettings, Topics
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
    from kafka import KafkaConsumer, KafkaProducer

    consumer = KafkaConsumer(topics.uploads, **settings.consumer_kwargs(group_id))
    producer = KafkaProducer(**settings.producer_kwargs())
    handled = 0
    try:
        while not stop.is_set():
            polled = consumer.poll(timeout_ms=poll_timeout_ms, max_records=max_batch)
            records = [
                InputRecord(r.key, r.value, r.topic, r.partition, r.offset)
                for batch in polled.values()
                for r in batch
            ]
            if not records:
                continue
            outputs = process(records)
            futures = [
                producer.send(topics.scores if out.is_score else topics.dead_letters, key=out.key,
                              value=out.message.to_bytes())
                for out in outputs
            ]  # fmt: skip
            producer.flush()
            for future in futures:
                future.get(timeout=settings.request_timeout_ms / 1000)  # raises if not acknowledged
            consumer.commit()  # only now: every output of the batch is durable
            handled += len(records)
    finally:
        consumer.close(autocommit=False)
        producer.close()
    log.info("kafka scorer stopped after %d records", handled)
    return handled
