"""The HTTP ingress: ``POST /score`` (a URI or an upload event -> the score event) and ``GET /healthz``.

A bad input answers with a 4xx status and ``{"error_kind": ..., "error": ...}`` naming the problem
(:data:`~ultravqa_ray.serve.requests.STATUS_OF_KIND`); a fault of ours with 5xx. Ray's own
Prometheus metrics and the project's counters (:mod:`ultravqa_ray.serve.metrics`) are exported by
Ray's metrics agent, not by this route.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations at runtime.
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve

from connectors.wire.errors import ProcessingError
from ultravqa_ray.serve.metrics import ScoringMetrics
from ultravqa_ray.serve.outcome import ScoreOutcome
from ultravqa_ray.serve.requests import STATUS_OF_KIND, upload_from_request

api = FastAPI(
    title="UltraVQA-Ray scorer",
    description="Per-dimension video quality scores (motion, amplitude, aesthetic, content, clarity).",
)


@serve.deployment(name="ScoreAPI", ray_actor_options={"num_cpus": 0.1})
@serve.ingress(api)
class ScoreAPI:
    def __init__(self, scorer) -> None:
        self._scorer = scorer  # DeploymentHandle of Scorer
        self._metrics = ScoringMetrics("http", in_replica=True)

    @api.post("/score")
    async def score(self, request: Request) -> Response:
        """Score one video: body ``{"uri": "..."}`` (short form) or a full upload event."""
        try:
            upload = upload_from_request(await request.body())
        except ProcessingError as exc:
            self._metrics.record_failed(exc.kind)
            return self._error(ScoreOutcome.failed(exc))
        outcome: ScoreOutcome = await self._scorer.score.remote(upload)
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
