"""The evaluation gate on real tiny models: it accepts a model trained longer on the same data and
refuses a damaged one (its score-token rows shuffled), with the paired intervals in the record.

Training and scoring run in this process (the loop of the Ray Train jobs, ``run_training`` with a
``LocalSession``; the scorer's one-pass read-out), so the test costs seconds, not a Ray cluster.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.train.conftest import DECODE
from ultravqa_ray.metrics.gate import GateRule, compare
from ultravqa_ray.metrics.report import write_promotion_report
from ultravqa_ray.model import ModelConfig, ScorerModel
from ultravqa_ray.schemas.manifest import read_manifest
from ultravqa_ray.train.config import DataConfig, TrainConfig
from ultravqa_ray.train.data import CLIP_COLUMNS, manifest_rows
from ultravqa_ray.train.evaluate import read_outs
from ultravqa_ray.train.loop import run_training
from ultravqa_ray.train.session import LocalSession
from ultravqa_ray.video.batches import decode_batch
from ultravqa_ray.video.clip import clips_from_batch


@pytest.fixture(scope="module")
def gate_data(train_corpus):
    records = [r for r in read_manifest(train_corpus) if r.video_id != "bad-0001"]
    rows = manifest_rows(records, str(train_corpus))
    decoded = decode_batch({"uri": np.array([r["uri"] for r in rows])}, DECODE)
    train_rows = [
        {"video_id": np.array([r["video_id"]]), **{c: decoded[c][i : i + 1] for c in CLIP_COLUMNS},
         "ratings": r["ratings"][None], "rationale": np.array([r["rationale"]], dtype=object)}  # fmt: skip
        for i, r in enumerate(rows)
    ]
    return records, train_rows, {**decoded, "video_id": np.array([r["video_id"] for r in rows])}


def _train(tiny_model: Path, train_corpus: Path, rows, out: Path, epochs: int) -> Path:
    config = TrainConfig(
        objective="sft", model=ModelConfig(name_or_path=str(tiny_model), device="cpu"),
        data=DataConfig(manifest=str(train_corpus), decode=DECODE), output_dir=str(out), run_name="sft",
        epochs=epochs, batch_size=1, lr=3e-3, warmup_ratio=0.0, schedule="constant", seed=0,
    )  # fmt: skip
    run_training(config, LocalSession(config, rows), n_rows=len(rows))
    return out / "sft" / f"checkpoint_epoch{epochs}" / "model"


def _predict(model: Path, decoded) -> dict:
    scorer = ScorerModel(ModelConfig(name_or_path=str(model), device="cpu")).setup()
    probs = scorer.score_log_probs(clips_from_batch({c: decoded[c] for c in CLIP_COLUMNS})).exp().numpy()
    return read_outs({str(v): probs[i] for i, v in enumerate(decoded["video_id"])})


def _damage(model: Path, out: Path) -> Path:
    """A copy whose score-token output rows are reversed: it reads every level as its mirror."""
    shutil.copytree(model, out)
    scorer = ScorerModel(ModelConfig(name_or_path=str(out), device="cpu")).setup()
    ids = scorer.score_token_ids
    head = scorer.model.get_output_embeddings().weight
    with torch.no_grad():
        head[ids] = head[ids.flip(0)].clone()
    scorer.model.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="module")
def trained(gate_data, tiny_model, train_corpus, tmp_path_factory):
    torch.set_num_threads(1)
    _, rows, _ = gate_data
    root = tmp_path_factory.mktemp("gate")
    baseline = _train(tiny_model, train_corpus, rows, root / "short", epochs=1)
    candidate = _train(tiny_model, train_corpus, rows, root / "long", epochs=6)
    return baseline, candidate, _damage(candidate, root / "damaged")


RULE = GateRule(draws=500)


def test_gate_accepts_a_model_trained_longer(gate_data, trained, tmp_path):
    records, _, decoded = gate_data
    baseline, candidate, _ = trained
    result = compare(records, _predict(candidate, decoded), _predict(baseline, decoded), k=5, rule=RULE)
    assert result["accepted"], result["reasons"]
    lo, hi = result["mean"]["mae"]["interval"]
    assert 0 < lo <= result["mean"]["mae"]["improvement"] <= hi
    for dim, row in result["per_dimension"].items():
        for metric in ("mae", "acc@0.5", "srcc"):
            assert len(row[metric]["interval"]) == 2, (dim, metric)
    record = {**result, "candidate": {"model": str(candidate), "content_hash": "sha256:c"},
              "baseline": {"model": str(baseline), "content_hash": "sha256:b"}}  # fmt: skip
    page = write_promotion_report(record, tmp_path)
    assert "accepted" in page.read_text() and "mae improvement" in page.read_text()


def test_gate_refuses_a_damaged_model(gate_data, trained):
    records, _, decoded = gate_data
    _, candidate, damaged = trained
    result = compare(records, _predict(damaged, decoded), _predict(candidate, decoded), k=5, rule=RULE)
    assert not result["accepted"]
    assert any("mean mae did not improve" in r for r in result["reasons"]), result["reasons"]
    assert result["mean"]["mae"]["interval"][1] < 0  # worse beyond the interval
    json.dumps(result)  # the record is JSON as it stands
