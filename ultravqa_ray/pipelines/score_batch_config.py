"""The typed configuration of the batch scoring job (``ultravqa-ray score-batch``).

One YAML file (``jobs/configs/score_batch.yaml``) plus ``--set key.sub=value`` overrides. The
input is exactly one of: an offset (or time) range of the uploads topic, a manifest file, or an
object-store / local prefix. Outputs are the scores topic (with dead letters on the dead-letter
topic) and/or a Parquet file with one row per input.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from connectors.kafka import KafkaSettings, Topics
from connectors.kafka.serde import DEFAULT_MAX_ORIGINAL_BYTES
from connectors.storage import StorageSettings
from connectors.wire.dimensions import Dimension
from ultravqa_ray.config import Config, LocalPath
from ultravqa_ray.model import ModelConfig
from ultravqa_ray.video import DecodeConfig

OffsetBound = int | datetime | Literal["earliest", "latest"] | dict[int, int]


class KafkaInputConfig(Config):
    """A bounded range of the uploads topic; ends are exclusive, times are RFC 3339 with offset."""

    start: OffsetBound = Field(
        "earliest", description="First offset: int, time, 'earliest' or {partition: offset}."
    )
    end: OffsetBound = Field(
        "latest", description="End offset (exclusive): int, time, 'latest' or {partition: offset}."
    )
    partitions: list[int] | None = Field(None, description="Partitions to read; all when absent.")


class InputConfig(Config):
    kind: Literal["kafka", "manifest", "prefix"] = Field(description="Where the inputs come from.")
    kafka: KafkaInputConfig = Field(
        default_factory=KafkaInputConfig, description="Range of the uploads topic."
    )
    manifest: LocalPath | None = Field(
        None, description="Manifest (.jsonl/.parquet with video_id and uri) when kind=manifest."
    )
    prefix: LocalPath | None = Field(
        None, description="s3://, gs://, file:// or local folder to list when kind=prefix."
    )
    suffixes: list[str] | None = Field(
        None, description="Only list files ending in one of these (e.g. ['.mp4'])."
    )

    @model_validator(mode="after")
    def _one_source(self) -> InputConfig:
        if self.kind == "manifest" and not self.manifest:
            raise ValueError("input.kind=manifest needs input.manifest")
        if self.kind == "prefix" and not self.prefix:
            raise ValueError("input.kind=prefix needs input.prefix")
        return self


class OutputConfig(Config):
    kafka: bool = Field(True, description="Write score events and dead letters to the topics.")
    parquet: LocalPath | None = Field(
        None, description="Write one row per input to this .parquet file (local or s3://)."
    )
    dead_letter_max_original_bytes: int = Field(
        DEFAULT_MAX_ORIGINAL_BYTES, ge=0, le=512 * 1024,
        description="Most bytes of the original key and of the value a dead letter carries (the rest: size + hash).",
    )  # fmt: skip

    @model_validator(mode="after")
    def _somewhere(self) -> OutputConfig:
        if not self.kafka and not self.parquet:
            raise ValueError("set output.kafka=true or output.parquet=PATH (or both)")
        if self.parquet and not self.parquet.endswith(".parquet"):
            raise ValueError(f"output.parquet must end in .parquet, got {self.parquet!r}")
        return self


class ResourcesConfig(Config):
    """How the Ray Data stages are sized."""

    decode_batch_size: int = Field(4, ge=1, description="Videos per decode task (CPU).")
    decode_num_cpus: float = Field(1.0, gt=0, description="CPUs reserved by each decode task.")
    score_batch_size: int = Field(8, ge=1, description="Videos per call of a scoring actor.")
    concurrency: int = Field(1, ge=1, description="Scoring actors (each holds one copy of the model).")
    score_num_cpus: float = Field(1.0, ge=0, description="CPUs reserved by each scoring actor.")
    num_gpus: float | None = Field(
        None, ge=0, description="GPUs per scoring actor; absent: 1 when the cluster has GPUs, else 0."
    )
    address: str | None = Field(None, description="Ray address to join; absent: the current or a local Ray.")
    fuse_decode: bool = Field(
        False,
        description="Decode inside the scoring actors instead of separate CPU tasks (one stage, no overlap).",
    )
    worker_env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment of the decode/score workers (AWS_REGION, AWS_PROFILE...); secrets belong in the cluster env.",
    )


class ScoreBatchConfig(Config):
    input: InputConfig
    output: OutputConfig = Field(default_factory=OutputConfig, description="Where results go.")
    model: ModelConfig = Field(description="The scorer model (checkpoint, device, K).")
    decode: DecodeConfig = Field(default_factory=DecodeConfig, description="Frame sampling and limits.")
    storage: StorageSettings = Field(default_factory=StorageSettings, description="Allow-list, S3 endpoint.")
    kafka: KafkaSettings | None = Field(
        None, description="Kafka client settings; absent: from ULTRAVQA_KAFKA_* environment variables."
    )
    topics: Topics = Field(default_factory=Topics, description="Topic names.")
    dimensions: list[Dimension] | None = Field(
        None,
        description="Dimensions for manifest/prefix inputs (upload events carry their own); all when absent.",
    )
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig, description="Ray Data sizing.")
    progress: bool = Field(True, description="Show a progress bar on stderr.")

    def kafka_settings(self) -> KafkaSettings:
        return self.kafka if self.kafka is not None else KafkaSettings.from_env()

    def needs_kafka(self) -> bool:
        return self.input.kind == "kafka" or self.output.kafka
