"""The training command lines: ``ultravqa-ray train|reference|eval --help``, the jobs' parsers, and
the shipped YAML configs loading into their typed configs with ``--set`` overrides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ultravqa_ray.cli import build_parser
from ultravqa_ray.config import ConfigError
from ultravqa_ray.train.config import EvalConfig, ReferenceConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "sft", "--help"], "--config"),
        (["train", "aso", "--help"], "--reference"),
        (["train", "grpo", "--help"], "--set"),
        (["eval", "--help"], "--mos-csv"),
        (["reference", "--help"], "--output"),
        (["model", "default", "--help"], "--out"),
    ],
)
def test_cli_help(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 0
    assert expected in capsys.readouterr().out


def test_cli_train_flags_become_overrides():
    from ultravqa_ray.cli._config import load_config
    from ultravqa_ray.cli.train import _SHORTCUTS

    args = build_parser().parse_args(["train", "aso", "--model", "m", "--manifest", "x.jsonl", "--workers", "2",
                                      "--reference", "r.parquet", "--set", "aso.beta=0.05"])  # fmt: skip
    args.config = ROOT / "jobs/configs/aso.yaml"
    cfg = load_config(TrainConfig, args, _SHORTCUTS, first=[f"objective={args.objective}"])
    assert (cfg.objective, cfg.model.name_or_path, cfg.workers, cfg.aso.beta) == ("aso", "m", 2, 0.05)
    assert cfg.data.reference == str(Path.cwd() / "r.parquet")  # resolved against the caller's cwd


def test_job_configs_load_with_overrides():
    sft = TrainConfig.load(ROOT / "jobs/configs/sft.yaml", ["workers=4", "strategy=fsdp2", "data.decode.num_frames=16"])
    assert (sft.objective, sft.workers, sft.strategy, sft.data.decode.num_frames) == ("sft", 4, "fsdp2", 16)
    assert ReferenceConfig.load(ROOT / "jobs/configs/reference.yaml").data.decode.height == 64
    assert EvalConfig.load(ROOT / "jobs/configs/eval.yaml", ["manifest=null", "mos_csv=k.csv"]).mos_csv == str(Path.cwd() / "k.csv")
    with pytest.raises(ValueError, match="needs data.reference"):
        TrainConfig.load(ROOT / "jobs/configs/sft.yaml", ["objective=aso"])
    with pytest.raises(ConfigError):
        TrainConfig.load(ROOT / "jobs/configs/sft.yaml", ["workers"])


@pytest.mark.parametrize("job", ["train_sft", "train_aso", "reference_pass", "evaluate"])
def test_jobs_run_with_plain_python(job):
    proc = subprocess.run([sys.executable, f"jobs/{job}.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "--config" in proc.stdout and "--set" in proc.stdout


def test_cli_reports_a_bad_config_in_one_line(tmp_path):
    from ultravqa_ray.cli import main

    assert main(["train", "aso", "--model", "m", "--manifest", str(tmp_path / "none.jsonl")]) == 1
