"""Serve and evaluate a model that lives on the local S3 server (moto), with its manifest there too.

The driver is told where the store is (``AWS_ENDPOINT_URL``) and where to cache models; Serve
replicas get the same through their ``env_vars`` (as a RayService pod would from its env), Ray Data
scoring actors through the driver's forwarded settings (:func:`ultravqa_ray.model.store.forwarded_env`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from connectors.wire.messages import UploadEvent
from tests.fixtures.clips import make_clip
from ultravqa_ray.model.config import ModelConfig
from ultravqa_ray.model.store import CACHE_ENV, write_checksums
from ultravqa_ray.train.default_model import TINY_DECODE, resolve_model
from ultravqa_ray.video.config import DecodeConfig

APP = "ultravqa-s3-test"


def upload_folder(s3_server, folder: Path, bucket: str, prefix: str) -> str:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3_server.upload(bucket, f"{prefix}/{path.relative_to(folder).as_posix()}", path)
    return f"s3://{bucket}/{prefix}"


@pytest.fixture(scope="module")
def remote_model(s3_server, tmp_path_factory) -> tuple[str, dict[str, str]]:
    """The untrained tiny model (with checksums) at ``s3://models/serve-tiny``, and the env to reach it."""
    root = tmp_path_factory.mktemp("remote-model")
    folder = root / "model"
    shutil.copytree(resolve_model("tiny", root / "build"), folder)
    write_checksums(folder)
    credentials = root / "aws-credentials"  # what the workers read: a path travels, never a key
    credentials.write_text("[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    env = {"AWS_ENDPOINT_URL": s3_server.url, CACHE_ENV: str(root / "cache"),
           "AWS_SHARED_CREDENTIALS_FILE": str(credentials)}  # fmt: skip
    return upload_folder(s3_server, folder, "models", "serve-tiny"), env


def test_serve_loads_the_model_from_s3(serve_http, remote_model, clip_dir, monkeypatch):
    from ray import serve

    from ultravqa_ray.serve.app import build_application
    from ultravqa_ray.serve.config import ServeConfig

    uri, env = remote_model
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = ServeConfig.model_validate(
        {
            "model": uri,
            "storage": {"allow": [str(clip_dir)]},
            "torch_threads": 1,
            "http": False,
            "scorer": {"num_replicas": 1, "num_cpus": 0.25, "env_vars": {"OMP_WAIT_POLICY": "PASSIVE", **env},
                       "graceful_shutdown_timeout_s": 1},
        }
    )  # fmt: skip
    serve.run(build_application(config), name=APP, route_prefix=None)
    try:
        handle = serve.get_deployment_handle("Scorer", APP)
        clip = make_clip(clip_dir / "s3-model.mp4", n_frames=12, size=(64, 48))
        outcome = handle.score.remote(UploadEvent(video_id="s3m", uri=str(clip), event_time="2026-01-01T00:00:00Z"))
        result = outcome.result(timeout_s=60)
        assert result.ok, result
        assert result.event.model.name == uri and result.event.decode.frames == TINY_DECODE.num_frames
    finally:
        serve.delete(APP)


@pytest.mark.slow  # a Ray Data evaluation: 91 s on the shared 2-core machine (load average ~50)
def test_evaluate_reads_model_and_manifest_from_s3(ray_local, s3_server, remote_model, tmp_path, monkeypatch):
    from ultravqa_ray.data.config import SynthConfig
    from ultravqa_ray.data.synth import generate_corpus
    from ultravqa_ray.train.config import EvalConfig
    from ultravqa_ray.train.evaluate import evaluate

    uri, env = remote_model
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    manifest = generate_corpus(tmp_path / "corpus", SynthConfig(n=3, seed=5, width=64, height=64, duration_s=1.0, workers=1))
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    body = "".join(json.dumps({**r, "uri": str(manifest.parent / r["uri"])}) + "\n" for r in rows)
    manifest_uri = s3_server.upload("data", "heldout/manifest.jsonl", body.encode())  # videos stay local
    decode = DecodeConfig(num_frames=4, height=64, width=64, threads=1)
    out = evaluate(EvalConfig(model=ModelConfig(name_or_path=uri, device="cpu"), manifest=manifest_uri,
                              decode=decode, out=str(tmp_path / "eval"), cpus_per_actor=0.5))  # fmt: skip
    metrics = json.loads(out.metrics_json.read_text())
    assert metrics["n_records"] == 3 and not metrics["missing"]
