"""The scoring application on local Serve: the HTTP route answers score events and clear errors,
the Scorer batches, and ``reconfigure`` retunes batching on the live replica."""

from __future__ import annotations

import asyncio
import shutil

import pytest
import requests

from connectors.wire.messages import ScoreEvent
from tests.fixtures.clips import make_clip
from tests.fixtures.serve import APP


@pytest.fixture(scope="module")
def good_clip(allowed_dir):
    return make_clip(allowed_dir / "http-good.mp4", n_frames=20, size=(96, 64))


@pytest.fixture(scope="module")
def route(serve_app, serve_http) -> str:
    return f"{serve_http}/score-test/score"


def test_post_uri_returns_the_score_event(route, good_clip):
    reply = requests.post(route, json={"uri": str(good_clip)}, timeout=60)
    assert reply.status_code == 200, reply.text
    event = ScoreEvent.from_bytes(reply.content)
    assert event.video_id == "http-good.mp4" and event.uri == str(good_clip)
    assert len(event.scores) == 5 and all(1 <= s.score <= 5 for s in event.scores.values())
    assert event.decode.frames == 8 and event.decode.width == 96
    assert event.timings_ms.total >= event.timings_ms.decode


def test_post_upload_event_with_a_subset_of_dimensions(route, good_clip):
    body = {"video_id": "v-1", "uri": str(good_clip), "dimensions": ["clarity_quality"],
            "event_time": "2026-01-01T00:00:00Z"}  # fmt: skip
    reply = requests.post(route, json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    assert list(ScoreEvent.from_bytes(reply.content).scores) == ["clarity_quality"]


@pytest.mark.parametrize(
    ("body", "status", "kind", "words"),
    [
        (b"{not json", 422, "invalid_message", "not JSON"),
        (b'["a list"]', 422, "invalid_message", "JSON object"),
        (b'{"uri": "x.mp4", "colour": "red"}', 422, "invalid_message", "colour"),
        (b'{"video_id": "no-uri"}', 422, "invalid_message", "uri"),
        (b'{"uri": "/etc/passwd"}', 403, "forbidden", "allow"),
    ],
)
def test_bad_requests_name_the_problem(route, body, status, kind, words):
    reply = requests.post(route, data=body, headers={"content-type": "application/json"}, timeout=60)
    assert reply.status_code == status, reply.text
    assert reply.json()["error_kind"] == kind
    assert words.lower() in reply.json()["error"].lower()


def test_bad_videos_name_the_problem(route, allowed_dir, bad_inputs):
    text = str(shutil.copy(bad_inputs["text"], allowed_dir / "http-notes.mp4"))
    cases = {
        str(allowed_dir / "nope.mp4"): (404, "not_found"),
        text: (415, "not_a_video"),
    }
    big = make_clip(allowed_dir / "http-big.mp4", n_frames=2, size=(1280, 960))  # over max_pixels
    cases[str(big)] = (413, "too_large")
    for uri, (status, kind) in cases.items():
        reply = requests.post(route, json={"uri": uri}, timeout=60)
        assert (reply.status_code, reply.json()["error_kind"]) == (status, kind), reply.text
        assert uri.rsplit("/", 1)[-1] in reply.json()["error"]


def test_health_names_the_model(serve_app, serve_http):
    reply = requests.get(f"{serve_http}/score-test/healthz", timeout=30)
    assert reply.status_code == 200
    assert reply.json()["status"] == "ok" and reply.json()["model"]["revision"].startswith("sha256:")


def test_scorer_batches_and_reconfigure_retunes_it_live(serve_app, good_clip):
    """Concurrent requests share forwards; a new user_config reaches reconfigure()."""
    from ray import serve

    from connectors.wire.messages import UploadEvent
    from ultravqa_ray.serve.app import build_application

    handle = serve.get_deployment_handle("Scorer", APP)
    upload = UploadEvent(video_id="b", uri=str(good_clip), event_time="2026-01-01T00:00:00Z")
    before = handle.stats.remote().result()
    assert before["max_batch_size"] == 4
    assert before["torch_threads"] == 1  # ServeConfig.torch_threads reached the replica
    assert before["decode_pool"] == "processes" and before["decode_workers"] == 1  # one per reserved CPU (0.5)
    assert before["omp_wait_policy"] == "PASSIVE"  # the code default runtime_env reached the replica

    async def burst(n):
        return await asyncio.gather(*[handle.score.remote(upload) for _ in range(n)])

    assert all(o.ok for o in asyncio.run(burst(12)))
    after = handle.stats.remote().result()
    videos, forwards = after["videos"] - before["videos"], after["forwards"] - before["forwards"]
    assert videos == 12 and forwards < 12, (videos, forwards)  # batches formed (at most 4 a forward)
    assert forwards >= 3

    retuned = serve_app.override(["scorer.batching.max_batch_size=2", "scorer.batching.batch_wait_timeout_s=0.05"])
    serve.run(build_application(retuned), name=APP, route_prefix="/score-test")
    live = serve.get_deployment_handle("Scorer", APP).stats.remote().result()
    assert live["max_batch_size"] == 2 and live["batch_wait_timeout_s"] == 0.05
    # (An imperative serve.run starts a new code version, so this shows the values reach
    # reconfigure(); the in-place update of a YAML user_config change is Serve's own behaviour.)
    serve.run(build_application(serve_app), name=APP, route_prefix="/score-test")  # back for other tests


def test_score_many_answers_each_upload_in_order_and_shares_forwards(serve_app, good_clip, allowed_dir):
    """The bridge's chunk request: one outcome per upload, in order, bad ones failed; good ones batched."""
    from ray import serve

    from connectors.wire.messages import UploadEvent

    handle = serve.get_deployment_handle("Scorer", APP)
    uris = [good_clip, allowed_dir / "many-missing.mp4", good_clip, good_clip, good_clip]
    uploads = [UploadEvent(video_id=f"m{i}", uri=str(u), event_time="2026-01-01T00:00:00Z") for i, u in enumerate(uris)]
    before = handle.stats.remote().result()
    outcomes = handle.score_many.remote(uploads).result()
    after = handle.stats.remote().result()
    assert [o.ok for o in outcomes] == [True, False, True, True, True]
    assert [o.event.video_id for o in outcomes if o.ok] == ["m0", "m2", "m3", "m4"]
    assert outcomes[1].error_kind.value == "not_found" and "many-missing.mp4" in outcomes[1].error
    assert after["videos"] - before["videos"] == 4
    assert after["forwards"] - before["forwards"] == 1  # decoded first, then one forward (batch of 4)


def test_project_counters_reach_rays_prometheus_endpoint(route, good_clip, serve_app):
    """scored / dead-lettered by kind / latency histogram, exported by the node's metrics agent."""
    import time

    import ray

    requests.post(route, json={"uri": str(good_clip)}, timeout=60).raise_for_status()
    requests.post(route, json={"uri": "/etc/passwd"}, timeout=60)
    port = ray.nodes()[0]["MetricsExportPort"]
    wanted = ("ultravqa_scored_total", 'kind="forbidden"', "ultravqa_score_latency_ms_bucket")
    deadline, text = time.monotonic() + 60, ""
    while time.monotonic() < deadline:  # the agent exports every few seconds
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        if all(w in text for w in wanted):
            break
        time.sleep(2)
    assert all(w in text for w in wanted), [w for w in wanted if w not in text]
    assert 'component="scorer"' in text and 'component="http"' in text


def test_post_video_bytes_raw_and_multipart(route, good_clip):
    """The video's bytes, as the raw body or as a multipart file part, are scored like its URI."""
    data = good_clip.read_bytes()
    raw = requests.post(route, data=data, params={"video_id": "raw-1", "dimensions": "clarity_quality"},
                        headers={"content-type": "video/mp4"}, timeout=60)  # fmt: skip
    assert raw.status_code == 200, raw.text
    event = ScoreEvent.from_bytes(raw.content)
    assert (event.video_id, event.uri, list(event.scores)) == ("raw-1", "upload:raw-1", ["clarity_quality"])
    assert event.decode.frames == 8 and event.decode.width == 96
    by_uri = ScoreEvent.from_bytes(requests.post(route, json={"uri": str(good_clip)}, timeout=60).content)
    same = zip(by_uri.scores["clarity_quality"].probs, event.scores["clarity_quality"].probs, strict=True)
    assert max(abs(a - b) for a, b in same) < 1e-5  # same video, same scores (up to batching noise)

    form = requests.post(route, files={"video": ("holiday.mp4", data, "video/mp4")}, timeout=60)
    assert form.status_code == 200, form.text
    assert ScoreEvent.from_bytes(form.content).video_id == "holiday.mp4"  # the one video_id rule
    unnamed = requests.post(route, data=data, headers={"content-type": "application/octet-stream"}, timeout=60)
    assert unnamed.status_code == 200 and ScoreEvent.from_bytes(unnamed.content).video_id.startswith("upload-")


def test_posted_bytes_over_the_limit_or_not_a_video_name_the_problem(route, serve_app):
    limit = serve_app.decode.max_bytes

    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        for _ in range(limit // 65536 + 2):
            yield b"\0" * 65536

    big = requests.post(route, data=chunks(), headers={"content-type": "video/mp4"}, timeout=60)
    assert (big.status_code, big.json()["error_kind"]) == (413, "too_large"), big.text
    assert str(limit) in big.json()["error"]
    declared = requests.post(route, files={"video": ("big.mp4", b"\0" * (limit + 70_000))}, timeout=60)
    assert (declared.status_code, declared.json()["error_kind"]) == (413, "too_large"), declared.text
    garbage = requests.post(route, data=b"these are not the frames you are looking for\n" * 50,
                            headers={"content-type": "video/mp4"}, timeout=60)  # fmt: skip
    assert (garbage.status_code, garbage.json()["error_kind"]) == (415, "not_a_video"), garbage.text
    empty = requests.post(route, files={"note": (None, "no file here")}, timeout=60)
    assert (empty.status_code, empty.json()["error_kind"]) == (422, "invalid_message"), empty.text
