"""Distributed training on Ray Train: SFT, the reference pass, ASO (and the GRPO baseline), evaluation.

- :mod:`.config`: ``TrainConfig``, ``ReferenceConfig``, ``EvalConfig`` (YAML + ``--set`` overrides).
- :mod:`.data`: manifest -> decoded frames (Ray Data, Parquet cache, bad videos counted and skipped).
- :mod:`.objectives`: SFT, ASO, GRPO as strategies of ONE loop (:mod:`.loop`).
- :mod:`.trainer`: ``fit(config)``: TorchTrainer, FailureConfig, resume, HF checkpoints.
- :mod:`.reference`: the pi_ref pass (Ray Data actor pool with the frozen SFT model).
- :mod:`.evaluate`: manifest or MOS CSV -> metrics.json + report.
- :mod:`.default_model`: the small model the demo scores with (shipped; its recipe reruns the jobs).

Importing this package does not import Ray or transformers.
"""

from ultravqa_ray.train.config import DataConfig, EvalConfig, ReferenceConfig, TrainConfig

__all__ = ["DataConfig", "EvalConfig", "ReferenceConfig", "TrainConfig"]
