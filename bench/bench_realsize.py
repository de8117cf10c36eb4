"""Real-size smoke on CPU: a preset built with random bf16 weights scores one clip through the
one-pass read-out (against five full forwards), then one LoRA SFT step and one LoRA ASO step run;
seconds and peak RSS of each phase, and the memory planner's prediction beside each peak.

    python bench/bench_realsize.py                                  # Qwen2.5-VL-3B, 8 frames at 112 px
    python bench/bench_realsize.py --layers 1 --vision-layers 2     # reduced depth (the CI test)

Peak RSS is the kernel's ``VmHWM`` of this process, reset (``/proc/self/clear_refs``) before each
phase, so each phase's peak is its own. The planner (:mod:`ultravqa_ray.train.memory_plan`) gets
the clip's real token counts and, as its overhead, this process's RSS after imports (measured
here). Every phase writes its figures into ``--json`` as soon as it ends, so a run stopped midway
keeps what it measured. The training steps run the project's loop (``run_training``, in-process
session) with ``model.dtype: bfloat16`` and ``train.lora``; the step's peak is read when the step
is logged, before the checkpoint is written (the merged checkpoint is streamed, one shard at a time;
the peak with the checkpoint is recorded beside it).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GiB = 1 << 30


def rss() -> tuple[int, int]:
    """(current, peak) resident bytes of this process."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":")
            values[key] = int(value.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


def reset_peak() -> None:
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="qwen2_5_vl_3b")
    parser.add_argument("--layers", type=int, help="reduced depth: language-model layers")
    parser.add_argument("--vision-layers", type=int, help="reduced depth: vision blocks")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=112)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=ROOT / "bench" / "out" / "realsize")
    parser.add_argument("--json", type=Path, help="write the figures here (default: <work-dir>/result.json)")
    parser.add_argument("--skip-train", action="store_true", help="scoring only")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from ultravqa_ray.data.config import SynthConfig
    from ultravqa_ray.data.synth import generate_corpus
    from ultravqa_ray.model import ModelConfig, ScorerModel
    from ultravqa_ray.model.oracle import full_forward_log_probs
    from ultravqa_ray.model.presets import build_preset_model
    from ultravqa_ray.schemas.manifest import read_manifest
    from ultravqa_ray.train.adapter import build_training_batch
    from ultravqa_ray.train.config import DataConfig, LoraConfig, TrainConfig
    from ultravqa_ray.train.data import CLIP_COLUMNS, manifest_rows
    from ultravqa_ray.train.loop import run_training
    from ultravqa_ray.train.memory_plan import PlanSettings, Workload, plan_serving, plan_training, shape_of
    from ultravqa_ray.train.objectives import training_samples
    from ultravqa_ray.train.session import LocalSession
    from ultravqa_ray.video import DecodeConfig
    from ultravqa_ray.video.batches import decode_batch
    from ultravqa_ray.video.clip import clips_from_batch

    torch.set_num_threads(args.threads)
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    out_json = args.json or work / "result.json"
    baseline, _ = rss()
    depth = "real size" if args.layers is None and args.vision_layers is None else (
        f"reduced: {args.layers} layers, {args.vision_layers} vision blocks")  # fmt: skip
    result: dict[str, Any] = {
        "preset": args.preset, "depth": depth, "frames": args.frames, "resolution": args.resolution,
        "threads": args.threads, "baseline_rss_gib": baseline / GiB, "phases": {},
    }  # fmt: skip

    def record(name: str, **figures: Any) -> None:
        result["phases"][name] = figures
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(result, indent=2) + "\n")
        print(name, json.dumps(figures), flush=True)

    # -- the model folder (built once; kept for reruns) ---------------------------------------------
    tag = args.preset + ("" if args.layers is None else f"-l{args.layers}") + (
        "" if args.vision_layers is None else f"-v{args.vision_layers}")  # fmt: skip
    model_dir = work / tag
    if not (model_dir / "config.json").is_file():
        reset_peak()
        t0 = time.perf_counter()
        build_preset_model(args.preset, model_dir, layers=args.layers, vision_layers=args.vision_layers,
                           processor={"min_pixels": 28 * 28, "max_pixels": args.resolution * args.resolution})  # fmt: skip
        size = sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))
        record("build", seconds=time.perf_counter() - t0, peak_rss_gib=rss()[1] / GiB, weights_gib=size / GiB)

    # -- one clip -----------------------------------------------------------------------------------
    decode = DecodeConfig(num_frames=args.frames, height=args.resolution, width=args.resolution, threads=1)
    corpus = work / f"clip-{args.resolution}"
    if not (corpus / "manifest.jsonl").is_file():
        generate_corpus(corpus, SynthConfig(n=1, seed=5, width=args.resolution, height=args.resolution,
                                            duration_s=max(1.0, args.frames / 8), workers=1))  # fmt: skip
    manifest = corpus / "manifest.jsonl"
    records = read_manifest(manifest)
    rows = manifest_rows(records, str(manifest))
    decoded = decode_batch({"uri": np.array([r["uri"] for r in rows])}, decode)
    k = 5
    pi_ref = torch.softmax(torch.linspace(-1, 1, 25).reshape(5, k), -1).numpy()
    batch_rows = {"video_id": np.array([rows[0]["video_id"]]), **{c: decoded[c][:1] for c in CLIP_COLUMNS},
                  "ratings": rows[0]["ratings"][None], "rationale": np.array([rows[0]["rationale"]], dtype=object),
                  "pi_ref": pi_ref[None]}  # fmt: skip
    clip = clips_from_batch(batch_rows)[0]

    shape = shape_of(str(model_dir))
    settings = PlanSettings(mode="lora", lora_rank=16, gradient_checkpointing=args.gradient_checkpointing,
                            overhead=baseline)  # fmt: skip

    # -- scoring: one-pass against five full forwards -----------------------------------------------
    reset_peak()
    t0 = time.perf_counter()
    scorer = ScorerModel(ModelConfig(name_or_path=str(model_dir), device="cpu", dtype="bfloat16")).setup()
    load_s = time.perf_counter() - t0
    prepared = scorer.prepare_video(clip)
    video_tokens = sum(1 for t in prepared.tokens.types if t == 2)
    t0 = time.perf_counter()
    one_pass = scorer.score_log_probs([clip])
    one_pass_s = time.perf_counter() - t0
    _, peak_one_pass = rss()
    prefix_len = len(scorer.prompts.prefix(prepared.tokens)[0])
    t0 = time.perf_counter()
    full = full_forward_log_probs(scorer, [clip])
    full_s = time.perf_counter() - t0
    diff = float((one_pass.exp() - full.exp()).abs().max())
    sample_batch = build_training_batch(scorer, training_samples(batch_rows, with_rationale=False))
    width = int(sample_batch.input_ids.shape[1])
    answer = int(((sample_batch.labels != -100).sum(-1)).max()) + 1
    text_tokens = width - video_tokens
    serve_plan = plan_serving(shape, Workload(frames=args.frames, resolution=args.resolution, batch=1,
                                              text_tokens=2 * (prefix_len - video_tokens)), overhead=baseline)  # fmt: skip
    record("score", load_s=load_s, one_pass_s=one_pass_s, five_forwards_s=full_s,
           max_prob_diff=diff, video_tokens=video_tokens, prefix_tokens=prefix_len,
           peak_rss_gib=peak_one_pass / GiB, planned_gib=serve_plan.total / GiB,
           plan_error=serve_plan.total / peak_one_pass - 1, params=shape.params_total)  # fmt: skip
    del scorer, prepared, sample_batch
    gc.collect()
    if args.skip_train:
        return result

    # -- one LoRA SFT step and one LoRA ASO step ------------------------------------------------------
    workload = Workload(frames=args.frames, resolution=args.resolution, batch=1, text_tokens=text_tokens,
                        answer_tokens=answer)  # fmt: skip

    class Probe(LocalSession):
        def log_step(self, record_: dict[str, Any]) -> None:
            super().log_step(record_)
            self.step_peak = rss()[1]
            self.step_end = time.perf_counter()

    for objective in ("sft", "aso"):
        config = TrainConfig(
            objective=objective,
            model=ModelConfig(name_or_path=str(model_dir), device="cpu", dtype="bfloat16"),
            data=DataConfig(manifest=str(manifest), decode=decode, rationale=False,
                            reference="inline" if objective == "aso" else None),
            output_dir=str(work / "runs"), run_name=f"{tag}-{objective}", resume=False, epochs=1, batch_size=1,
            lr=1e-4, warmup_ratio=0.0, schedule="constant", lora=LoraConfig(rank=16, alpha=32),
            gradient_checkpointing=args.gradient_checkpointing,
        )  # fmt: skip
        session = Probe(config, [batch_rows])
        reset_peak()
        t0 = time.perf_counter()
        history = run_training(config, session, n_rows=1)
        total_s, peak_with_checkpoint = time.perf_counter() - t0, rss()[1]
        plan = plan_training(shape, workload, settings, objective)
        peak = session.step_peak
        record(f"lora_{objective}_step", load_and_step_s=session.step_end - t0, with_checkpoint_s=total_s,
               loss=history[-1]["loss"], peak_rss_gib=peak / GiB, planned_gib=plan.total / GiB,
               peak_rss_with_checkpoint_gib=peak_with_checkpoint / GiB, plan_error=plan.total / peak - 1,
               rows=5, tokens_per_row=width, answer_tokens=answer,
               plan_parts_gib={key: plan.as_dict()[key] / GiB
                               for key in ("weights", "gradients", "optimizer", "activations", "overhead")})  # fmt: skip
    return result


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
