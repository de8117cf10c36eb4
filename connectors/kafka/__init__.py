"""Kafka edges: client settings, the embedded development broker, topics."""

from connectors.kafka.broker import BrokerError, EmbeddedBroker
from connectors.kafka.settings import KafkaSettings
from connectors.kafka.topics import Topics, ensure_topics

__all__ = ["BrokerError", "EmbeddedBroker", "KafkaSettings", "Topics", "ensure_topics"]
