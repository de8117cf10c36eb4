"""What the Scorer answers for one upload: a score event, or the error kind and message of a failure.

Bad inputs are answers, not exceptions: raising would log a stack trace per bad upload in the
replica and make callers tell input faults from infrastructure faults by exception type. A
:class:`ScoreOutcome` travels back through the deployment handle (pickled) or the HTTP route (JSON).
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.wire.errors import ErrorKind, ProcessingError
from connectors.wire.messages import ScoreEvent


@dataclass(frozen=True)
class ScoreOutcome:
    """Exactly one of ``event`` or (``error_kind``, ``error``)."""

    event: ScoreEvent | None = None
    error_kind: ErrorKind | None = None
    error: str | None = None

    @classmethod
    def failed(cls, exc: ProcessingError) -> ScoreOutcome:
        return cls(error_kind=exc.kind, error=exc.message)

    @property
    def ok(self) -> bool:
        return self.event is not None

    def error_json(self) -> dict[str, str]:
        assert self.error_kind is not None
        return {"error_kind": self.error_kind.value, "error": self.error or self.error_kind.value}
