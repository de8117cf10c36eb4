"""Training benchmark: quality after SFT and after ASO, ASO vs GRPO at equal time, throughput, time split.

    python bench/bench_train.py                      # --train 1000 --heldout 300, the recipe's epochs

On a synthetic corpus (train and held-out split from different seeds), with the tiny Qwen2.5-VL
of ultravqa_ray.train.default_model's recipe, on a local Ray:

1. SFT (1 worker) from random init -> held-out metrics (acc@0.5, MAE, SRCC, PLCC per dimension);
2. reference pass (pi_ref) -> ASO from the SFT model -> held-out metrics;
3. GRPO from the same SFT model for the same training wall time as ASO -> held-out metrics;
4. one SFT epoch with 1 and with 2 workers (0.5 CPU each): videos/s and items/s, and the wall-clock
   split of a fresh-cache SFT run into decode, data wait, forward/backward/step, and Ray overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.wire.dimensions import DIMENSIONS  # noqa: E402
from ultravqa_ray.data.config import SynthConfig  # noqa: E402
from ultravqa_ray.data.synth import generate_corpus  # noqa: E402
from ultravqa_ray.losses import ASOConfig, GRPOConfig  # noqa: E402
from ultravqa_ray.model.config import ModelConfig  # noqa: E402
from ultravqa_ray.train.config import DataConfig, EvalConfig, ReferenceConfig, TrainConfig  # noqa: E402
from ultravqa_ray.train.default_model import DEFAULT_MODEL_RECIPE, default_decode_config, initial_model  # noqa: E402

SHORT = {"motion_quality": "mot_q", "motion_amplitude": "mot_amp", "aesthetic_quality": "aesth",
         "content_quality": "content", "clarity_quality": "clarity"}  # fmt: skip


def corpus(out: Path, n: int, seed: int) -> Path:
    manifest = out / "manifest.jsonl"
    return manifest if manifest.exists() else generate_corpus(out, SynthConfig(n=n, seed=seed, workers=2))


def evaluate_model(folder: str, heldout: Path, out: Path) -> dict:
    from ultravqa_ray.train.evaluate import evaluate

    model = ModelConfig(name_or_path=folder, device="cpu", dtype="float32")
    result = evaluate(EvalConfig(model=model, manifest=str(heldout), decode=default_decode_config(), out=str(out)))
    return json.loads(result.metrics_json.read_text())


def quality_table(rows: dict[str, dict]) -> None:
    print(f"{'stage':<8}{'dimension':<10}{'acc@0.5':>9}{'MAE':>8}{'SRCC':>8}{'PLCC':>8}")
    for stage, metrics in rows.items():
        for dim in DIMENSIONS:
            m = metrics["per_dimension"][dim.value]
            print(f"{stage:<8}{SHORT[dim.value]:<10}{m['acc@0.5']:>9.3f}{m['mae']:>8.3f}"
                  f"{_f(m['srcc']):>8}{_f(m['plcc']):>8}")  # fmt: skip
        o = metrics["overall"]
        print(f"{stage:<8}{'MEAN':<10}{o['acc@0.5']:>9.3f}{o['mae']:>8.3f}{_f(o['srcc']):>8}{_f(o['plcc']):>8}")


def _f(value) -> str:
    return "nan" if value is None else f"{value:.3f}"


def run(args) -> None:
    import ray

    from ultravqa_ray.train.reference import reference_pass
    from ultravqa_ray.train.trainer import fit

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="uvr-bench-", dir="/tmp"),
             runtime_env={"env_vars": {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1"}})  # fmt: skip
    recipe = DEFAULT_MODEL_RECIPE
    t0 = time.perf_counter()
    train = corpus(work / f"train-{args.train}", args.train, 0)
    heldout = corpus(work / f"heldout-{args.heldout}", args.heldout, 1)
    print(f"corpus: {args.train} train (seed 0) / {args.heldout} held-out (seed 1) in {time.perf_counter() - t0:.0f}s")
    init = initial_model(work / "init", recipe)
    decode = default_decode_config()
    data = DataConfig(manifest=str(train), decode=decode, rationale=False, cache_dir=str(work / "cache"))
    runs = work / f"runs-{int(time.time())}"
    common = {"output_dir": str(runs), "cpus_per_worker": 1.0, "log_every": 1000, "batch_size": 2,
              **recipe.get("train", {})}  # fmt: skip
    model = ModelConfig(name_or_path=str(init), device="cpu", dtype="float32")

    # throughput and time split first, on a fresh decode cache
    split_data = data.model_copy(update={"cache_dir": str(runs / "fresh-cache")})
    through = {}
    for workers in (1, 2):
        t = time.perf_counter()
        res = fit(TrainConfig(objective="sft", model=model, data=split_data, run_name=f"tp{workers}", epochs=1,
                              lr=1e-3, workers=workers, **(common | {"cpus_per_worker": 1.0 if workers == 1 else 0.5})))  # fmt: skip
        wall = time.perf_counter() - t
        through[workers] = (res, wall)
    print()
    print(f"{'workers':<9}{'videos/s':>10}{'items/s':>10}{'epoch s':>9}{'fit wall s':>12}")
    for workers, (res, wall) in through.items():
        vps = res.metrics["videos"] * workers / res.metrics["epoch_s"]
        print(f"{workers:<9}{vps:>10.2f}{vps * len(DIMENSIONS):>10.2f}{res.metrics['epoch_s']:>9.1f}{wall:>12.1f}")
    res, wall = through[1]
    decode_s = res.ingest.decode_wall_s
    compute_s, wait_s = res.metrics["compute_s"], res.metrics["data_wait_s"]
    other = wall - decode_s - compute_s - wait_s
    print(f"\none SFT epoch, 1 worker, fresh cache: fit wall {wall:.1f}s = decode (Ray Data, to Parquet) "
          f"{decode_s:.1f}s ({decode_s / wall:.0%}) + data wait in loop {wait_s:.1f}s ({wait_s / wall:.0%}) + "
          f"forward/backward/step {compute_s:.1f}s ({compute_s / wall:.0%}) + Ray overhead (worker group, "
          f"checkpoint, report) {other:.1f}s ({other / wall:.0%})")  # fmt: skip

    # quality: SFT -> reference -> ASO ; GRPO at equal time
    t = time.perf_counter()
    sft = fit(TrainConfig(objective="sft", model=model, data=data, run_name="sft", epochs=args.sft_epochs,
                          lr=recipe["sft"]["lr"], workers=1, **common))  # fmt: skip
    print(f"\nSFT {args.sft_epochs} epochs: {time.perf_counter() - t:.0f}s")
    sft_model = model.model_copy(update={"name_or_path": sft.model_dir})
    ref = reference_pass(ReferenceConfig(model=sft_model, data=data, output=str(runs / "pi_ref.parquet")))
    ref_data = data.model_copy(update={"reference": str(ref.path)})
    aso = fit(TrainConfig(objective="aso", model=sft_model, data=ref_data, run_name="aso", epochs=args.aso_epochs,
                          lr=args.aso_lr, workers=1, aso=ASOConfig(beta=args.beta), **common))  # fmt: skip
    aso_train_s = aso.metrics["epoch_s"] * args.aso_epochs
    grpo = fit(TrainConfig(objective="grpo", model=sft_model, data=ref_data, run_name="grpo", epochs=args.aso_epochs,
                           lr=args.aso_lr, workers=1, time_limit_s=aso_train_s,
                           grpo=GRPOConfig(group_size=4, max_new_tokens=16), **common))  # fmt: skip
    results = {name: evaluate_model(m.model_dir, heldout, runs / f"eval-{name}")
               for name, m in (("sft", sft), ("aso", aso), ("grpo", grpo))}  # fmt: skip
    # metrics["videos"] is the last epoch's count; steps x batch size is the whole run's (1 worker)
    aso_videos, grpo_videos = (m.metrics["step"] * common["batch_size"] for m in (aso, grpo))
    print(f"\nheld-out ({args.heldout} clips) after each stage; ASO trained {aso_videos} videos "
          f"({args.aso_epochs} epochs) in {aso_train_s:.0f}s, GRPO {grpo_videos} videos in the same time budget")  # fmt: skip
    quality_table(results)
    s, a, g = (results[k]["overall"] for k in ("sft", "aso", "grpo"))
    print(f"\nASO vs SFT: mean MAE {s['mae']:.3f} -> {a['mae']:.3f}, mean acc@0.5 {s['acc@0.5']:.3f} -> "
          f"{a['acc@0.5']:.3f}; GRPO at equal time: MAE {g['mae']:.3f}, acc@0.5 {g['acc@0.5']:.3f}")  # fmt: skip
    print(f"total {time.perf_counter() - t0:.0f}s (2-core VM shared with other jobs: timings are noisy)")
    ray.shutdown()
    if not args.keep:
        shutil.rmtree(runs, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=1000, help="training clips (seed 0)")
    parser.add_argument("--heldout", type=int, default=300, help="held-out clips (seed 1)")
    parser.add_argument("--sft-epochs", type=int, default=DEFAULT_MODEL_RECIPE["sft"]["epochs"])
    parser.add_argument("--aso-epochs", type=int, default=DEFAULT_MODEL_RECIPE["aso"]["epochs"])
    parser.add_argument("--aso-lr", type=float, default=DEFAULT_MODEL_RECIPE["aso"]["lr"])
    parser.add_argument("--beta", type=float, default=DEFAULT_MODEL_RECIPE["aso"]["beta"])
    parser.add_argument("--work", default=str(ROOT / "bench" / "out" / "train"), help="cache folder")
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    run(parser.parse_args())
