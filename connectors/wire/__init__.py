"""Wire contracts shared by every producer and consumer (DESIGN.md sections 1 and 6)."""

from connectors.wire.dimensions import DIMENSIONS, Dimension
from connectors.wire.errors import ErrorKind, ProcessingError
from connectors.wire.messages import (
    SCHEMA_VERSION,
    DeadLetter,
    DecodeInfo,
    DimensionScore,
    ModelRef,
    ModerationEvent,
    ScoreEvent,
    SourceRef,
    Timings,
    Truncation,
    UploadEvent,
)

__all__ = [
    "DIMENSIONS",
    "SCHEMA_VERSION",
    "DeadLetter",
    "DecodeInfo",
    "Dimension",
    "DimensionScore",
    "ErrorKind",
    "ModelRef",
    "ModerationEvent",
    "ProcessingError",
    "ScoreEvent",
    "SourceRef",
    "Timings",
    "Truncation",
    "UploadEvent",
]
