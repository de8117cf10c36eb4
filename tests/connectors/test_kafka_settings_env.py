"""KafkaSettings.from_env: the variables the Kubernetes manifests set, and the password file."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.kafka import KafkaSettings


def test_every_field_from_prefixed_variables(tmp_path: Path):
    env = {
        "ULTRAVQA_KAFKA_BOOTSTRAP_SERVERS": "k1:9093,k2:9093",
        "ULTRAVQA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "ULTRAVQA_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "ULTRAVQA_KAFKA_SASL_USERNAME": "scorer",
        "ULTRAVQA_KAFKA_SASL_PASSWORD": "s3cret",
        "ULTRAVQA_KAFKA_SSL_CAFILE": "/etc/kafka/ca.crt",
        "ULTRAVQA_KAFKA_SESSION_TIMEOUT_MS": "10000",
        "OTHER_BOOTSTRAP_SERVERS": "ignored:1",
    }
    settings = KafkaSettings.from_env(environ=env)
    assert settings.bootstrap_servers == "k1:9093,k2:9093"
    assert settings.session_timeout_ms == 10000
    kw = settings.producer_kwargs()
    assert kw["bootstrap_servers"] == ["k1:9093", "k2:9093"]
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kw["sasl_plain_username"] == "scorer" and kw["sasl_plain_password"] == "s3cret"
    assert kw["ssl_cafile"] == "/etc/kafka/ca.crt"
    assert "s3cret" not in repr(settings)  # a SecretStr never shows in logs


def test_password_file_and_overrides(tmp_path: Path):
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    env = {
        "APP_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "APP_SASL_MECHANISM": "SCRAM-SHA-256",
        "APP_SASL_USERNAME": "u",
        "APP_SASL_PASSWORD_FILE": str(secret),
        "APP_CLIENT_ID": "from-env",
    }
    settings = KafkaSettings.from_env("APP_", environ=env, client_id="override")
    assert settings.sasl_password.get_secret_value() == "from-file"
    assert settings.client_id == "override"


def test_defaults_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ULTRAVQA_KAFKA_BOOTSTRAP_SERVERS", "real-env:1")
    assert KafkaSettings.from_env().bootstrap_servers == "real-env:1"  # os.environ by default
    assert KafkaSettings.from_env(environ={}) == KafkaSettings()
    with pytest.raises(ValueError, match="not both"):
        KafkaSettings.from_env(
            environ={
                "ULTRAVQA_KAFKA_SASL_PASSWORD": "a",
                "ULTRAVQA_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "p"),
            }
        )
    with pytest.raises(ValueError, match="cannot read"):
        KafkaSettings.from_env(environ={"ULTRAVQA_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "missing")})
    with pytest.raises(ValueError, match="security_protocol"):
        KafkaSettings.from_env(environ={"ULTRAVQA_KAFKA_SECURITY_PROTOCOL": "TLS"})
