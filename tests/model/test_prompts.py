"""Prompt layout, training labels, and the single-token check of the score strings."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from connectors.wire.dimensions import DIMENSIONS, Dimension
from ultravqa_ray.model import ModelConfig, PromptConfig, ScorerModel, ScoreTokenError
from ultravqa_ray.model.families import TEXT, VIDEO, Qwen2VL, VideoTokens
from ultravqa_ray.model.prompts import IGNORE_INDEX, PromptBuilder, score_token_ids
from ultravqa_ray.model.tiny import build_tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer(10)


@pytest.fixture(scope="module")
def builder(tokenizer):
    return PromptBuilder(tokenizer, Qwen2VL(tokenizer), PromptConfig(), [str(s) for s in range(1, 6)], 5)


def fake_video(tokenizer, n: int = 3) -> VideoTokens:
    fam = Qwen2VL(tokenizer)
    ids = [fam.ids["vision_start"], *[fam.ids["video_pad"]] * n, fam.ids["vision_end"]]
    return VideoTokens(ids=ids, types=[TEXT, *[VIDEO] * n, TEXT])


def test_score_strings_up_to_ten_are_single_tokens(tokenizer):
    ids = score_token_ids(tokenizer, [str(s) for s in range(1, 11)])
    assert len(set(ids)) == 10
    assert tokenizer.convert_ids_to_tokens(ids[-1]) == "10"


def test_a_score_split_into_two_tokens_is_refused_with_its_pieces(tiny_dirs, tmp_path):
    """A tokenizer that prepends a marker (as SentencePiece-style ones do) makes "5" two tokens."""
    folder = tmp_path / "split"
    folder.mkdir()
    for f in tiny_dirs["qwen2_vl"].iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["normalizer"] = {
        "type": "Sequence",
        "normalizers": [spec["normalizer"], {"type": "Prepend", "prepend": "▁"}],
    }
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    tok = AutoTokenizer.from_pretrained(folder)
    assert len(tok.encode("5", add_special_tokens=False)) >= 2
    with pytest.raises(ScoreTokenError) as err:
        ScorerModel(ModelConfig(name_or_path=str(folder))).setup()
    message = str(err.value)
    assert "'1'" in message and "exactly one token" in message and "[" in message
    with pytest.raises(ScoreTokenError, match=r"score string '5' is \d tokens \["):
        score_token_ids(tok, ["5"])


def test_multi_token_score_strings_are_refused(tokenizer):
    with pytest.raises(ScoreTokenError, match="'very good'"):
        score_token_ids(tokenizer, ["1", "very good"])


def test_one_prompt_config_serves_every_dimension(builder, tokenizer):
    questions = {d: tokenizer.decode(builder.question_ids(d)) for d in DIMENSIONS}
    for d, text in questions.items():
        assert d.label in text and d.description in text and "1 (very poor) to 5" in text
    assert len(set(questions.values())) == len(DIMENSIONS)


def test_prompt_matches_the_chat_template(builder, tokenizer):
    video = fake_video(tokenizer, n=1)
    for d in DIMENSIONS:
        ids = builder.prefix(video)[0] + builder.suffix(d, with_answer_prefix=False)
        rendered = tokenizer.apply_chat_template(
            [
                {"role": "system", "content": PromptConfig().system},
                {
                    "role": "user",
                    "content": [{"type": "video"}, {"type": "text", "text": builder.question_text(d)}],
                },
            ],
            tokenize=False,
            add_generation_prompt=True,
        )
        assert tokenizer.decode(ids) == rendered


@pytest.mark.parametrize("rationale", [None, "Sharp frames, little noise."])
def test_training_sequence_labels_score_position_and_rationale_mask(builder, tokenizer, rationale):
    seq = builder.training_sequence(fake_video(tokenizer), Dimension.CLARITY_QUALITY, 4, rationale)
    n = len(seq.ids)
    assert len(seq.labels) == len(seq.types) == len(seq.rationale_mask) == n
    answer = [i for i, label in enumerate(seq.labels) if label != IGNORE_INDEX]
    assert answer == list(range(answer[0], n)), "labels are -100 except one answer span at the end"
    assert [seq.labels[i] for i in answer] == seq.ids[answer[0] :]
    assert seq.ids[-1] == builder.end_id, "the answer ends with the end-of-turn token"
    assert seq.labels[seq.score_index + 1] == builder.score_ids[3], "next token after score_index is '4'"
    assert seq.score_index + 2 == n - 1, "the score is the last answer token before <|im_end|>"
    answer_text = tokenizer.decode(seq.ids[answer[0] : -1])
    assert answer_text == (f"{rationale} Score: 4" if rationale else "Score: 4")
    marked = [i for i, m in enumerate(seq.rationale_mask) if m]
    if rationale is None:
        assert marked == []
    else:
        assert marked[0] == answer[0]
        assert tokenizer.decode([seq.ids[i] for i in marked]) == rationale
    with pytest.raises(ValueError, match="outside 1..5"):
        builder.training_sequence(fake_video(tokenizer), Dimension.CLARITY_QUALITY, 6)


def test_prompt_config_rejects_unknown_placeholders():
    with pytest.raises(ValueError, match="question may use only"):
        PromptConfig(question="Rate {dimension}")
    with pytest.raises(ValueError, match="score_strings has 3 entries"):
        ModelConfig(name_or_path="x", k=5, score_strings=["a", "b", "c"])
    cfg = ModelConfig.load(None, ["name_or_path=m", "k=10", "prompt.answer_prefix='Rating: '"])
    assert cfg.levels[-1] == "10" and cfg.prompt.answer_prefix == "Rating: "
