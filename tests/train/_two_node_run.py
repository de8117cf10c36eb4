"""Run SFT on a two-node local Ray cluster (``ray.cluster_utils.Cluster``), one worker per node.

Started by tests/train/test_cluster.py in a subprocess (a second cluster must not share the test
session's Ray): ``python -m tests.train._two_node_run MANIFEST MODEL OUT``. Prints a JSON line.
"""

from __future__ import annotations

import json
import sys


def main(manifest: str, model: str, out: str) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from tests.train.conftest import DECODE
    from ultravqa_ray.model import ModelConfig
    from ultravqa_ray.train.config import DataConfig, TrainConfig
    from ultravqa_ray.train.trainer import fit

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "resources": {"slot": 1}})
    cluster.add_node(num_cpus=2, resources={"slot": 1})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    try:
        result = fit(TrainConfig(
            objective="sft", model=ModelConfig(name_or_path=model),
            data=DataConfig(manifest=manifest, decode=DECODE, cache_dir=f"{out}/cache"),
            output_dir=f"{out}/runs", run_name="two-node", workers=2, cpus_per_worker=0.5,
            worker_resources={"slot": 1}, batch_size=2, epochs=1, lr=1e-3,
        ))  # fmt: skip
        nodes = len([n for n in ray.nodes() if n["Alive"]])
        print(json.dumps({"model_dir": result.model_dir, "videos": result.metrics["videos"], "nodes": nodes}))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:4])
