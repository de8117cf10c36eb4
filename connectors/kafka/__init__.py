"""Kafka edges: client settings, typed source and sink, serialisation, topics, the dev broker."""

from connectors.kafka.broker import BrokerError, EmbeddedBroker
from connectors.kafka.serde import (
    dead_letter_for,
    dead_letter_for_input,
    decode_dead_letter,
    decode_key,
    decode_score,
    decode_upload,
    encode_key,
)
from connectors.kafka.settings import KafkaSettings
from connectors.kafka.sink import Delivered, DeliveryError, KafkaSink, OutgoingRecord
from connectors.kafka.source import ConsumedRecord, KafkaSource
from connectors.kafka.topics import MissingTopicError, Topics, check_topics, ensure_topics
from connectors.kafka.transactions import TransactionsUnsupported, check_transactions

__all__ = [
    "BrokerError",
    "ConsumedRecord",
    "Delivered",
    "DeliveryError",
    "EmbeddedBroker",
    "KafkaSettings",
    "KafkaSink",
    "KafkaSource",
    "MissingTopicError",
    "OutgoingRecord",
    "Topics",
    "TransactionsUnsupported",
    "check_topics",
    "check_transactions",
    "dead_letter_for",
    "dead_letter_for_input",
    "decode_dead_letter",
    "decode_key",
    "decode_score",
    "decode_upload",
    "encode_key",
    "ensure_topics",
]
