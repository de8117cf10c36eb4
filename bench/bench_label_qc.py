"""Rater quality control on a simulated crowd with known bad raters: does it find them?

``python bench/bench_label_qc.py [--videos 300] [--raters 24] [--per-video 5] [--seeds 5]``

Each video has a true score per dimension (uniform on [1, K]); each rater sees a random subset of
videos (``--per-video`` raters a video) and scores ``clip(round(true + bias + noise), 1, K)``.
Kinds of rater, known to the simulation only:

    honest     bias 0, noise std 0.5 .. 0.8
    biased+    bias +1.2, noise std 0.6        biased-   bias -1.2, noise std 0.6
    random     uniform on 1..K                  lazy      always the middle score
    sloppy     bias 0, noise std 1.6 (inconsistent)

10% of the videos are gold (their true score, rounded, is the known answer). The QC of
``ultravqa_ray.labels.quality`` with the default thresholds marks raters; the table gives, per kind,
how many were marked, and over all seeds the precision and recall of the marking, plus how well the
subject model's recovered scores track the truth compared with the plain mean opinion score, and the
coverage of its 95% intervals.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from connectors.wire.dimensions import DIMENSIONS
from ultravqa_ray.labels.quality import quality_report
from ultravqa_ray.labels.records import Rating

KINDS = {"honest": 16, "biased+": 2, "biased-": 1, "random": 2, "lazy": 1, "sloppy": 2}


def simulate(n_videos: int, per_video: int, k: int, seed: int):
    rng = np.random.default_rng(seed)
    raters = [(f"{kind}-{i}", kind) for kind, n in KINDS.items() for i in range(n)]
    true = rng.uniform(1, k, size=(n_videos, len(DIMENSIONS)))
    ratings = []
    for j in range(n_videos):
        for r in rng.choice(len(raters), size=per_video, replace=False):
            name, kind = raters[r]
            for d, dim in enumerate(DIMENSIONS):
                t = true[j, d]
                if kind == "random":
                    s = rng.integers(1, k + 1)
                elif kind == "lazy":
                    s = (k + 1) // 2
                else:
                    bias = {"biased+": 1.2, "biased-": -1.2}.get(kind, 0.0)
                    std = {"sloppy": 1.6, "honest": 0.5 + 0.3 * (r % 4) / 3}.get(kind, 0.6)
                    s = int(np.clip(np.rint(t + bias + std * rng.standard_normal()), 1, k))
                ratings.append(Rating(f"v{j:04d}", name, dim, int(s)))
    gold_ids = rng.choice(n_videos, size=n_videos // 10, replace=False)
    gold = {
        f"v{j:04d}": {dim: int(np.clip(np.rint(true[j, d]), 1, k)) for d, dim in enumerate(DIMENSIONS)}
        for j in gold_ids
    }
    return dict(raters), true, ratings, gold


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=300)
    p.add_argument("--per-video", type=int, default=5)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args()
    marked = {kind: 0 for kind in KINDS}
    tp = fp = fn = 0
    err_model, err_mos, coverage, alphas, seconds = [], [], [], [], []
    for seed in range(args.seeds):
        kinds, true, ratings, gold = simulate(args.videos, args.per_video, args.k, seed)
        start = time.perf_counter()
        report = quality_report(ratings, k=args.k, dimensions=DIMENSIONS, gold=gold)
        seconds.append(time.perf_counter() - start)
        flagged = set(report.flagged)
        for name, kind in kinds.items():
            bad = kind != "honest"
            marked[kind] += name in flagged
            tp += bad and name in flagged
            fp += (not bad) and name in flagged
            fn += bad and name not in flagged
        for d, dim in enumerate(DIMENSIONS):
            q = report.per_dimension[dim]
            idx = [int(v[1:]) for v in q.model.videos]
            t = true[idx, d]
            mos = {}
            for r in ratings:
                if r.dimension == dim:
                    mos.setdefault(r.video_id, []).append(r.score)
            plain = np.array([np.mean(mos[v]) for v in q.model.videos])
            err_model.append(np.abs(np.array(q.model.scores) - t).mean())
            err_mos.append(np.abs(plain - t).mean())
            lo, hi = np.array(q.model.ci95()).T
            coverage.append(np.mean((lo <= t) & (t <= hi)))
            alphas.append(q.alpha)
    print(f"simulated crowd: {args.videos} videos x {args.per_video} raters each, K = {args.k}, "
          f"{sum(KINDS.values())} raters, 10% gold, {args.seeds} seeds")  # fmt: skip
    print(f"{'kind':10s} {'raters':>7s} {'marked':>7s}")
    for kind, n in KINDS.items():
        print(f"{kind:10s} {n * args.seeds:7d} {marked[kind]:7d}")
    precision = tp / (tp + fp) if tp + fp else float("nan")
    print(f"precision {precision:.3f}  recall {tp / (tp + fn):.3f}  (bad = every kind but honest)")
    print(f"mean |recovered - true| {np.mean(err_model):.3f}  vs plain mean {np.mean(err_mos):.3f}")
    print(
        f"95% interval coverage of the true score {np.mean(coverage):.3f}  alpha (ordinal) mean {np.mean(alphas):.3f}"
    )
    print(f"quality_report: {np.median(seconds):.2f} s median per crowd ({len(ratings)} ratings)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
