"""Paths are resolved against the caller's working directory by ``Config.load`` (docs/contracts.md):
local names become absolute, URIs and hub ids stay as they are, in every command and job config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ultravqa_ray.config import PathRole, resolve_path
from ultravqa_ray.pipelines.score_batch_config import ScoreBatchConfig
from ultravqa_ray.train.config import EvalConfig, ReferenceConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
LOCAL, MODEL = PathRole.LOCAL, PathRole.MODEL


@pytest.mark.parametrize(
    "value, role, expected",
    [
        ("data/train/manifest.jsonl", LOCAL, "{base}/data/train/manifest.jsonl"),
        ("./x/../y.parquet", LOCAL, "{base}/y.parquet"),
        ("out/", LOCAL, "{base}/out/"),  # a prefix keeps its slash
        ("/abs/m.jsonl", LOCAL, "/abs/m.jsonl"),
        ("s3://bucket/runs", LOCAL, "s3://bucket/runs"),
        ("file:///data/x", LOCAL, "file:///data/x"),
        ("gs://b/p/", LOCAL, "gs://b/p/"),
        ("models/init", MODEL, "{base}/models/init"),  # exists under base: the local folder
        ("Qwen/Qwen2.5-VL-3B-Instruct", MODEL, "Qwen/Qwen2.5-VL-3B-Instruct"),  # not here, hub-shaped
        ("gpt2", MODEL, "gpt2"),
        ("./models/later", MODEL, "{base}/models/later"),  # ./ insists on local
        ("runs/sft/checkpoint_1/model", MODEL, "{base}/runs/sft/checkpoint_1/model"),  # not a hub id
        ("/srv/models/aso", MODEL, "/srv/models/aso"),
        ("s3://bucket/models/aso", MODEL, "s3://bucket/models/aso"),
    ],
)
def test_resolve_path_rule(tmp_path, value, role, expected):
    (tmp_path / "models" / "init").mkdir(parents=True)
    assert resolve_path(value, role, tmp_path) == expected.format(base=tmp_path)


def test_resolve_path_expands_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_path("~/m", MODEL) == f"{tmp_path}/m"


def test_load_resolves_every_path_field_against_the_cwd(tmp_path, monkeypatch):
    (tmp_path / "models" / "init").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    train = TrainConfig.load(None, ["model.name_or_path=models/init", "data.manifest=data/m.jsonl",
                                    "data.reference=data/pi_ref.parquet", "data.cache_dir=cache", "objective=aso"])  # fmt: skip
    assert train.model.name_or_path == f"{tmp_path}/models/init"
    assert (train.data.manifest, train.data.reference, train.data.cache_dir, train.output_dir) == (
        f"{tmp_path}/data/m.jsonl", f"{tmp_path}/data/pi_ref.parquet", f"{tmp_path}/cache", f"{tmp_path}/runs"
    )
    ref = ReferenceConfig.load(None, ["model.name_or_path=org/model", "data.manifest=m.jsonl", "output=p.parquet"])
    assert (ref.model.name_or_path, ref.output) == ("org/model", f"{tmp_path}/p.parquet")
    ev = EvalConfig.load(None, ["model.name_or_path=s3://b/m", "mos_csv=k.csv", "video_dir=v", "out=reports/x"])
    assert (ev.model.name_or_path, ev.mos_csv, ev.video_dir, ev.out) == (
        "s3://b/m", f"{tmp_path}/k.csv", f"{tmp_path}/v", f"{tmp_path}/reports/x"
    )
    batch = ScoreBatchConfig.load(None, ["input.kind=prefix", "input.prefix=clips/", "output.kafka=false",
                                         "output.parquet=out/s.parquet", "model.name_or_path=./m"])  # fmt: skip
    assert (batch.input.prefix, batch.output.parquet, batch.model.name_or_path) == (
        f"{tmp_path}/clips/", f"{tmp_path}/out/s.parquet", f"{tmp_path}/m"
    )


def test_load_is_idempotent_and_keeps_unrelated_fields(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train = TrainConfig.load(ROOT / "jobs/configs/sft.yaml", ["data.manifest=c/m.jsonl"])
    assert train.resolve_paths(tmp_path / "elsewhere") == train  # absolute paths stay
    assert (train.run_name, train.workers, train.data.decode.num_frames) == ("sft", 2, 8)


def test_a_job_entry_point_resolves_against_its_cwd(tmp_path):
    """jobs/*.py use Config.load too: a relative manifest means the caller's, seen from any cwd."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from train_sft import build_parser; "
        "from ultravqa_ray.train.config import TrainConfig; a = build_parser().parse_args(sys.argv[2:]); "
        "print(TrainConfig.load(a.config, a.overrides).data.manifest)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "jobs"), "--config", str(ROOT / "jobs/configs/sft.yaml"),
         "--set", "data.manifest=corpus/manifest.jsonl"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{tmp_path}/corpus/manifest.jsonl"
