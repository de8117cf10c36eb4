"""Topic names and a development helper that creates them (production topics come from Strimzi)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from connectors.kafka.settings import KafkaSettings


class Topics(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    uploads: str = Field("vqa.uploads", description="Input: upload events.")
    scores: str = Field("vqa.scores", description="Output: score events, keyed by video_id.")
    dead_letters: str = Field("vqa.dead-letters", description="Output: inputs that could not be scored.")
    moderation: str = Field("vqa.moderation", description="Output: moderation actions.")

    def all(self) -> tuple[str, ...]:
        return (self.uploads, self.scores, self.dead_letters, self.moderation)


def ensure_topics(settings: KafkaSettings, names: tuple[str, ...] | list[str], partitions: int = 2) -> None:
    """Create the topics that do not exist yet (idempotent; for development brokers)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(**settings.admin_kwargs())
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names if n not in existing]
        if missing:
            admin.create_topics(missing)
    finally:
        admin.close()
