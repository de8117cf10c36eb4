"""The scorer on tiny models of every supported class: read-out, one-pass equality, batching, training.

The equality tests compare the one-pass path (shared prefix once with a KV cache, the dimension
suffixes as a batch with explicit positions) against one plain forward per (video, dimension) in
which the model computes its own multimodal positions. The tiny models are initialised wide enough
that the score distributions differ between videos and dimensions by far more than the tolerance.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from connectors.wire.dimensions import DIMENSIONS, Dimension
from connectors.wire.errors import ProcessingError
from connectors.wire.messages import DimensionScore
from ultravqa_ray.losses.sft import sft_loss
from ultravqa_ray.model import ModelConfig, ScorerModel, TrainingSample, build_tiny_model
from ultravqa_ray.model.families import family_for
from ultravqa_ray.model.oracle import full_forward_log_probs, rationale_log_probs
from ultravqa_ray.model.scorer import resolve_device_dtype
from ultravqa_ray.model.tiny import SPECIAL_TOKENS
from ultravqa_ray.train.adapter import build_training_batch, forward_train
from ultravqa_ray.video import VideoClip

from .conftest import ARCHS

TOL = 1e-4
CLASSES = {
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
}


@pytest.fixture(scope="module")
def videos(real_clips, long_small_clip):
    """Three clips of different sizes and lengths: their prompts differ in length (left padding)."""
    return [real_clips[0], real_clips[1], long_small_clip]


@pytest.mark.parametrize("arch", ARCHS)
def test_every_class_loads_from_pretrained_and_scores_a_real_clip(arch, tiny_dirs, scorers, real_clips):
    scorer = scorers[arch]
    assert type(scorer.model).__name__ == CLASSES[arch]
    tok = AutoTokenizer.from_pretrained(tiny_dirs[arch])
    config = scorer.model.config
    assert config.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    assert config.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert all(len(tok.encode(t, add_special_tokens=False)) == 1 for t in SPECIAL_TOKENS)
    text = config.text_config
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2

    (result,) = scorer.score_clips([real_clips[0]])
    assert list(result) == list(DIMENSIONS)
    for d in DIMENSIONS:
        s = result[d]
        assert isinstance(s, DimensionScore) and len(s.probs) == 5
        assert abs(sum(s.probs) - 1) < 1e-6
        assert 1 <= s.score <= 5
        assert s.label == int(np.argmax(s.probs)) + 1
        assert abs(s.score - sum((i + 1) * p for i, p in enumerate(s.probs))) < 1e-9


@pytest.mark.parametrize("arch", ARCHS)
def test_one_pass_equals_the_full_forward_of_each_prompt(arch, scorers, videos):
    scorer = scorers[arch]
    one_pass = scorer.score_log_probs(videos).exp()
    full = full_forward_log_probs(scorer, videos).exp()
    assert one_pass.shape == full.shape == (3, 5, 5)
    assert (one_pass - full).abs().max() < TOL
    # the comparison has teeth: distributions differ between dimensions and between videos
    assert (one_pass[:, 0] - one_pass[:, 1]).abs().max() > 100 * TOL
    assert (one_pass[0] - one_pass[2]).abs().max() > 100 * TOL


@pytest.mark.parametrize("arch", ARCHS)
def test_scores_do_not_depend_on_batch_size_padding_or_dimension_order(arch, scorers, videos):
    scorer = scorers[arch]
    lengths = {len(scorer.prompts.prefix(scorer.prepare_video(v).tokens)[0]) for v in videos}
    assert len(lengths) == 3, "the three prompts must differ in length so that left padding happens"
    together = scorer.score_log_probs(videos)
    alone = torch.cat([scorer.score_log_probs([v]) for v in videos])
    assert (together.exp() - alone.exp()).abs().max() < TOL
    reversed_dims = tuple(reversed(DIMENSIONS))
    backwards = scorer.score_log_probs(videos, reversed_dims).flip(1)
    assert (together.exp() - backwards.exp()).abs().max() < TOL
    one_dim = scorer.score_log_probs(videos, [Dimension.CONTENT_QUALITY])
    assert (together[:, 3:4].exp() - one_dim.exp()).abs().max() < TOL


def test_chunks_of_the_batch_give_the_same_scores(tiny_dirs, videos, scorers):
    small = ScorerModel(
        ModelConfig(name_or_path=str(tiny_dirs["qwen2_vl"]), max_videos_per_forward=2)
    ).setup()
    a = small.score_clips(videos)
    b = scorers["qwen2_vl"].score_clips(videos)
    for x, y in zip(a, b, strict=True):
        for d in DIMENSIONS:
            assert abs(x[d].score - y[d].score) < TOL


def test_k10_works_end_to_end(tmp_path, real_clips):
    folder = build_tiny_model("qwen2_5_vl", tmp_path / "k10", k=10, seed=3)
    scorer = ScorerModel(ModelConfig(name_or_path=str(folder), k=10)).setup()
    assert scorer.prompts.levels[-1] == "10"
    (result,) = scorer.score_clips([real_clips[0]])
    for d in DIMENSIONS:
        assert len(result[d].probs) == 10
        assert 1 <= result[d].score <= 10 and 1 <= result[d].label <= 10
    one_pass = scorer.score_log_probs([real_clips[0]]).exp()
    assert (one_pass - full_forward_log_probs(scorer, [real_clips[0]]).exp()).abs().max() < TOL


def test_an_unsetup_scorer_pickles_small_and_works_after_setup(tiny_dirs, real_clips):
    scorer = ScorerModel(ModelConfig(name_or_path=str(tiny_dirs["qwen3_vl"])))
    blob = pickle.dumps(scorer)
    assert len(blob) < 4096
    clone = pickle.loads(blob)
    assert not clone.is_setup
    with pytest.raises(RuntimeError, match="setup"):
        clone.score_clips([real_clips[0]])
    clone.setup()
    assert clone.score_clips([real_clips[0]])[0][Dimension.MOTION_QUALITY].label >= 1
    assert len(pickle.dumps(clone)) < 4096, "a set-up scorer ships its config, never its weights"


def test_model_ref_is_a_content_hash_of_the_weights(tiny_dirs, scorers, tmp_path):
    ref = scorers["qwen2_vl"].model_ref
    assert ref.name == str(tiny_dirs["qwen2_vl"]) and ref.revision.startswith("sha256:")
    again = ScorerModel(ModelConfig(name_or_path=str(tiny_dirs["qwen2_vl"]))).model_ref  # no setup needed
    assert again == ref
    other = build_tiny_model("qwen2_vl", tmp_path / "other", seed=1)
    assert ScorerModel(ModelConfig(name_or_path=str(other))).model_ref.revision != ref.revision


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen3_vl"])
def test_rationale_generation_then_score_equals_the_full_forward(arch, tiny_dirs, videos):
    scorer = ScorerModel(ModelConfig(name_or_path=str(tiny_dirs[arch]), rationale_max_new_tokens=6)).setup()
    log_probs, written = rationale_log_probs(scorer, videos[:2])
    assert len(written) == 2 and all(len(per_video) == 5 for per_video in written)
    assert all(len(ids) <= 6 for per_video in written for ids in per_video)
    banned = set(scorer.family.ids.values())
    assert not banned & {t for per_video in written for ids in per_video for t in ids}
    full = full_forward_log_probs(scorer, videos[:2], rationale_ids=written)
    assert (log_probs.exp() - full.exp()).abs().max() < TOL
    (result,) = scorer.score_clips(videos[:1], rationale=True)
    assert result.rationale is not None and set(result.rationale) == set(DIMENSIONS)
    assert all(isinstance(text, str) for text in result.rationale.values())
    assert scorer.score_clips(videos[:1])[0].rationale is None, "no rationale unless asked"


def test_training_batch_score_logits_match_scoring_and_carry_gradients(tiny_dirs, videos):
    scorer = ScorerModel(ModelConfig(name_or_path=str(tiny_dirs["qwen2_5_vl"]))).setup()
    samples = [
        TrainingSample(videos[0], Dimension.CLARITY_QUALITY, 4, "Sharp frames, little noise."),
        TrainingSample(videos[1], Dimension.MOTION_QUALITY, 2),
        TrainingSample(videos[0], Dimension.AESTHETIC_QUALITY, 5),  # same video object: preprocessed once
    ]
    batch = build_training_batch(scorer, samples)
    assert batch.input_ids.shape[0] == 3 and batch.position_ids.shape == (3, *batch.input_ids.shape)
    assert batch.video_grid_thw.shape == (3, 3) and batch.score_level.tolist() == [4, 2, 5]
    rows = torch.arange(3)
    score_ids = scorer.score_token_ids
    assert torch.equal(batch.labels[rows, batch.score_index + 1], score_ids[batch.score_level - 1])
    assert batch.rationale_mask.sum(-1).tolist()[1:] == [0, 0] and batch.rationale_mask[0].sum() > 0

    scorer.model.eval()
    with torch.no_grad():
        logits = forward_train(scorer, batch).score_logits
    assert logits.shape == (3, 5)
    rationale = [scorer.tokenizer.encode("Sharp frames, little noise.", add_special_tokens=False)]
    expected = torch.stack(
        [
            full_forward_log_probs(scorer,
                [videos[0]], [Dimension.CLARITY_QUALITY], rationale_ids=[rationale]
            )[0, 0],
            full_forward_log_probs(scorer, [videos[1]], [Dimension.MOTION_QUALITY])[0, 0],
            full_forward_log_probs(scorer, [videos[0]], [Dimension.AESTHETIC_QUALITY])[0, 0],
        ]
    )
    assert (torch.log_softmax(logits, -1).exp() - expected.exp()).abs().max() < TOL

    scorer.model.train()
    out = forward_train(scorer, batch)
    assert out.logits.shape[:2] == out.labels.shape == out.rationale_mask.shape
    assert torch.equal(out.labels[rows, batch.score_index - out.offset + 1], score_ids[batch.score_level - 1])
    loss = sft_loss(out.logits, out.labels) + torch.nn.functional.cross_entropy(
        out.score_logits, batch.score_level - 1
    )
    assert torch.isfinite(loss)
    loss.backward()
    model = scorer.model
    assert model.lm_head.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.model.visual.parameters())
    model.zero_grad()
    model.eval()


def test_device_and_dtype_resolution():
    device, dtype = resolve_device_dtype("auto", "auto")
    if torch.cuda.is_available():
        assert (device.type, dtype) == ("cuda", torch.bfloat16)
    else:
        assert (device.type, dtype) == ("cpu", torch.float32)
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device_dtype("cuda", "auto")
    assert resolve_device_dtype("cpu", "bfloat16") == (torch.device("cpu"), torch.bfloat16)


def test_unsupported_families_are_named():
    with pytest.raises(ValueError, match="no scorer adapter for model_type 'llava'.*qwen2_5_vl"):
        family_for("llava")


def test_clip_records_carry_consistent_times():
    clip = VideoClip.from_frames(np.zeros((4, 32, 32, 3), np.uint8), fps=2.0)
    assert clip.timestamps_s.tolist() == [0.0, 0.5, 1.0, 1.5] and clip.sampled_fps(9.0) == 2.0
    frozen = VideoClip(**{**clip.__dict__, "timestamps_s": np.zeros(4), "duration_s": 8.0})
    assert frozen.sampled_fps(9.0) == 0.5  # all frames at one time: T / duration
    assert VideoClip(**{**frozen.__dict__, "duration_s": 0.0}).sampled_fps(9.0) == 9.0
    with pytest.raises(ValueError, match="one float per frame"):
        VideoClip(**{**clip.__dict__, "timestamps_s": np.zeros(3)})
    with pytest.raises(ValueError, match="must not decrease"):
        VideoClip(**{**clip.__dict__, "timestamps_s": np.array([0.0, 1.0, 0.5, 2.0])})
    with pytest.raises(ValueError, match="uint8"):
        VideoClip.from_frames(np.zeros((2, 8, 8, 3), np.float32), fps=1.0)


def test_score_clips_refuses_bare_frames_and_fails_only_the_chunk_it_could_not_score(scorers, real_clips):
    scorer = scorers["qwen2_vl"]
    with pytest.raises(TypeError, match="VideoClip"):
        scorer.score_clips([real_clips[0].frames])
    # one chunk per clip: a clip the preprocessor refuses (aspect ratio over 200) fails its chunk only
    small = ScorerModel(scorer.config.model_copy(update={"max_videos_per_forward": 1})).setup()
    strip = VideoClip.from_frames(np.zeros((2, 1, 400, 3), np.uint8), fps=2.0)
    results = small.score_clips([real_clips[0], strip, real_clips[0]])
    assert isinstance(results[0], type(results[2])) and not isinstance(results[0], ProcessingError)
    assert isinstance(results[1], ProcessingError) and results[1].kind.value == "internal"
    assert "scoring failed" in results[1].message
