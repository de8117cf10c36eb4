"""Evaluation's rationale block: generated rationales read back against the annotations."""

from __future__ import annotations

from tests.train.conftest import DECODE
from ultravqa_ray.model import ModelConfig
from ultravqa_ray.schemas.manifest import read_manifest
from ultravqa_ray.train.config import EvalConfig
from ultravqa_ray.train.evaluate import rationale_block


def test_rationale_block_counts_every_generated_rationale_and_skips_bad_videos(train_corpus, tiny_model, tmp_path):
    records = read_manifest(train_corpus)
    config = EvalConfig(model=ModelConfig(name_or_path=str(tiny_model), device="cpu", rationale_max_new_tokens=8),
                        manifest=str(train_corpus), decode=DECODE, out=str(tmp_path), rationales=3, batch_size=2)  # fmt: skip
    bad = next(r for r in records if r.video_id == "bad-0001")
    block = rationale_block(config, [records[0], bad, records[1]], n_examples=4)
    assert block["skipped"] == 1
    per = block["per_dimension"]
    assert set(per) == {"motion_quality", "motion_amplitude", "aesthetic_quality", "content_quality", "clarity_quality"}
    assert all(c["n"] == 2 for c in per.values()) and block["overall"]["n"] == 10
    expected_annotated = sum(len(v) for r in records[:2] for v in r.sub_attributes.values())
    assert block["overall"]["annotated"] == expected_annotated
    # an untrained model writes no band: every rationale contradicts its score
    assert block["overall"]["contradiction"] == 1.0 and block["overall"]["no_band"] == 10
    assert len(block["examples"]) == 4 and {"video_id", "dimension", "score", "rationale"} <= set(block["examples"][0])
