"""``promote``: evaluate a candidate and the production model on one held-out set, gate, record.

Both models are evaluated by the evaluation job (:func:`ultravqa_ray.train.evaluate.evaluate`,
into ``out/candidate`` and ``out/baseline``), on the same manifest and the same decode settings
(the candidate's unless set); the gate (:func:`ultravqa_ray.metrics.gate.compare`) decides; the
promotion record ``out/promotion.json`` holds the decision, its reasons, every figure with its
paired-bootstrap interval, and both models' content hashes (:func:`ultravqa_ray.model.store.content_hash`),
so the record says which bytes were compared. ``out/promotion.html`` shows the same, and the
candidate's evaluation report links it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from ultravqa_ray.config import Config, LocalPath, ModelRef
from ultravqa_ray.metrics.gate import GateRule, compare
from ultravqa_ray.metrics.report import write_promotion_report
from ultravqa_ray.model.config import ModelConfig
from ultravqa_ray.model.store import content_hash
from ultravqa_ray.schemas.manifest import manifest_bytes, read_manifest
from ultravqa_ray.video.config import DecodeConfig

log = logging.getLogger(__name__)

RECORD_FILE = "promotion.json"


class PromoteConfig(Config):
    """Settings of ``ultravqa-ray promote``."""

    candidate: ModelRef = Field(..., description="The model that may replace production (folder, s3://, gs://).")
    baseline: ModelRef = Field(..., description="The model in production now.")
    heldout: LocalPath = Field(..., description="Held-out annotation manifest both models are scored on.")
    out: LocalPath = Field("promotion", description="Output folder: promotion.json, promotion.html, both evaluations.")
    decode: DecodeConfig | None = Field(None, description="Decode settings for both (default: the candidate's).")
    rule: GateRule = Field(default_factory=GateRule, description="When the candidate is accepted.")
    device: str = Field("auto", description="Device of the scoring actors.")
    actors: int = Field(1, ge=1, description="Scoring actors per evaluation.")
    cpus_per_actor: float = Field(1.0, gt=0, description="CPUs per scoring actor.")
    gpus_per_actor: float = Field(0.0, ge=0, description="GPUs per scoring actor.")
    batch_size: int = Field(8, ge=1, description="Videos per scoring call.")


@dataclass(frozen=True)
class PromotionOutcome:
    accepted: bool
    record: dict[str, Any]
    record_json: Path
    report_html: Path


def promote(config: PromoteConfig) -> PromotionOutcome:
    """Evaluate both models, apply the gate, write the promotion record (module docstring)."""
    from ultravqa_ray.model.folder import folder_decode_config
    from ultravqa_ray.train.config import EvalConfig
    from ultravqa_ray.train.evaluate import evaluate

    started = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    decode = config.decode or folder_decode_config(config.candidate)
    evals: dict[str, Path] = {}
    for role, model in (("candidate", config.candidate), ("baseline", config.baseline)):
        evaluated = evaluate(EvalConfig(
            model=ModelConfig(name_or_path=model, device=config.device), manifest=config.heldout, decode=decode,
            out=str(out / role), actors=config.actors, cpus_per_actor=config.cpus_per_actor,
            gpus_per_actor=config.gpus_per_actor, batch_size=config.batch_size, title=f"{role}: {model}",
        ))  # fmt: skip
        evals[role] = evaluated.metrics_json.parent
    outcome = decide(config.candidate, config.baseline, config.heldout, evals["candidate"], evals["baseline"],
                     rule=config.rule, decode=decode, out=out)  # fmt: skip
    outcome.record["wall_s"] = time.perf_counter() - started
    outcome.record_json.write_text(json.dumps(outcome.record, indent=2) + "\n")
    return outcome


def decide(
    candidate: str, baseline: str, heldout: str, candidate_eval: Path, baseline_eval: Path, *,
    rule: GateRule, decode: DecodeConfig, out: Path,
) -> PromotionOutcome:  # fmt: skip
    """The gate on two evaluations of the same held-out manifest (folders with predictions.json):
    writes ``out/promotion.json`` and ``out/promotion.html`` (also linked into the candidate's report)."""
    from ultravqa_ray.model.folder import apply_folder_settings
    from ultravqa_ray.train.evaluate import read_predictions

    out.mkdir(parents=True, exist_ok=True)
    k = apply_folder_settings(ModelConfig(name_or_path=candidate)).k
    records = read_manifest(heldout, k=k)
    result = compare(records, read_predictions(candidate_eval), read_predictions(baseline_eval), k=k, rule=rule)
    record = {
        "format_version": 1,
        "decided_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "candidate": {"model": candidate, "content_hash": content_hash(candidate), "evaluation": str(candidate_eval)},
        "baseline": {"model": baseline, "content_hash": content_hash(baseline), "evaluation": str(baseline_eval)},
        "heldout": {"manifest": heldout, "sha256": hashlib.sha256(manifest_bytes(heldout)).hexdigest()},
        "decode": decode.model_dump(mode="json"),
        **result,
    }
    record_json = out / RECORD_FILE
    record_json.write_text(json.dumps(record, indent=2) + "\n")
    report_html = write_promotion_report(record, out, link_from=candidate_eval / "index.html")
    log.info("promotion of %s over %s: %s", candidate, baseline,
             "accepted" if record["accepted"] else "refused: " + "; ".join(record["reasons"]))  # fmt: skip
    return PromotionOutcome(accepted=bool(record["accepted"]), record=record, record_json=record_json,
                            report_html=report_html)  # fmt: skip
