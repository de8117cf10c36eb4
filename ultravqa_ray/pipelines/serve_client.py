"""How the bridge reaches the Scorer: a Ray Serve deployment handle, or the HTTP route.

- ``handle`` (default): the bridge joins the Ray cluster (``ray.init(address)``) and calls
  ``Scorer.score`` through ``serve.get_deployment_handle``: no HTTP hop, pickled messages, Serve's
  own routing and queueing.
- ``http``: the bridge POSTs the upload event to ``<url>/score`` (for bridges outside the cluster).

Both answer a :class:`ScoreOutcome` for an input (a score event or an input error) and raise for
anything else (replica died, Serve unreachable, timeout): those are retried by the caller.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Protocol

from pydantic import Field

from connectors.wire.errors import ErrorKind
from connectors.wire.messages import ScoreEvent, UploadEvent
from ultravqa_ray.config import Config
from ultravqa_ray.serve.outcome import ScoreOutcome

log = logging.getLogger(__name__)


class ScorerTargetConfig(Config):
    mode: Literal["handle", "http"] = Field("handle", description="handle: Serve deployment handle; http: POST.")
    ray_address: str | None = Field(
        None,
        description="Ray cluster to join in handle mode (host:port, ray://..., or 'auto' for whatever runs "
        "here); unset: $RAY_ADDRESS, and an error when that is empty too (or Ray is already joined).",
    )
    app_name: str = Field("ultravqa", description="Serve application name of the Scorer (handle mode).")
    deployment: str = Field("Scorer", description="Deployment name of the Scorer (handle mode).")
    url: str = Field("http://127.0.0.1:8000", description="Base URL of the HTTP route (http mode).")
    request_timeout_s: float = Field(120.0, gt=0, description="Longest wait for one answer before a retry.")
    http_token_env: str | None = Field(
        None, min_length=1, description="http mode: environment variable holding the route's bearer token."
    )


class ScorerClient(Protocol):
    def score(self, upload: UploadEvent) -> ScoreOutcome: ...

    def score_many(self, uploads: list[UploadEvent]) -> list[ScoreOutcome]: ...

    def ping(self) -> None: ...


class HandleClient:
    """Calls ``Scorer.score`` through a Serve deployment handle (joins Ray when asked to)."""

    def __init__(self, config: ScorerTargetConfig) -> None:
        import os

        import ray
        from ray import serve

        if not ray.is_initialized():
            address = config.ray_address or os.environ.get("RAY_ADDRESS")
            if not address:
                raise ValueError(
                    "no Ray cluster named: set scorer.ray_address (e.g. 127.0.0.1:6379) or RAY_ADDRESS"
                )
            ray.init(address=address, log_to_driver=False)
        self._ray = ray
        self._handle = serve.get_deployment_handle(config.deployment, config.app_name)
        self._timeout_s = config.request_timeout_s

    def score(self, upload: UploadEvent) -> ScoreOutcome:
        return self._handle.score.remote(upload).result(timeout_s=self._timeout_s)

    def score_many(self, uploads: list[UploadEvent]) -> list[ScoreOutcome]:
        """One Serve request for the lot (``Scorer.score_many``); one outcome per upload, in order."""
        if not self._ray.is_initialized():  # shutting down: never let a handle call re-join Ray
            raise RuntimeError("Ray is shut down")
        outcomes = self._handle.score_many.remote(uploads).result(timeout_s=self._timeout_s)
        if len(outcomes) != len(uploads):  # a wrong answer is an infrastructure fault: the bridge retries
            raise RuntimeError(f"Scorer answered {len(outcomes)} outcomes for {len(uploads)} uploads")
        return outcomes

    def ping(self) -> None:
        self._handle.model_ref.remote().result(timeout_s=self._timeout_s)


class HttpClient:
    """POSTs upload events to the HTTP route; a JSON ``error_kind`` answer is an input error."""

    def __init__(self, config: ScorerTargetConfig) -> None:
        import requests

        self._requests = requests
        self._local = threading.local()  # one Session per thread: Session is not thread-safe
        self._base = config.url.rstrip("/")
        self._timeout_s = config.request_timeout_s
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="http-score")
        from ultravqa_ray.serve.http_auth import bearer_token

        token = bearer_token(config.http_token_env)
        self._headers = {"content-type": "application/json"}
        if token is not None:
            self._headers["authorization"] = f"Bearer {token}"

    @property
    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._requests.Session()
        return session

    def score_many(self, uploads: list[UploadEvent]) -> list[ScoreOutcome]:
        """The route takes one upload per request: POST them concurrently (up to 8 at a time)."""
        return list(self._pool.map(self.score, uploads))

    def score(self, upload: UploadEvent) -> ScoreOutcome:
        reply = self._session.post(
            f"{self._base}/score", data=upload.to_bytes(), timeout=self._timeout_s, headers=self._headers,
        )  # fmt: skip
        if reply.status_code == 200:
            return ScoreOutcome(event=ScoreEvent.from_bytes(reply.content))
        if reply.status_code == 401:  # a configuration fault, never the upload's: retried, then `internal`
            raise PermissionError(f"{self._base}/score refused the bearer token (401): check http_token_env")
        try:
            body = reply.json()
            return ScoreOutcome(error_kind=ErrorKind(body["error_kind"]), error=str(body["error"]))
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            reply.raise_for_status()
            raise RuntimeError(f"unexpected answer {reply.status_code} from {self._base}/score") from None

    def ping(self) -> None:
        self._session.get(f"{self._base}/healthz", timeout=self._timeout_s).raise_for_status()


def connect(config: ScorerTargetConfig) -> ScorerClient:
    return HandleClient(config) if config.mode == "handle" else HttpClient(config)
