"""The prepared GPU check (run by ``bench/gpu_check.sh``): real-size random-weight models in bf16 with
SDPA attention on one GPU; serving throughput and training step time and peak memory, with the
memory planner's prediction beside every measured peak; a Markdown table out.

    python bench/gpu_check.py                          # Qwen2.5-VL-3B and -7B on cuda (< 10 min on one H100)
    python bench/gpu_check.py --tiny --device cpu      # the same code paths on tiny models (CI)

Per model:

- serving: 16 frames at 448x448, batches of 1 and 8 videos, the one-pass read-out against five
  full forwards per video; videos per second and peak memory (``torch.cuda.max_memory_allocated``;
  on CPU the process's peak RSS, reset per phase);
- training, one GPU: two steps of LoRA SFT and LoRA ASO (bf16 base, fp32 adapters), and two steps of
  full SFT under FSDP2 (a one-rank process group: fp32 master weights, bf16 mixed-precision policy),
  all with activation checkpointing; the second step's time and the peak. A configuration the
  planner says does not fit the device is skipped and the table says so (the planner's total).

Every row is written as soon as it is measured (``--out``), so a run cut short keeps its rows.
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


class Meter:
    """Peak memory of a phase: CUDA allocator peak, or this process's peak RSS on CPU."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    def reset(self) -> None:
        import torch

        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        else:
            Path("/proc/self/clear_refs").write_text("5")

    def peak(self) -> int:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            return int(torch.cuda.max_memory_allocated())
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc/self/status")

    def sync(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize()


def synthetic_clips(n: int, frames: int, side: int, seed: int = 0) -> list:
    import numpy as np

    from ultravqa_ray.video import VideoClip

    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(n):
        base = rng.integers(0, 255, (1, side, side, 3), dtype=np.uint8)
        shift = np.stack([np.roll(base[0], i * 3, axis=1) for i in range(frames)])
        clips.append(VideoClip(
            frames=shift, timestamps_s=np.arange(frames, dtype=np.float64) / 4.0, duration_s=frames / 4.0, fps=8.0,
            width=side, height=side, rotation=0, frames_used=frames, strategy="sequential", codec="synthetic",
        ))  # fmt: skip
    return clips


def training_rows(clips: list, k: int = 5) -> list[dict[str, Any]]:
    """One row per clip in the training loop's format (ratings 1..k, no rationale, a fixed pi_ref)."""
    import numpy as np

    pi_ref = np.full((5, k), 1.0 / k, dtype=np.float32)
    rows = []
    for i, clip in enumerate(clips):
        ratings = np.full((1, 5, 3), 1 + i % k, dtype=np.int64)
        rows.append({
            "video_id": np.array([f"v{i}"]), "frames": clip.frames[None], "timestamps_s": clip.timestamps_s[None],
            "decode": np.array([json.dumps(clip.metadata())], dtype=object),
            "ratings": ratings, "rationale": np.array(["{}"], dtype=object), "pi_ref": pi_ref[None],
        })  # fmt: skip
    return rows


def _probe_class():
    from ultravqa_ray.train.session import LocalSession

    class Probe(LocalSession):
        """The in-process session, with the time and the memory peak after each optimiser step (before
        the checkpoint is written)."""

        meter: Meter

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.marks: list[float] = []
            self.peaks: list[int] = []

        def log_step(self, record: dict[str, Any]) -> None:
            super().log_step(record)
            self.meter.sync()
            self.marks.append(time.perf_counter())
            self.peaks.append(self.meter.peak())

    return Probe


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny model, 4 frames at 56 px, batches 1 and 2 (CI)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--presets", default="qwen2_5_vl_3b,qwen2_5_vl_7b")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=448)
    parser.add_argument("--work-dir", type=Path, default=ROOT / "bench" / "out" / "gpu_check")
    parser.add_argument("--out", type=Path, help="Markdown table (default: <work-dir>/gpu_check.md)")
    args = parser.parse_args(argv)

    import torch

    from ultravqa_ray.model import ModelConfig, ScorerModel, build_tiny_model
    from ultravqa_ray.model.oracle import full_forward_log_probs
    from ultravqa_ray.model.presets import build_preset_model
    from ultravqa_ray.train.config import DataConfig, LoraConfig, TrainConfig
    from ultravqa_ray.train.loop import run_training
    from ultravqa_ray.train.memory_plan import PlanSettings, Workload, plan_serving, plan_training, shape_of
    from ultravqa_ray.video import DecodeConfig

    Probe = _probe_class()
    if args.tiny:
        args.frames, args.resolution = 4, 56
    device = args.device
    meter = Meter(device)
    if meter.cuda:
        if not torch.cuda.is_available():
            sys.exit("gpu_check: --device cuda but no CUDA device is visible (use --tiny --device cpu to test the script)")
        capacity = torch.cuda.get_device_properties(0).total_memory
        overhead = 0  # the allocator's own peak: no context, no runtime in it
    else:
        capacity = 23 * GiB
        overhead = meter.peak()
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    out = args.out or work / "gpu_check.md"
    rows: list[dict[str, Any]] = []
    header = ("| model | task | mode | batch | seconds | videos/s | peak GiB | planned GiB | plan error |\n"
              "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")  # fmt: skip

    def emit(**row: Any) -> None:
        rows.append(row)
        lines = [header]
        for r in rows:
            err = "" if r.get("peak") in (None, 0) or r.get("planned") is None else f"{r['planned'] / r['peak'] - 1:+.0%}"
            cells = [r["model"], r["task"], r["mode"], str(r.get("batch", "")),
                     "" if r.get("seconds") is None else f"{r['seconds']:.3f}",
                     "" if r.get("videos_per_s") is None else f"{r['videos_per_s']:.2f}",
                     "" if r.get("peak") is None else f"{r['peak'] / GiB:.2f}",
                     "" if r.get("planned") is None else f"{r['planned'] / GiB:.2f}", err or r.get("note", "")]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |\n")
        out.write_text(f"device: {torch.cuda.get_device_name(0) if meter.cuda else 'cpu'}; {args.frames} frames "
                       f"at {args.resolution}x{args.resolution}; bf16, SDPA\n\n" + "".join(lines))  # fmt: skip
        (work / "gpu_check.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
        print(json.dumps(row, default=str), flush=True)

    models = ["tiny_qwen2_5_vl"] if args.tiny else args.presets.split(",")
    for name in models:
        folder = work / name
        if not (folder / "config.json").is_file():
            t0 = time.perf_counter()
            pixels = {"min_pixels": 28 * 28, "max_pixels": args.resolution * args.resolution}
            if args.tiny:
                build_tiny_model("qwen2_5_vl", folder)
                processor = json.loads((folder / "preprocessor_config.json").read_text()) | pixels
                (folder / "preprocessor_config.json").write_text(json.dumps(processor))
            else:
                build_preset_model(name, folder, processor=pixels)
            print(f"built {name} in {time.perf_counter() - t0:.0f} s", flush=True)
        shape = shape_of(str(folder))
        clips = synthetic_clips(8, args.frames, args.resolution)
        common = {"model": name}

        # -- serving ---------------------------------------------------------------------------------
        meter.reset()
        scorer = ScorerModel(ModelConfig(name_or_path=str(folder), device=device, dtype="bfloat16",
                                         attn_implementation="sdpa", max_videos_per_forward=8)).setup()  # fmt: skip
        prepared = scorer.prepare_video(clips[0])
        video_tokens = sum(1 for t in prepared.tokens.types if t == 2)
        prefix_text = len(scorer.prompts.prefix(prepared.tokens)[0]) - video_tokens
        scorer.score_log_probs(clips[:1])  # warm-up
        for batch in (1, 2) if args.tiny else (1, 8):
            meter.reset()
            t0 = time.perf_counter()
            scorer.score_log_probs(clips[:batch])
            meter.sync()
            seconds = time.perf_counter() - t0
            plan = plan_serving(shape, Workload(frames=args.frames, resolution=args.resolution, batch=batch,
                                                text_tokens=2 * prefix_text), overhead=overhead)  # fmt: skip
            emit(**common, task="serve", mode="one-pass", batch=batch, seconds=seconds, videos_per_s=batch / seconds,
                 peak=meter.peak(), planned=plan.total)  # fmt: skip
            meter.reset()
            t0 = time.perf_counter()
            full_forward_log_probs(scorer, clips[:batch])
            meter.sync()
            seconds = time.perf_counter() - t0
            emit(**common, task="serve", mode="five forwards", batch=batch, seconds=seconds,
                 videos_per_s=batch / seconds, peak=meter.peak())  # fmt: skip
        del scorer, prepared
        gc.collect()

        # -- training: LoRA SFT / ASO, full FSDP2 SFT ------------------------------------------------------
        train_rows = training_rows(clips[:2])
        decode = DecodeConfig(num_frames=args.frames, height=args.resolution, width=args.resolution)
        for task, mode in (("sft", "lora"), ("aso", "lora"), ("sft", "full")):
            settings = PlanSettings(mode=mode, gpus=1, gradient_checkpointing=True, overhead=overhead)
            workload = Workload(frames=args.frames, resolution=args.resolution, batch=1, text_tokens=96, answer_tokens=8)
            plan = plan_training(shape, workload, settings, task)
            if plan.total > capacity:
                emit(**common, task=task, mode=mode, batch=1, planned=plan.total,
                     note=f"skipped: planned {plan.total / GiB:.0f} GiB > {capacity / GiB:.0f} GiB")  # fmt: skip
                continue
            config = TrainConfig(
                objective=task,
                model=ModelConfig(name_or_path=str(folder), device=device,
                                  dtype="bfloat16" if mode == "lora" else "float32"),
                data=DataConfig(manifest=str(work / "none.jsonl"), decode=decode, rationale=False,
                                reference="inline" if task == "aso" else None),
                output_dir=str(work / "runs"), run_name=f"{name}-{task}-{mode}", resume=False, batch_size=1, lr=1e-5,
                warmup_ratio=0.0, schedule="constant", gradient_checkpointing=True,
                lora=LoraConfig() if mode == "lora" else None,
                strategy="fsdp2" if mode == "full" else "ddp", mixed_precision="bf16",
            )  # fmt: skip
            session = Probe(config, train_rows, device=device)
            session.meter = meter
            config.run_dir.mkdir(parents=True, exist_ok=True)
            group = None
            if mode == "full":
                import torch.distributed as dist

                os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
                os.environ.setdefault("MASTER_PORT", "29533")
                dist.init_process_group("nccl" if meter.cuda else "gloo", rank=0, world_size=1)
                group = dist
            meter.reset()
            try:
                run_training(config.model_copy(update={"log_every": 1}), session, n_rows=len(train_rows))
            finally:
                if group is not None:
                    group.destroy_process_group()
            marks, peaks = session.marks, session.peaks
            seconds = marks[1] - marks[0] if len(marks) > 1 else None
            emit(**common, task=task, mode=mode if mode == "lora" else "full FSDP2", batch=1, seconds=seconds,
                 videos_per_s=(1 / seconds) if seconds else None, peak=max(peaks), planned=plan.total)  # fmt: skip
            gc.collect()
    return rows


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
