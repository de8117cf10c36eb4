"""``ultravqa-ray plan``: per-device memory of SFT, ASO and serving for a model, and the largest
batch that fits (:mod:`ultravqa_ray.train.memory_plan`)."""

from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser(
        "plan",
        help="memory per device of SFT, ASO and serving, and the largest batch that fits",
        description=(
            "Count, from the model's shapes only (a preset, or a model folder's config.json; no weights "
            "are read), the bytes per device of weights, gradients, optimiser state and activations for "
            "SFT, ASO and serving at a clip size, and the largest videos-per-device batch that fits the "
            "device memory. Presets: qwen2_5_vl_3b, qwen2_5_vl_7b, qwen3_vl_4b, qwen3_vl_8b. "
            "docs/real-size.md says how each part is counted and how the plan compared with measurements."
        ),
    )
    p.add_argument("--model", required=True, help="preset name or model folder")
    p.add_argument("--gpus", type=int, default=1, help="devices the run is spread over (default 1)")
    p.add_argument("--mode", choices=("lora", "full", "full-bf16"), default="lora",
                   help="lora (frozen bf16 base), full (FSDP2, fp32 master, bf16 compute), full-bf16 (one "
                        "process, everything bf16: the CPU path)")  # fmt: skip
    p.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument("--resolution", type=int, default=448, help="frame side in pixels (default 448)")
    p.add_argument("--batch", type=int, default=1, help="videos per device per micro-batch (default 1)")
    p.add_argument("--gpu-memory-gib", type=float, default=80.0, help="device memory for the largest batch (default 80)")
    p.add_argument("--lora-rank", type=int, default=16, help="LoRA rank (default 16)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="plan with activation checkpointing")
    p.add_argument("--freeze-vision", action="store_true", help="the vision tower is not trained (full modes)")
    p.add_argument("--text-tokens", type=int, default=128, help="text tokens of one row's prompt and answer (default 128)")
    p.add_argument("--answer-tokens", type=int, default=48, help="answer tokens whose logits are kept (default 48)")
    p.add_argument("--overhead-gib", type=float, default=1.0, help="runtime overhead per device (default 1.0)")
    p.add_argument("--layers", type=int, help="language-model layers of a reduced-depth preset")
    p.add_argument("--vision-layers", type=int, help="vision blocks of a reduced-depth preset")
    p.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from ultravqa_ray.cli import CommandError
    from ultravqa_ray.train.memory_plan import GiB, PlanSettings, Workload, plan_all, shape_of

    for name in ("gpus", "frames", "resolution", "batch", "lora_rank", "text_tokens", "answer_tokens"):
        if getattr(args, name) < 1:
            raise CommandError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.gpu_memory_gib <= 0 or args.overhead_gib < 0:
        raise CommandError("--gpu-memory-gib must be positive and --overhead-gib not negative")
    shape = shape_of(args.model, layers=args.layers, vision_layers=args.vision_layers)
    workload = Workload(frames=args.frames, resolution=args.resolution, batch=args.batch,
                        text_tokens=args.text_tokens, answer_tokens=args.answer_tokens)  # fmt: skip
    settings = PlanSettings(
        mode=args.mode, gpus=args.gpus, lora_rank=args.lora_rank, gradient_checkpointing=args.gradient_checkpointing,
        freeze_vision=args.freeze_vision, overhead=int(args.overhead_gib * GiB),
    )  # fmt: skip
    report = plan_all(shape, workload, settings, int(args.gpu_memory_gib * GiB))
    out = sys.stdout  # no Ray here: nothing else prints
    if args.json:
        print(json.dumps(report), file=out)
        return 0
    print(
        f"{report['model']}: {report['params'] / 1e9:.2f} B parameters, mode {report['mode']}, {report['gpus']} device(s), "
        f"{report['frames']} frames at {report['resolution']}px = {report['video_tokens_per_clip']} video tokens "
        f"({report['vision_patches_per_clip']} vision patches), {report['batch']} video(s) per device",
        file=out,
    )
    print(f"{'task':<6} {'weights':>9} {'grads':>9} {'optim':>9} {'activ':>9} {'overhead':>9} {'total GiB':>10} "
          f"{'max batch':>10}", file=out)  # fmt: skip
    for task, plan in report["plans"].items():
        cells = [plan[k] / GiB for k in ("weights", "gradients", "optimizer", "activations", "overhead", "total")]
        print(f"{task:<6} " + " ".join(f"{c:>9.2f}" for c in cells[:-1]) + f" {cells[-1]:>10.2f} "
              f"{report['largest_batch'][task]:>10}", file=out)  # fmt: skip
    saved = report["plans"]["aso"]["reference_saved"] / GiB
    print(f"ASO reads the stored pi_ref: no reference model in memory ({saved:.2f} GiB saved per device); "
          f"max batch: videos per device that fit {report['device_gib']:.0f} GiB", file=out)  # fmt: skip
    return 0
