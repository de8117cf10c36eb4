"""The HTTP ingress: ``POST /score`` (a URI, an upload event, or the video's bytes -> the score event)
and ``GET /healthz``.

The video's bytes come as the raw body (``video/*``, ``application/octet-stream``) or as
``multipart/form-data`` (:mod:`ultravqa_ray.serve.uploads`): streamed to a temporary file bounded
by the decode settings' ``max_bytes``, then handed to the Scorer, which decodes them as it decodes
a URI (same error kinds).

A bad input answers with a 4xx status and ``{"error_kind": ..., "error": ...}`` naming the problem
(:data:`~ultravqa_ray.serve.requests.STATUS_OF_KIND`); a fault of ours with 5xx. Ray's own
Prometheus metrics and the project's counters (:mod:`ultravqa_ray.serve.metrics`) are exported by
Ray's metrics agent, not by this route.

Bearer token (``ServeConfig.http_token_env``): when set, ``POST /score`` requires ``Authorization:
Bearer <token>`` with the token read from that environment variable in the replica (in Kubernetes, a
Secret); a request without it, or with another token, gets 401 and is counted
(``ultravqa_http_unauthorized_total``). Off by default (local development); ``GET /healthz`` stays open.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations at runtime.
import hmac

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve

from connectors.wire.errors import ErrorKind, ProcessingError
from ultravqa_ray.serve.http_auth import bearer_token
from ultravqa_ray.serve.metrics import ScoringMetrics
from ultravqa_ray.serve.outcome import ScoreOutcome
from ultravqa_ray.serve.requests import STATUS_OF_KIND, upload_from_request
from ultravqa_ray.serve.uploads import is_bytes_upload, receive_upload
from ultravqa_ray.video import DecodeConfig

api = FastAPI(
    title="UltraVQA-Ray scorer",
    description="Per-dimension video quality scores (motion, amplitude, aesthetic, content, clarity).",
)


@serve.deployment(name="ScoreAPI", ray_actor_options={"num_cpus": 0.1})
@serve.ingress(api)
class ScoreAPI:
    def __init__(self, scorer, max_bytes: int = DecodeConfig().max_bytes, token_env: str | None = None) -> None:
        self._scorer = scorer  # DeploymentHandle of Scorer
        self._max_bytes = max_bytes  # the decode settings' limit, for video bytes posted here
        self._metrics = ScoringMetrics("http", in_replica=True)
        self._token = bearer_token(token_env)

    def _unauthorized(self, request: Request) -> Response | None:
        """None when the request may pass; else the 401 answer (counted)."""
        if self._token is None:
            return None
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._token.encode()):
            return None
        self._metrics.record_unauthorized()
        reason = "missing bearer token" if not given else "wrong bearer token"
        return JSONResponse({"error": f"unauthorized: {reason} (Authorization: Bearer <token>)"},
                            status_code=401, headers={"www-authenticate": "Bearer"})  # fmt: skip

    def unauthorized_total(self) -> int:
        """Requests this replica refused with 401 (also exported as ``ultravqa_http_unauthorized_total``)."""
        return self._metrics.unauthorized_count

    @api.post("/score")
    async def score(self, request: Request) -> Response:
        """Score one video: body ``{"uri": "..."}`` (short form), a full upload event, or the video's
        bytes (raw ``video/*`` / ``application/octet-stream`` body, or ``multipart/form-data``)."""
        if (refused := self._unauthorized(request)) is not None:
            return refused
        try:
            if is_bytes_upload(request.headers.get("content-type", "")):
                return await self._score_bytes(request)
            upload = upload_from_request(await request.body())
        except ProcessingError as exc:
            self._metrics.record_failed(exc.kind)
            return self._error(ScoreOutcome.failed(exc))
        return self._reply(await self._scorer.score.remote(upload))

    async def _score_bytes(self, request: Request) -> Response:
        try:
            spooled = await receive_upload(request.headers, request.query_params, request.stream(), self._max_bytes)
        except ProcessingError:
            raise
        except Exception as exc:  # a fault of ours (disk full, a parser bug): said as internal, never a bare 500
            raise ProcessingError(ErrorKind.INTERNAL, f"receiving the upload failed: {type(exc).__name__}: {exc}") from exc
        try:
            data = spooled.path.read_bytes()
        finally:
            spooled.close()
        return self._reply(await self._scorer.score_bytes.remote(data, spooled.upload))

    def _reply(self, outcome: ScoreOutcome) -> Response:
        if not outcome.ok:
            return self._error(outcome)
        assert outcome.event is not None
        self._metrics.record_scored(outcome.event.timings_ms.total)
        return Response(outcome.event.to_bytes(), media_type="application/json")

    @api.get("/healthz")
    async def healthz(self) -> dict:
        """Ready when a Scorer replica answers; names the model it serves."""
        return {"status": "ok", "model": await self._scorer.model_ref.remote()}

    @staticmethod
    def _error(outcome: ScoreOutcome) -> JSONResponse:
        assert outcome.error_kind is not None
        return JSONResponse(outcome.error_json(), status_code=STATUS_OF_KIND[outcome.error_kind])

