"""The ``label`` command group: --help, and the hook through which ``label select`` joins it."""

from __future__ import annotations

import importlib.machinery
import sys
import types

import pytest

from ultravqa_ray.cli import build_parser, main


def test_label_actions_have_help(capsys):
    for action in ("install", "server", "push", "pull", "import", "report"):
        with pytest.raises(SystemExit) as done:
            main(["label", action, "--help"])
        assert done.value.code == 0
        assert "usage: ultravqa-ray label " + action in capsys.readouterr().out


def test_label_select_registers_itself_when_its_module_exists(monkeypatch):
    name = "ultravqa_ray.cli.label_select"
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)

    def register(actions):
        p = actions.add_parser("select", help="choose uploads to rate")
        p.add_argument("--n", type=int)
        p.set_defaults(func=lambda args: 0)

    module.register = register
    monkeypatch.setitem(sys.modules, name, module)
    args = build_parser().parse_args(["label", "select", "--n", "5"])
    assert args.action == "select" and args.n == 5


def test_push_needs_one_source_and_a_sane_gold_rate(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "unused")
    with pytest.raises(SystemExit):
        main(["label", "push"])
    uploads = tmp_path / "u.jsonl"
    uploads.write_text('{"video_id": "a", "uri": "/v/a.mp4"}\n')
    assert main(["label", "push", "--uploads", str(uploads), "--gold", str(uploads), "--gold-rate", "2"]) == 1
    assert "--gold-rate 2.0 must lie in 0..1" in capsys.readouterr().err
    uploads.write_text('{"video_id": "a"}\n')
    assert main(["label", "push", "--uploads", str(uploads)]) == 1
    assert "line 1: needs non-empty string fields video_id and uri" in capsys.readouterr().err
