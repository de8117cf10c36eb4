"""The ``kafka:`` block shared by the long-running Kafka clients' config files (bridge, moderation)."""

from __future__ import annotations

from pydantic import Field, field_validator

from connectors.kafka import KafkaSettings
from ultravqa_ray.config import Config


class KafkaClientConfig(Config):
    """A config whose ``kafka`` mapping holds :class:`KafkaSettings` fields over the environment."""

    kafka: dict = Field(
        default_factory=dict,
        description="KafkaSettings fields; merged over the ULTRAVQA_KAFKA_* environment (file wins).",
    )

    @field_validator("kafka")
    @classmethod
    def _kafka_fields(cls, value: dict) -> dict:
        KafkaSettings.model_validate(value)  # unknown or malformed fields fail at load, by name
        return value

    def kafka_settings(self) -> KafkaSettings:
        return KafkaSettings.from_env(**self.kafka)
