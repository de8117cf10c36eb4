"""Client settings for kafka-python, in one typed place.

Security (SASL/SCRAM, TLS) is passed through from configuration; secrets come from the
environment or a mounted file, never from messages. The group-membership defaults are tuned for
fast rebalances: the embedded Tansu broker holds a JoinGroup for about half the session timeout,
so with kafka-python's default 45 s the first record arrives after ~23 s; with 6 s / 2 s it
arrives after ~3 s. Real Kafka clusters are fine with these values too; raise them for consumers
that may stall longer than the session timeout between polls (kafka-python heartbeats from a
background thread, so slow scoring alone does not trigger a rebalance).

:meth:`KafkaSettings.from_env` reads every field from ``ULTRAVQA_KAFKA_<FIELD>`` (the variables the
Kubernetes manifests set from Secrets and ConfigMaps), plus ``ULTRAVQA_KAFKA_SASL_PASSWORD_FILE``
naming a mounted secret file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class KafkaSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Comma-separated host:port list.")
    client_id: str = Field("ultravqa-ray", description="Client id reported to the broker.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Transport security."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when security_protocol is SASL_*."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (from env or secret file).")
    ssl_cafile: str | None = Field(None, description="CA bundle to verify the brokers (TLS).")
    ssl_certfile: str | None = Field(None, description="Client certificate for mutual TLS.")
    ssl_keyfile: str | None = Field(None, description="Client key for mutual TLS.")
    session_timeout_ms: int = Field(6000, ge=1000, description="Group session timeout (fast joins).")
    heartbeat_interval_ms: int = Field(2000, ge=100, description="Group heartbeat interval.")
    request_timeout_ms: int = Field(30000, ge=1000, description="Per-request timeout.")
    max_request_size: int = Field(
        1048576, ge=1024, description="Largest record the producer sends (bytes); larger outputs are replaced."
    )

    @classmethod
    def from_env(
        cls, prefix: str = "ULTRAVQA_KAFKA_", *, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> KafkaSettings:
        """Settings from ``<prefix><FIELD_NAME>`` variables; ``overrides`` win over the environment.

        ``<prefix>SASL_PASSWORD_FILE`` names a file holding the password (a mounted Secret); giving
        it together with ``<prefix>SASL_PASSWORD`` is an error, not a silent choice.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            value = env.get(prefix + name.upper())
            if value is not None and value != "":
                values[name] = value
        password_file = env.get(prefix + "SASL_PASSWORD_FILE")
        if password_file:
            if "sasl_password" in values:
                raise ValueError(f"set {prefix}SASL_PASSWORD or {prefix}SASL_PASSWORD_FILE, not both")
            try:
                values["sasl_password"] = Path(password_file).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ValueError(
                    f"{prefix}SASL_PASSWORD_FILE={password_file!r}: cannot read ({exc})"
                ) from exc
        values.update(overrides)
        return cls(**values)

    def _common(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()],
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.security_protocol.startswith("SASL"):
            if not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
                raise ValueError("SASL needs sasl_mechanism, sasl_username and sasl_password")
            kw.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password.get_secret_value(),
            )
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, key):
                kw[key] = getattr(self, key)
        return kw

    def producer_kwargs(self) -> dict[str, Any]:
        """Durable producer: wait for all in-sync replicas, retry, keep order per partition."""
        return {
            **self._common(), "acks": "all", "retries": 5, "max_in_flight_requests_per_connection": 1,
            "max_request_size": self.max_request_size,
            "max_block_ms": self.request_timeout_ms,  # a missing topic or a full buffer fails, bounded
        }  # fmt: skip

    def transactional_producer_kwargs(self, transactional_id: str) -> dict[str, Any]:
        """Idempotent, transactional producer (``delivery: exactly_once``)."""
        return {**self.producer_kwargs(), "transactional_id": transactional_id, "enable_idempotence": True}

    def consumer_kwargs(self, group_id: str | None) -> dict[str, Any]:
        """Manual-commit consumer: offsets move only after the output is acknowledged."""
        kw = {
            **self._common(),
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
        }
        if group_id is None:
            kw.pop("session_timeout_ms")
            kw.pop("heartbeat_interval_ms")
        return kw

    def admin_kwargs(self) -> dict[str, Any]:
        return self._common()
