"""Training-step cost of the three objectives on the same batch: SFT, ASO, and the GRPO baseline.

    python bench/bench_losses.py            # --repeats N

For a tiny model (hidden 64, 2 layers) and a small one (hidden 256, 4 layers), CPU float32, one
optimizer step on 2 videos x 5 dimensions = 10 (video, dimension) items:

- SFT step: forward, token cross-entropy on the answer, backward, AdamW step.
- ASO step: the same forward; KL(pi* || pi_theta) on the score-token logits against a stored
  pi_ref (no reference model in the loop); backward; step.
- GRPO step: sample G = 6 completions of up to 64 tokens per item from the policy, parse the
  scores, group-normalised advantages, a reference forward (no grad) and a policy forward over
  prompt + completion, clipped policy-gradient loss with the k3 KL penalty, backward, step.

Targets: ASO step at most 1.15x the SFT step; GRPO well over 5x ASO per item.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.wire.dimensions import DIMENSIONS  # noqa: E402
from ultravqa_ray.losses import GRPOConfig, aso_loss, sft_loss  # noqa: E402
from ultravqa_ray.model import ModelConfig, ScorerModel  # noqa: E402
from ultravqa_ray.model.collate import TrainingSample  # noqa: E402
from ultravqa_ray.model.tiny import build_tiny_model  # noqa: E402
from ultravqa_ray.train.adapter import build_training_batch, forward_train  # noqa: E402
from ultravqa_ray.train.grpo import grpo_batch_loss  # noqa: E402
from ultravqa_ray.video import VideoClip  # noqa: E402

G, MAX_NEW = 6, 64


def clips(n: int, seed: int = 0) -> list[VideoClip]:
    rng = np.random.default_rng(seed)
    return [VideoClip.from_frames(rng.integers(0, 256, size=(8, 64, 64, 3), dtype=np.uint8), fps=2.0) for _ in range(n)]


def sft_step(scorer, batch, opt) -> None:
    out = forward_train(scorer, batch)
    sft_loss(out.logits, out.labels).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def aso_step(scorer, batch, pi_ref, ratings, opt) -> None:
    out = forward_train(scorer, batch)
    aso_loss(out.score_logits, pi_ref, ratings, beta=0.1).loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def grpo_step(scorer, videos, ratings, opt) -> int:
    """One GRPO step (sampling loop in ultravqa_ray.train.grpo); returns the completion tokens sampled."""
    step = grpo_batch_loss(scorer, videos, ratings, GRPOConfig(group_size=G, max_new_tokens=MAX_NEW))
    step.loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return step.tokens


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def bench_model(folder: Path, repeats: int) -> tuple[float, float, float, float]:
    """(SFT ms, ASO ms, GRPO ms, mean completion tokens) for one model folder."""
    scorer = ScorerModel(ModelConfig(name_or_path=str(folder), device="cpu", dtype="float32")).setup()
    scorer.model.train()
    opt = torch.optim.AdamW(scorer.model.parameters(), lr=1e-5)
    videos = clips(2)
    rng = np.random.default_rng(1)
    scores = rng.integers(1, 6, size=len(videos) * len(DIMENSIONS))
    samples = [TrainingSample(video=v, dimension=d, score=int(scores[i * 5 + j]))
               for i, v in enumerate(videos) for j, d in enumerate(DIMENSIONS)]  # fmt: skip
    batch = build_training_batch(scorer, samples)
    ratings = torch.tensor(rng.integers(1, 6, size=(len(samples), 3)))
    pi_ref = torch.softmax(torch.randn(len(samples), scorer.k), -1)
    sft = timed(lambda: sft_step(scorer, batch, opt), repeats)
    aso = timed(lambda: aso_step(scorer, batch, pi_ref, ratings, opt), repeats)
    tokens: list[int] = []
    grpo = timed(lambda: tokens.append(grpo_step(scorer, videos, ratings, opt)), max(1, repeats // 3))
    return sft, aso, grpo, statistics.mean(tokens) / (len(samples) * G)


def run(repeats: int) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    print(f"CPU float32, torch threads 2, batch = 2 videos x 5 dimensions, median of {repeats} "
          f"(GRPO: {max(1, repeats // 3)})")  # fmt: skip
    print(f"{'model':<18}{'SFT ms':>10}{'ASO ms':>10}{'ASO/SFT':>9}{'GRPO ms':>11}{'GRPO/ASO':>10}{'tokens':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, hidden, layers in (("tiny h64 L2", 64, 2), ("small h256 L4", 256, 4)):
            folder = build_tiny_model("qwen2_5_vl", Path(tmp) / name.replace(" ", "_"),
                                      hidden_size=hidden, num_layers=layers)  # fmt: skip
            sft, aso, grpo, tokens = bench_model(folder, repeats)
            print(f"{name:<18}{sft:>10.1f}{aso:>10.1f}{aso / sft:>8.2f}x{grpo:>11.1f}{grpo / aso:>9.1f}x{tokens:>8.1f}")
    print("tokens = mean sampled completion tokens per GRPO completion (max 64); per-item cost ratios equal")
    print("the step ratios because every step covers the same 10 (video, dimension) items.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    run(parser.parse_args().repeats)
