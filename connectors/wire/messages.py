"""The messages on the Kafka topics (DESIGN.md section 6), validated the same way at both ends.

One JSON object per record, UTF-8, key = ``video_id``. Every message carries ``schema_version``;
a consumer refuses a version it does not know rather than guessing. Unknown fields are refused
too: a typo in a producer must surface as a dead letter, not as a silently ignored option.

The JSON Schema of each message is exported to ``connectors/wire/schemas/`` by
:func:`connectors.wire.schema_export.export_schemas`; a test keeps the files current.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.wire.dimensions import Dimension
from connectors.wire.errors import ErrorKind

SCHEMA_VERSION = 1

VideoId = Annotated[
    str,
    Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f]+$", description="Unique id of the video."),
]
Uri = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        description="Where the video is: a local path, file://, s3:// or gs:// URI.",
    ),
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = Field(
        1, description="Version of this message's schema; consumers refuse unknown versions."
    )

    def to_bytes(self) -> bytes:
        """The record value: compact UTF-8 JSON."""
        return self.model_dump_json(exclude_none=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, value: bytes | str):
        """Parse and validate a record value; raises ``pydantic.ValidationError``."""
        return cls.model_validate_json(value)


class UploadEvent(_Message):
    """Input topic: a video to score."""

    video_id: VideoId
    uri: Uri
    dimensions: list[Dimension] | None = Field(
        None, min_length=1, description="Dimensions to score; all five when absent."
    )
    want_rationale: bool = Field(False, description="Also generate the written rationale (slower).")
    metadata: dict[str, str] = Field(default_factory=dict, description="Free string map passed through.")
    event_time: AwareDatetime = Field(description="When the upload happened (RFC 3339 with offset).")

    @field_validator("dimensions")
    @classmethod
    def _unique_dimensions(cls, value: list[Dimension] | None) -> list[Dimension] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("dimensions must not repeat")
        return value

    def requested_dimensions(self) -> tuple[Dimension, ...]:
        """The requested dimensions in canonical order."""
        wanted = set(self.dimensions) if self.dimensions else set(Dimension)
        return tuple(d for d in Dimension if d in wanted)


class DimensionScore(BaseModel):
    """The score read-out of one dimension (DESIGN.md section 3)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    score: float = Field(description="Expected score sum_s s * p(s), in [1, K].")
    label: int = Field(ge=1, description="Most probable score, argmax_s p(s), in 1..K.")
    probs: list[float] = Field(min_length=2, description="p(s) for s = 1..K; sums to 1.")

    @model_validator(mode="after")
    def _consistent(self) -> DimensionScore:
        k = len(self.probs)
        if any(not math.isfinite(p) or p < 0 for p in self.probs):
            raise ValueError("probs must be finite and non-negative")
        if abs(sum(self.probs) - 1.0) > 1e-3:
            raise ValueError(f"probs must sum to 1, got {sum(self.probs):.6f}")
        if not 1 <= self.label <= k:
            raise ValueError(f"label {self.label} outside 1..{k}")
        if not (1 - 1e-6 <= self.score <= k + 1e-6):
            raise ValueError(f"score {self.score} outside [1, {k}]")
        return self


class ModelRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="Model name or path it was loaded from.")
    revision: str = Field(min_length=1, description="Revision or content hash of the weights.")


class DecodeInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    frames: int = Field(ge=1, description="Frames given to the model.")
    duration_s: float = Field(ge=0, description="Duration of the video stream in seconds.")
    width: int = Field(ge=1, description="Display width of the source video.")
    height: int = Field(ge=1, description="Display height of the source video.")
    fps: float | None = Field(None, ge=0, description="Average frame rate of the source, when known.")


class Timings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    decode: float = Field(ge=0, description="Milliseconds spent reading and decoding.")
    infer: float = Field(ge=0, description="Milliseconds spent in the model.")
    total: float = Field(ge=0, description="Milliseconds from receipt to result.")


class ScoreEvent(_Message):
    """Output topic: the per-dimension scores of one video."""

    video_id: VideoId
    uri: Uri
    model: ModelRef
    scores: dict[Dimension, DimensionScore] = Field(min_length=1)
    rationale: dict[Dimension, str] | None = Field(None, description="Written rationale, when asked for.")
    decode: DecodeInfo
    timings_ms: Timings
    produced_at: AwareDatetime = Field(default_factory=utcnow)


class SourceRef(BaseModel):
    """Where a failed record came from. Kafka fields are absent for inputs read from files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: str | None = None
    partition: int | None = Field(None, ge=0)
    offset: int | None = Field(None, ge=0)
    path: str | None = Field(None, description="Manifest or listing the input came from, if not Kafka.")


class Truncation(BaseModel):
    """What a dead letter left out of an original field larger than its cap (size, hash, bytes kept)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: Literal["key", "value"] = Field(description="Which original field was cut.")
    size: int = Field(ge=0, description="Length of the original field in bytes.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the whole original field, hex.")
    kept: int = Field(ge=0, description="Leading bytes of the original carried in the *_b64 field.")


class DeadLetter(_Message):
    """Dead-letter topic: an input that could not be scored, with its original bytes and the reason.

    The original key and value are carried whole up to a cap (``dead_letter_max_original_bytes`` of
    the writer's config); beyond it only their first bytes are, and ``truncated`` gives the size
    and SHA-256 of what was cut, so a dead letter always fits a Kafka record.
    """

    key_b64: str | None = Field(None, description="Original record key, base64; absent if the record had none.")
    value_b64: str = Field(description="Original record value, base64 (its first bytes when truncated).")
    truncated: list[Truncation] | None = Field(
        None, description="Present when the original key or value was larger than the cap: size, hash, kept."
    )
    error_kind: ErrorKind
    error: str = Field(min_length=1, description="What went wrong, for a person.")
    source: SourceRef
    failed_at: AwareDatetime = Field(default_factory=utcnow)


class ModerationEvent(_Message):
    """Moderation topic: the action a rule took on a score event."""

    video_id: VideoId
    model: ModelRef | None = None
    action: Literal["allow", "review", "block"]
    rule: str = Field(min_length=1, description="The rule that fired, as written in the rules file.")
    scores: dict[Dimension, float] = Field(description="The expected scores the rule saw.")
    decided_at: AwareDatetime = Field(default_factory=utcnow)
