"""The HTTP route's optional bearer token: refused requests get 401 and are counted; the bridge's
HTTP client sends the token. The route is the real ``ScoreAPI`` in front of a real Scorer."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
import requests

from connectors.wire.messages import ScoreEvent, UploadEvent
from tests.fixtures.clips import make_clip

TOKEN_ENV = "ULTRAVQA_TEST_HTTP_TOKEN"
TOKEN = "t0ken-for-tests"


@pytest.fixture(scope="module")
def auth_route(serve_app, serve_http):
    """``ScoreAPI`` with ``http_token_env`` set, its replica given the token in its environment."""
    from ray import serve

    from ultravqa_ray.serve.app import build_application
    from ultravqa_ray.serve.http import ScoreAPI

    scorer = build_application(serve_app.model_copy(update={"http": False}))
    app = ScoreAPI.options(ray_actor_options={"num_cpus": 0.05, "runtime_env": {"env_vars": {TOKEN_ENV: TOKEN}}}).bind(
        scorer, token_env=TOKEN_ENV
    )
    serve.run(app, name="auth-test", route_prefix="/auth-test")
    yield f"{serve_http}/auth-test"
    serve.delete("auth-test")


def test_score_without_or_with_a_wrong_token_is_401_and_counted(auth_route, allowed_dir):
    from ray import serve

    clip = make_clip(allowed_dir / "auth.mp4", n_frames=10, size=(80, 64))
    missing = requests.post(f"{auth_route}/score", json={"uri": str(clip)}, timeout=60)
    assert missing.status_code == 401 and "missing bearer token" in missing.json()["error"]
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = requests.post(f"{auth_route}/score", json={"uri": str(clip)}, timeout=60,
                          headers={"authorization": "Bearer nope"})  # fmt: skip
    assert wrong.status_code == 401 and "wrong bearer token" in wrong.json()["error"]
    good = requests.post(f"{auth_route}/score", json={"uri": str(clip)}, timeout=60,
                         headers={"authorization": f"Bearer {TOKEN}"})  # fmt: skip
    assert good.status_code == 200, good.text
    assert len(ScoreEvent.from_bytes(good.content).scores) == 5
    assert requests.get(f"{auth_route}/healthz", timeout=60).status_code == 200  # probes stay open
    handle = serve.get_deployment_handle("ScoreAPI", "auth-test")
    assert handle.unauthorized_total.remote().result(timeout_s=30) == 2


def test_bridge_http_client_sends_the_token(auth_route, allowed_dir, monkeypatch):
    from ultravqa_ray.pipelines.serve_client import HttpClient, ScorerTargetConfig

    clip = make_clip(allowed_dir / "auth-client.mp4", n_frames=10, size=(80, 64))
    upload = UploadEvent(video_id="auth-client", uri=str(clip), event_time=datetime.now(UTC))
    with pytest.raises(PermissionError, match="401"):  # no token: a configuration fault, retried
        HttpClient(ScorerTargetConfig(mode="http", url=auth_route)).score(upload)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    client = HttpClient(ScorerTargetConfig(mode="http", url=auth_route, http_token_env=TOKEN_ENV))
    outcome = client.score(upload)
    assert outcome.ok and outcome.event.video_id == "auth-client"
    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(ValueError, match=TOKEN_ENV):  # named but empty: refused at start
        HttpClient(ScorerTargetConfig(mode="http", url=auth_route, http_token_env=TOKEN_ENV))
    assert os.environ.get(TOKEN_ENV) is None
