"""One resumable retraining job: manifests -> SFT -> reference pass -> ASO -> evaluation -> gate.

Each step's inputs are hashed by content (the merged training manifest's bytes, a model folder's
:func:`~ultravqa_ray.model.store.content_hash`, pi_ref's bytes, the step's settings); its output
goes to ``work_dir/<step>-<key>`` and a line ``{"step", "key", "status", "output", ...}`` is
appended to ``work_dir/steps.jsonl``. A step whose key has a ``done`` line and whose output exists
is not run again (its line says ``skipped``), so a job killed at any point and submitted again
continues where it stopped, and a job given new labels (a new manifest hash) retrains from SFT on.

Steps: ``manifest`` (merge the training manifests, URIs made absolute), ``sft``, ``reference``,
``aso``, ``eval_candidate`` and ``eval_production`` (the same held-out manifest and decode settings),
``gate`` (:func:`ultravqa_ray.train.promote.decide`: the promotion record). ``stop_after`` ends the
job after the named step (a controlled stop; resubmitting without it continues).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ultravqa_ray.config import Config, LocalPath, ModelRef, PathRole, resolve_path
from ultravqa_ray.metrics.gate import GateRule
from ultravqa_ray.model.config import ModelConfig
from ultravqa_ray.model.store import content_hash
from ultravqa_ray.schemas.manifest import manifest_bytes, read_manifest, resolve_uri, write_manifest
from ultravqa_ray.video.config import DecodeConfig

log = logging.getLogger(__name__)

STEPS = ("manifest", "sft", "reference", "aso", "eval_candidate", "eval_production", "gate")
STEP_LOG = "steps.jsonl"
Step = Literal["manifest", "sft", "reference", "aso", "eval_candidate", "eval_production", "gate"]


class StageSettings(Config):
    """The optimiser settings of one training stage; anything else of TrainConfig via ``set``."""

    epochs: int = Field(1, ge=1, description="Passes over the training set.")
    lr: float = Field(1e-4, gt=0, description="Peak learning rate.")
    batch_size: int = Field(2, ge=1, description="Videos per optimiser step per worker.")
    set: list[str] = Field(default_factory=list, description="Further TrainConfig overrides (key=value).")


class RetrainConfig(Config):
    """Settings of ``ultravqa-ray retrain`` (module docstring)."""

    manifests: list[str] = Field(..., min_length=1, description="Training manifests (local or s3://), merged.")
    heldout: LocalPath = Field(..., description="Held-out manifest the candidate and production are compared on.")
    base_model: ModelRef = Field(..., description="SFT start point (folder, s3://, gs://).")
    production: ModelRef = Field(..., description="The model serving now: the gate's baseline.")
    work_dir: LocalPath = Field("retrain", description="Step outputs and the step log (steps.jsonl).")
    decode: DecodeConfig | None = Field(None, description="Decode settings (default: the base model's).")
    sft: StageSettings = Field(default_factory=StageSettings, description="SFT stage.")
    aso: StageSettings = Field(default_factory=StageSettings, description="ASO stage (beta via set: aso.beta=...).")
    workers: int = Field(1, ge=1, description="Ray Train workers.")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs per Ray Train worker.")
    use_gpu: bool = Field(False, description="Train and score on GPUs.")
    actors: int = Field(1, ge=1, description="Scoring actors of the reference pass and the evaluations.")
    cpus_per_actor: float = Field(1.0, gt=0, description="CPUs per scoring actor.")
    rule: GateRule = Field(default_factory=GateRule, description="The promotion gate's rule.")
    stop_after: Step | None = Field(None, description="End the job after this step (resubmit to continue).")


@dataclass(frozen=True)
class RetrainResult:
    outputs: dict[str, str]
    ran: list[str]
    skipped: list[str]
    accepted: bool | None  # None: stopped before the gate
    record: Path | None


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StepLog:
    """``steps.jsonl``: one JSON line per step run or skipped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def done(self, step: str, key: str) -> str | None:
        for entry in reversed(self.entries()):
            if entry["step"] == step and entry["key"] == key and entry["status"] in ("done", "skipped"):
                if Path(entry["output"]).exists():
                    return str(entry["output"])
        return None

    def write(self, step: str, key: str, status: str, output: str, wall_s: float) -> None:
        line = {"step": step, "key": key, "status": status, "output": output, "wall_s": round(wall_s, 3),
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        with self.path.open("a") as fh:
            fh.write(json.dumps(line) + "\n")


def retrain(config: RetrainConfig) -> RetrainResult:
    """Run (or continue) the job; see the module docstring."""
    from ultravqa_ray.model.folder import folder_decode_config
    from ultravqa_ray.train.config import DataConfig, EvalConfig, ReferenceConfig, TrainConfig
    from ultravqa_ray.train.evaluate import evaluate
    from ultravqa_ray.train.promote import decide
    from ultravqa_ray.train.reference import reference_pass
    from ultravqa_ray.train.trainer import fit

    work = Path(config.work_dir)
    steps = StepLog(work / STEP_LOG)
    decode = config.decode or folder_decode_config(config.base_model)
    outputs: dict[str, str] = {}
    ran: list[str] = []
    skipped: list[str] = []

    def step(name: str, key: str, run) -> str:
        t0 = time.perf_counter()
        found = steps.done(name, key)
        if found is not None:
            steps.write(name, key, "skipped", found, time.perf_counter() - t0)
            skipped.append(name)
            log.info("retrain: %s skipped (done for the same inputs: %s)", name, found)
        else:
            log.info("retrain: %s (key %s)", name, key)
            found = str(run(work / f"{name}-{key}"))
            steps.write(name, key, "done", found, time.perf_counter() - t0)
            ran.append(name)
        outputs[name] = found
        return found

    def stop(name: str) -> bool:
        return config.stop_after == name

    def result(accepted: bool | None = None, record: Path | None = None) -> RetrainResult:
        return RetrainResult(outputs=outputs, ran=ran, skipped=skipped, accepted=accepted, record=record)

    # manifest: the training manifests merged (URIs absolute), keyed by their bytes
    sources = [resolve_path(m, PathRole.LOCAL) for m in config.manifests]
    manifest_key = _key([hashlib.sha256(manifest_bytes(m)).hexdigest() for m in sources])

    def merge(out: Path) -> Path:
        records = []
        for source in sources:
            records += [r.model_copy(update={"uri": resolve_uri(r.uri, source)}) for r in read_manifest(source)]
        return write_manifest(records, out / "train.jsonl")

    manifest = step("manifest", manifest_key, merge)
    if stop("manifest"):
        return result()

    def train_config(stage: StageSettings, objective: str, model: str, data: DataConfig, out: Path) -> TrainConfig:
        cfg = TrainConfig(
            objective=objective, model=ModelConfig(name_or_path=model), data=data, output_dir=str(out),
            run_name=objective, epochs=stage.epochs, lr=stage.lr, batch_size=stage.batch_size,
            workers=config.workers, cpus_per_worker=config.cpus_per_worker, use_gpu=config.use_gpu,
        )  # fmt: skip
        return cfg.override(stage.set) if stage.set else cfg

    data = DataConfig(manifest=manifest, decode=decode, cache_dir=str(work / "decoded"))
    base_hash = content_hash(config.base_model)
    sft_key = _key(manifest_key, base_hash, config.sft.model_dump(), decode.model_dump(), config.workers)
    sft_model = step("sft", sft_key, lambda out: fit(train_config(config.sft, "sft", config.base_model, data, out)).model_dir)
    if stop("sft"):
        return result()

    sft_hash = content_hash(sft_model)
    scorer_opts = {"actors": config.actors, "cpus_per_actor": config.cpus_per_actor,
                   "gpus_per_actor": 1.0 if config.use_gpu else 0.0}  # fmt: skip
    ref_key = _key(manifest_key, sft_hash, decode.model_dump())
    reference = step("reference", ref_key, lambda out: reference_pass(ReferenceConfig(
        model=ModelConfig(name_or_path=sft_model), data=data, output=str(out / "pi_ref.parquet"), **scorer_opts)).path)  # fmt: skip
    if stop("reference"):
        return result()

    ref_hash = _tree_hash(Path(reference))
    aso_key = _key(sft_key, sft_hash, ref_hash, config.aso.model_dump())
    aso_data = data.model_copy(update={"reference": reference})
    candidate = step("aso", aso_key, lambda out: fit(train_config(config.aso, "aso", sft_model, aso_data, out)).model_dir)
    if stop("aso"):
        return result()

    heldout_hash = hashlib.sha256(manifest_bytes(config.heldout)).hexdigest()
    evals: dict[str, str] = {}
    for name, model in (("eval_candidate", candidate), ("eval_production", config.production)):
        key = _key(content_hash(model), heldout_hash, decode.model_dump())
        evals[name] = step(name, key, lambda out, model=model: evaluate(EvalConfig(
            model=ModelConfig(name_or_path=model), manifest=config.heldout, decode=decode, out=str(out),
            **scorer_opts)).metrics_json.parent)  # fmt: skip
        if stop(name):
            return result()

    gate_key = _key(content_hash(candidate), content_hash(config.production), heldout_hash, config.rule.model_dump())
    record = step("gate", gate_key, lambda out: decide(
        candidate, config.production, config.heldout, Path(evals["eval_candidate"]), Path(evals["eval_production"]),
        rule=config.rule, decode=decode, out=out).record_json)  # fmt: skip
    accepted = bool(json.loads(Path(record).read_text())["accepted"])
    return result(accepted, Path(record))


def _tree_hash(path: Path) -> str:
    """sha256 over a file's bytes, or over a folder's files (names and bytes)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(file.relative_to(path.parent if path.is_file() else path).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()
