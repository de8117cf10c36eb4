"""What the long-running Kafka clients (bridge, moderation) and the batch job's sink share.

- :class:`KafkaClientConfig`: the ``kafka:`` block (over the ``ULTRAVQA_KAFKA_*`` environment), the
  start-up topic check (``create_topics``) and the dead letters' cap on original bytes.
- :func:`deliver`: write a batch of outputs so that *no record can stop a partition*. Each output
  that cannot be written as it is (larger than the producer's limit, refused by the broker) is
  replaced by its fallback, a dead letter that carries what fits (the reason, the original's size
  and SHA-256, its first :data:`FALLBACK_ORIGINAL_BYTES` bytes); the others are written once, not
  again. Only when even a fallback cannot be written (the broker or the topic is gone) does it
  raise :class:`OutputLost`, naming the source partition and offset; nothing of that batch may be
  committed then, and the caller stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import Field, field_validator

from connectors.kafka import KafkaSettings
from connectors.kafka.serde import DEFAULT_MAX_ORIGINAL_BYTES
from connectors.kafka.sink import Delivered, KafkaSink, OutgoingRecord
from ultravqa_ray.config import Config

log = logging.getLogger(__name__)

#: Original bytes a fallback dead letter carries (each of key and value): small enough to always fit.
FALLBACK_ORIGINAL_BYTES = 1024


class KafkaClientConfig(Config):
    """A config whose ``kafka`` mapping holds :class:`KafkaSettings` fields over the environment."""

    kafka: dict = Field(
        default_factory=dict,
        description="KafkaSettings fields; merged over the ULTRAVQA_KAFKA_* environment (file wins).",
    )
    create_topics: bool = Field(
        False,
        description="At start, create missing topics (development); false: fail naming the missing topic.",
    )
    topic_partitions: int = Field(2, ge=1, description="Partitions of topics created at start (create_topics).")
    dead_letter_max_original_bytes: int = Field(
        DEFAULT_MAX_ORIGINAL_BYTES, ge=0, le=512 * 1024,
        description="Most bytes of the original key and of the value a dead letter carries (the rest: size + hash).",
    )  # fmt: skip

    @field_validator("kafka")
    @classmethod
    def _kafka_fields(cls, value: dict) -> dict:
        KafkaSettings.model_validate(value)  # unknown or malformed fields fail at load, by name
        return value

    def kafka_settings(self) -> KafkaSettings:
        return KafkaSettings.from_env(**self.kafka)


@dataclass(frozen=True)
class Output:
    """One record to write, where its input came from, and what to write instead if it cannot be."""

    record: OutgoingRecord
    source: str  # "topic[partition]@offset" or a path: named when even the fallback fails
    fallback: Callable[[BaseException], OutgoingRecord]


class OutputLost(RuntimeError):
    """An output and its fallback dead letter could not be written: the caller must stop uncommitted."""


def deliver(sink: KafkaSink, outputs: Sequence[Output]) -> list[int]:
    """Write ``outputs``; returns the indexes replaced by their fallback. Raises :class:`OutputLost`."""
    results = sink.send_each([o.record for o in outputs])
    failed = [i for i, r in enumerate(results) if not isinstance(r, Delivered)]
    if not failed:
        return []
    replacements: list[OutgoingRecord] = []
    for i in failed:
        exc = results[i]
        assert isinstance(exc, BaseException)
        log.warning("output for %s to %s not written (%s: %s); writing its fallback dead letter",
                    outputs[i].source, outputs[i].record.topic, type(exc).__name__, str(exc)[:300])  # fmt: skip
        replacements.append(outputs[i].fallback(exc))
    second = sink.send_each(replacements)
    lost = [(i, r) for i, r in zip(failed, second, strict=True) if not isinstance(r, Delivered)]
    if lost:
        i, exc = lost[0]
        raise OutputLost(
            f"{len(lost)} output(s) and their dead letters could not be written, first for "
            f"{outputs[i].source} to {replacements[failed.index(i)].topic!r}: {type(exc).__name__}: {exc}"
        )
    return failed


def describe_failure(exc: BaseException) -> str:
    """``Type: message`` of a write failure, one line, short."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__
