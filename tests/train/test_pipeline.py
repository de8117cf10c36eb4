"""SFT -> reference pass -> ASO on two Ray Train workers, then evaluation, on the tiny corpus.

One module-scoped run pays the worker-group start once per stage; the tests then check what each
stage left behind: HF checkpoints that load with from_pretrained, pi_ref equal to a direct scorer
computation, bad videos counted and skipped, metrics.json + report for a manifest and a MOS CSV.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from tests.train.conftest import DECODE
from ultravqa_ray.model import ModelConfig, ScorerModel
from ultravqa_ray.model.folder import read_scoring
from ultravqa_ray.schemas.manifest import read_manifest, resolve_uri
from ultravqa_ray.train.config import DataConfig, EvalConfig, ReferenceConfig, TrainConfig
from ultravqa_ray.video.batches import decode_batch
from ultravqa_ray.video.clip import clips_from_batch


@pytest.fixture(scope="module")
def pipeline(ray_local, train_corpus, tiny_model, tmp_path_factory):
    from ultravqa_ray.train.reference import reference_pass
    from ultravqa_ray.train.trainer import fit

    runs = tmp_path_factory.mktemp("runs")
    data = DataConfig(manifest=str(train_corpus), decode=DECODE, cache_dir=str(runs / "cache"))
    base = TrainConfig(
        objective="sft", model=ModelConfig(name_or_path=str(tiny_model)), data=data, output_dir=str(runs),
        run_name="sft", workers=2, cpus_per_worker=0.5, batch_size=2, epochs=1, lr=1e-3, log_every=1,
        strategy="fsdp2",  # SFT sharded with FSDP2, ASO below with DDP: both strategies end to end
    )  # fmt: skip
    sft = fit(base)
    sft_model = ModelConfig(name_or_path=sft.model_dir)
    ref = reference_pass(ReferenceConfig(model=sft_model, data=data, output=str(runs / "pi_ref.parquet")))
    aso_cfg = base.model_copy(
        update={"objective": "aso", "run_name": "aso", "model": sft_model, "strategy": "ddp",
                "data": data.model_copy(update={"reference": str(ref.path)})}  # fmt: skip
    )
    aso = fit(aso_cfg)
    return {"sft": sft, "ref": ref, "aso": aso, "runs": runs, "sft_model": sft_model}


def test_sft_then_aso_checkpoints_load_with_from_pretrained(pipeline, tiny_model):
    from transformers import AutoModelForImageTextToText

    for stage in ("sft", "aso"):
        result = pipeline[stage]
        folder = Path(result.model_dir)
        assert (folder / "model.safetensors").exists() and (folder.parent / "optimizer.pt").exists()
        state = json.loads((folder.parent / "train_state.json").read_text())
        assert state == {**state, "epoch": 1, "objective": stage}
        # 8 decodable videos, 2 workers, 2 videos per step: 2 optimiser steps
        assert state["step"] == 2 and result.metrics["videos"] == 4
        model = AutoModelForImageTextToText.from_pretrained(folder)
        assert sum(p.numel() for p in model.parameters()) > 0
        saved = read_scoring(str(folder))  # the checkpoint carries its preprocessing and scale
        assert saved is not None and saved.decode == DECODE and saved.k == 5
    original = AutoModelForImageTextToText.from_pretrained(tiny_model).state_dict()
    sft = AutoModelForImageTextToText.from_pretrained(pipeline["sft"].model_dir).state_dict()
    aso = AutoModelForImageTextToText.from_pretrained(pipeline["aso"].model_dir).state_dict()
    name = next(n for n in original if "lm_head" in n)
    assert not torch.equal(original[name], sft[name]), "SFT did not change the weights"
    assert not torch.equal(sft[name], aso[name]), "ASO did not change the weights"
    assert np.isfinite(pipeline["aso"].metrics["mean_aso_kl"])


def test_bad_video_is_counted_and_skipped(pipeline):
    ingest = pipeline["sft"].ingest
    assert (ingest.n_records, ingest.n_ok, ingest.n_bad) == (9, 8, 1)
    assert ingest.bad[0]["video_id"] == "bad-0001" and ingest.bad[0]["error_kind"] == "not_a_video"
    report = Path(ingest.cache).parent / f"{Path(ingest.cache).name}.bad_videos.jsonl"
    assert json.loads(report.read_text())["video_id"] == "bad-0001"
    assert pipeline["ref"].n == 8


def test_reference_pass_matches_direct_scorer(pipeline, train_corpus):
    table = pq.read_table(pipeline["ref"].path)
    assert table.schema.metadata[b"k"] == b"5"
    stored = dict(zip(table.column("video_id").to_pylist(), np.asarray(table.column("pi_ref").to_pylist()), strict=True))
    records = [r for r in read_manifest(train_corpus) if r.video_id != "bad-0001"][:3]
    decoded = decode_batch({"uri": np.array([resolve_uri(r.uri, train_corpus) for r in records])}, DECODE)
    scorer = ScorerModel(pipeline["sft_model"]).setup()
    direct = scorer.score_log_probs(clips_from_batch(decoded)).exp().numpy()
    for i, rec in enumerate(records):
        assert stored[rec.video_id].shape == (5, 5)
        np.testing.assert_allclose(stored[rec.video_id], direct[i], atol=1e-5)


def test_evaluate_manifest_writes_metrics_and_report(pipeline, train_corpus, tmp_path):
    from ultravqa_ray.train.evaluate import evaluate

    out = evaluate(EvalConfig(model=pipeline["sft_model"], manifest=str(train_corpus), decode=DECODE, out=str(tmp_path)))
    metrics = json.loads(out.metrics_json.read_text())
    assert metrics["n_records"] == 9 and metrics["missing"] == ["bad-0001"]
    assert set(metrics["per_dimension"]) == {"motion_quality", "motion_amplitude", "aesthetic_quality",
                                             "content_quality", "clarity_quality"}  # fmt: skip
    assert metrics["per_dimension"]["clarity_quality"]["n"] == 8
    assert 0 <= metrics["overall"]["mae"] <= 4
    assert out.index_html.exists() and len(list((tmp_path / "plots").glob("*.png"))) == 5
    assert out.ingest.n_bad == 1


def test_evaluate_mos_csv(pipeline, train_corpus, tmp_path):
    from ultravqa_ray.train.evaluate import evaluate

    records = [r for r in read_manifest(train_corpus) if r.video_id != "bad-0001"]
    lines = ["flickr_id,mos"] + [f"{r.video_id},{r.y_mean(r.dimensions()[4]):.3f}" for r in records]
    csv = tmp_path / "mos.csv"
    csv.write_text("\n".join(lines) + "\n")
    out = evaluate(EvalConfig(model=pipeline["sft_model"], mos_csv=str(csv), video_dir=str(train_corpus.parent / "videos"),
                              decode=DECODE, out=str(tmp_path / "report"), mos_range=(1.0, 5.0)))  # fmt: skip
    metrics = json.loads(out.metrics_json.read_text())
    assert len(metrics["mos"]) == 6 and all(m["n"] == 8 for m in metrics["mos"])
    assert metrics["mos"][4]["dimensions"] == ["clarity_quality"]
    assert -1 <= metrics["mos"][4]["plcc"] <= 1
    assert out.index_html.exists()
