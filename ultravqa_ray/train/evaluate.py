"""The evaluation job: score an annotation manifest or a MOS CSV and write metrics and a report.

Decoding and scoring run in Ray Data (the decoded frames are cached under ``out/.decoded``); the
metrics are DESIGN.md section 5 (:mod:`ultravqa_ray.metrics`): per dimension and overall against
the raters for a manifest, SRCC/PLCC/KRCC/MAE against MOS for a KoNViD-1k / LSVQ style CSV (each
dimension's expected score and their mean). ``out`` receives ``metrics.json``, ``index.html`` and
``plots/`` (confusion matrix, predicted-vs-rater scatter, calibration per dimension) and
``predictions.json`` (each video's probabilities: what the promotion gate compares). Videos that
cannot be decoded are counted, listed as missing, and skipped.

With ``rationales = N`` the first N videos of a manifest are also scored with generated rationales
(in this process, :meth:`ScorerModel.score_clips` with ``rationale=True``: the score printed is the one
read after the rationale), and ``metrics.json`` / the report gain the ``rationale`` block
(:mod:`ultravqa_ray.metrics.rationale`: sub-attribute precision/recall against the annotations and
the share of rationales whose band contradicts their score).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from connectors.wire.dimensions import DIMENSIONS, Dimension
from connectors.wire.errors import ProcessingError
from ultravqa_ray.metrics import (
    EvalResult,
    MosResult,
    evaluate_mos,
    evaluate_predictions,
    read_mos_csv,
    write_report,
)
from ultravqa_ray.model.folder import read_scoring
from ultravqa_ray.model.scorer import ScorerModel
from ultravqa_ray.schemas.annotation import AnnotationRecord
from ultravqa_ray.schemas.manifest import read_manifest, resolve_uri
from ultravqa_ray.score_ops import argmax_label, expected_score
from ultravqa_ray.train.config import EvalConfig
from ultravqa_ray.train.data import CACHE_FORMAT, CLIP_COLUMNS, IngestReport, ingest, ok_dataset
from ultravqa_ray.train.scoring import score_dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalOutcome:
    result: EvalResult
    mos: list[MosResult]
    metrics_json: Path
    index_html: Path
    ingest: IngestReport
    wall_s: float


def read_outs(probs: dict[str, np.ndarray]) -> dict[str, dict[Dimension, dict[str, Any]]]:
    """``video_id -> {dimension: {score, label, probs}}`` from ``(D, K)`` probabilities."""
    import torch

    out: dict[str, dict[Dimension, dict[str, Any]]] = {}
    for vid, p in probs.items():
        t = torch.tensor(np.array(p), dtype=torch.float64)
        t = t / t.sum(-1, keepdim=True)
        scores, labels = expected_score(t).tolist(), argmax_label(t).tolist()
        out[vid] = {
            d: {"score": scores[j], "label": labels[j], "probs": t[j].tolist()}
            for j, d in enumerate(DIMENSIONS)
        }
    return out


PREDICTIONS_FILE = "predictions.json"  # video_id -> (D, K) probabilities: what the gate compares


def read_predictions(out: str | Path) -> dict[str, dict[Dimension, dict[str, Any]]]:
    """The read-outs an evaluation wrote into ``out`` (:data:`PREDICTIONS_FILE`)."""
    raw = json.loads((Path(out) / PREDICTIONS_FILE).read_text())
    return read_outs({v: np.asarray(p, dtype=np.float64) for v, p in raw.items()})


def _cache(out: Path, rows: list[dict[str, Any]], config: EvalConfig) -> Path:
    digest = hashlib.sha256(
        json.dumps([r["uri"] for r in rows]).encode() + config.decode.model_dump_json().encode()
    )
    digest.update(f"format={CACHE_FORMAT}".encode())
    return out / ".decoded" / digest.hexdigest()[:16]


def _with_model_decode(config: EvalConfig) -> EvalConfig:
    """Decode as the model was trained to see (its folder's scoring_config.json) unless ``decode``
    was set explicitly; an explicit setting that differs is said in the log, never silently used."""
    saved = read_scoring(config.model.name_or_path)
    if saved is None:
        return config
    if "decode" not in config.model_fields_set:
        return config.model_copy(update={"decode": saved.decode})
    if config.decode != saved.decode:
        log.warning("evaluating with decode settings other than the model was trained with: %s (trained: %s)",
                    config.decode.model_dump(exclude_defaults=True), saved.decode.model_dump(exclude_defaults=True))  # fmt: skip
    return config


def rationale_block(
    config: EvalConfig, records: list[AnnotationRecord], n_examples: int = 10
) -> dict[str, Any]:
    """Generate rationales for ``records`` and read them back (module docstring); videos that fail
    to decode or score are counted in ``skipped``."""
    from ultravqa_ray.metrics.rationale import rationale_metrics
    from ultravqa_ray.video.decoder import decode_video

    scorer = ScorerModel(config.model).setup()
    items: dict[Dimension, list[tuple[str, float, list[str]]]] = {d: [] for d in DIMENSIONS}
    examples: list[dict[str, Any]] = []
    skipped = 0
    for start in range(0, len(records), config.batch_size):
        part, clips = [], []
        for rec in records[start : start + config.batch_size]:
            try:
                clips.append(decode_video(resolve_uri(rec.uri, str(config.manifest)), config.decode))
                part.append(rec)
            except ProcessingError:
                skipped += 1
        for rec, res in zip(part, scorer.score_clips(clips, DIMENSIONS, rationale=True), strict=True):
            if isinstance(res, ProcessingError) or res.rationale is None:
                skipped += 1
                continue
            for d in DIMENSIONS:
                text = res.rationale.get(d, "")
                items[d].append((text, res[d].score, list(rec.sub_attributes.get(d, []))))
                if len(examples) < n_examples:
                    examples.append(
                        {
                            "video_id": rec.video_id,
                            "dimension": d.value,
                            "score": res[d].score,
                            "rationale": text,
                        }
                    )
    return {**rationale_metrics(items, config.model.k), "skipped": skipped, "examples": examples}


def evaluate(config: EvalConfig) -> EvalOutcome:
    """Score, compute metrics, write ``metrics.json`` + report into ``config.out``."""
    from ultravqa_ray.train.trainer import ensure_ray

    ensure_ray()
    started = time.perf_counter()
    k = config.model.k
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if config.manifest:
        records = read_manifest(config.manifest, k=k)[: config.limit]
        rows = [{"video_id": r.video_id, "uri": resolve_uri(r.uri, config.manifest)} for r in records]
        items = []
    else:
        assert config.mos_csv is not None
        items = read_mos_csv(config.mos_csv, video_dir=config.video_dir, pattern=config.mos_pattern)[
            : config.limit
        ]
        rows = [{"video_id": i.video_id, "uri": i.uri} for i in items]
        records = []
    config = _with_model_decode(config)
    report = ingest(rows, config.decode, _cache(out, rows, config), batch_size=config.batch_size)
    probs, failed = score_dataset(
        ok_dataset(report.cache, ["video_id", *CLIP_COLUMNS]), config.model,
        actors=config.actors, batch_size=config.batch_size, cpus=config.cpus_per_actor, gpus=config.gpus_per_actor,
    )  # fmt: skip
    if failed:  # counted with the videos that could not be decoded: listed, then skipped
        report = replace(report, n_ok=report.n_ok - len(failed), bad=report.bad + [
            {"video_id": v, "error_kind": "internal", "error": e} for v, e in failed.items()])  # fmt: skip
    predictions = read_outs(probs)
    (out / PREDICTIONS_FILE).write_text(json.dumps({v: np.asarray(p).tolist() for v, p in sorted(probs.items())}) + "\n")
    model_ref = ScorerModel(config.model).model_ref
    meta = {
        "model": model_ref.name,
        "revision": model_ref.revision,
        "source": str(config.manifest or config.mos_csv),
        "decoded": str(report.n_ok),
        "skipped": str(report.n_bad),
    }
    mos: list[MosResult] = []
    if items:
        mos = [evaluate_mos(items, predictions, d, k=k, mos_range=config.mos_range) for d in DIMENSIONS]
        mos.append(evaluate_mos(items, predictions, list(DIMENSIONS), k=k, mos_range=config.mos_range))
    result = evaluate_predictions(records, predictions, k=k, meta=meta, dimensions=None if records else [])
    block = rationale_block(config, records[: config.rationales]) if config.rationales and records else None
    files = write_report(result, records, predictions, out, k=k, title=config.title, mos=mos, rationale=block)
    if mos:
        summary = json.loads(files.metrics_json.read_text())
        summary["mos"] = [m.model_dump(mode="json") for m in mos]
        files.metrics_json.write_text(json.dumps(summary, indent=2) + "\n")
    if report.bad:
        (out / "bad_videos.jsonl").write_text("".join(json.dumps(b) + "\n" for b in report.bad))
    log.info("evaluation of %s: %s -> %s", meta["source"], report.summary(), files.metrics_json)
    return EvalOutcome(
        result=result, mos=mos, metrics_json=files.metrics_json, index_html=files.index_html,
        ingest=report, wall_s=time.perf_counter() - started,
    )  # fmt: skip
