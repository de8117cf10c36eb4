"""Model swap benchmark: how long a swap takes to reach every replica, and what it costs the traffic.

    python bench/bench_swap.py          # ~1 minute on 2 cores; --replicas N, --steady-s S, --clients C

A local Ray and Serve, the scoring application deployed from a config (as ``serve deploy`` and a
RayService do) on tiny model A with ``--replicas`` replicas; ``--clients`` threads keep it busy with
``score_many`` requests of 8 uploads (the Kafka bridge's chunks) on synthetic clips. After
``--steady-s`` seconds of steady state, :func:`ultravqa_ray.serve.swap.swap_model` moves it to tiny
model B (another seed, 3 layers instead of 2) and waits until every replica serves B; the load goes
on for ``--steady-s`` more. Reported: the swap time (request to every replica serving B, as
``swap_model`` measures it), throughput before, during and after the swap, failed requests, and
whether any score event named A after one named B (per client, in completion order).

The CPU is shared with other jobs on the development VM: figures move between runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.kafka.broker import free_port  # noqa: E402
from connectors.wire.messages import UploadEvent  # noqa: E402
from ultravqa_ray.data import SynthConfig, generate_corpus  # noqa: E402
from ultravqa_ray.schemas import read_manifest  # noqa: E402
from ultravqa_ray.schemas.manifest import resolve_uri  # noqa: E402

OUT = ROOT / "bench" / "out"
APP = "bench-swap"
CHUNK = 8


def now_utc() -> datetime:
    return datetime.now(UTC)


def corpus() -> list[str]:
    manifest = OUT / "swap-corpus" / "manifest.jsonl"
    if not manifest.exists():
        generate_corpus(manifest.parent, SynthConfig(n=16, seed=11))
    return [resolve_uri(r.uri, manifest) for r in read_manifest(manifest)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4, help="threads sending requests of 8 uploads")
    parser.add_argument("--steady-s", type=float, default=12.0, help="seconds of load before and after the swap")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-swap-"))
    env = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": str(work / "ray")}
    os.environ.update(env)
    import ray
    from ray import serve

    from ultravqa_ray.model.tiny import build_tiny_model
    from ultravqa_ray.serve.swap import SCORER, deploy_config, swap_model

    uris = corpus()
    model_a = str(build_tiny_model("qwen2_vl", work / "model-a", seed=1))
    model_b = str(build_tiny_model("qwen2_vl", work / "model-b", seed=2, num_layers=3))
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    deploy_config([{
        "name": APP, "route_prefix": "/bench-swap", "import_path": "ultravqa_ray.serve.app:build_app",
        "args": {"model": model_a, "http": False, "torch_threads": 1,
                 "decode": {"num_frames": 8, "height": 64, "width": 64},
                 "scorer": {"num_replicas": args.replicas, "num_cpus": 0.5}},
        "deployments": [{"name": SCORER, "user_config": {"max_batch_size": 8, "batch_wait_timeout_s": 0.01,
                                                         "model": model_a}}],
    }])  # fmt: skip
    while not str(getattr(serve.status().applications.get(APP), "status", "")).endswith("RUNNING"):
        time.sleep(0.2)
    handle = serve.get_deployment_handle(SCORER, APP)

    done: list[tuple[float, int, str]] = []  # (completion time, videos, model name)
    failures: list[str] = []
    went_back = threading.Event()
    stop = threading.Event()

    def client(index: int) -> None:
        seen_b = False
        i = index
        while not stop.is_set():
            chunk = [UploadEvent(video_id=f"c{index}-{i}-{j}", uri=uris[(i + j) % len(uris)], event_time=now_utc()) for j in range(CHUNK)]
            i += CHUNK
            try:
                outcomes = handle.score_many.remote(chunk).result(timeout_s=120)
            except Exception as exc:  # a failed request is what the benchmark counts
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            now = time.perf_counter()
            for outcome in outcomes:
                if outcome.event is None:
                    failures.append(str(outcome.error))
                    continue
                name = outcome.event.model.name
                if name == model_b:
                    seen_b = True
                elif seen_b:
                    went_back.set()
                done.append((now, 1, name))

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(args.clients)]
    t_start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(args.steady_s)
    t_swap = time.perf_counter()
    report = swap_model(APP, model_b, timeout_s=300)
    t_swapped = time.perf_counter()
    time.sleep(args.steady_s)
    stop.set()
    for t in threads:
        t.join(150)
    t_end = time.perf_counter()

    def rate(a: float, b: float) -> float:
        return sum(n for t, n, _ in done if a <= t < b) / max(b - a, 1e-9)

    warm = t_start + min(3.0, args.steady_s / 3)
    load_s = [s["last_swap"]["load_s"] for s in report.replicas.values() if s.get("last_swap")]
    rows = [
        ("replicas / clients (8 uploads a request)", f"{args.replicas} / {args.clients}"),
        ("swap: request -> every replica serves B (s)", f"{report.seconds:.2f}"),
        ("model load in each replica (s)", ", ".join(f"{x:.2f}" for x in load_s)),
        ("throughput steady state, model A (videos/s)", f"{rate(warm, t_swap):.1f}"),
        ("throughput during the swap (videos/s)", f"{rate(t_swap, t_swapped):.1f}"),
        ("throughput after, model B (videos/s)", f"{rate(t_swapped, t_end):.1f}"),
        ("videos scored by A / by B", f"{sum(1 for *_, m in done if m == model_a)} / "
                                      f"{sum(1 for *_, m in done if m == model_b)}"),  # fmt: skip
        ("failed requests or videos", str(len(failures))),
        ("an event named A after one named B (per client)", "yes" if went_back.is_set() else "no"),
        ("every replica serves B", "yes" if report.ok else f"no: {report.refused}"),
    ]
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    if failures:
        print("first failures:", statistics.mode(failures) if failures else "", file=sys.stderr)
    serve.shutdown()
    ray.shutdown()
    return 0 if report.ok and not failures and not went_back.is_set() else 1


if __name__ == "__main__":
    sys.exit(main())
