"""Typed settings of the training jobs (SFT, ASO, GRPO), the reference pass and the evaluation job.

One YAML file per job (``jobs/configs/*.yaml``), overridden from the command line with dotted
``--set key=value`` pairs (:meth:`ultravqa_ray.config.Config.load`)::

    cfg = TrainConfig.load("jobs/configs/sft.yaml", ["workers=2", "data.manifest=runs/c/manifest.jsonl"])

The same :class:`TrainConfig` drives every objective; only ``objective`` and its loss section
change between SFT, ASO and GRPO (one trainer, the objective is a strategy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ultravqa_ray.config import Config, LocalPath
from ultravqa_ray.losses import ASOConfig, ExpectedScoreConfig, GRPOConfig, SoftLabelConfig
from ultravqa_ray.model.config import ModelConfig
from ultravqa_ray.video.config import DecodeConfig

Objective = Literal["sft", "aso", "grpo", "soft_sft", "expected_score"]


class DataConfig(Config):
    """Where the annotated videos are and how they are decoded for training."""

    manifest: LocalPath = Field(..., min_length=1, description="Annotation manifest (.jsonl or .parquet).")
    decode: DecodeConfig = Field(
        default_factory=lambda: DecodeConfig(num_frames=8, height=64, width=64, threads=1),
        description="Frame sampling and size; the same settings must be used when scoring.",
    )
    cache_dir: LocalPath | None = Field(
        None,
        description="Folder of the decoded-frame Parquet cache (default: <manifest dir>/.decoded); "
        "keyed by manifest content and decode settings.",
    )
    reference: LocalPath | None = Field(
        None, description="pi_ref Parquet folder written by the reference pass (needed by ASO)."
    )
    limit: int | None = Field(None, ge=1, description="Use only the first N records (smoke runs).")
    rationale: bool = Field(True, description="Train on '<rationale> Score: N' (False: 'Score: N' only).")
    both_answers: bool = Field(
        False,
        description="With rationale: train each (video, dimension) on both answers, '<rationale> Score: N' and "
        "the one-pass 'Score: N', so that the score read without a rationale is trained too; ASO then fits "
        "pi* at the one-pass position, where the reference pass computed pi_ref.",
    )
    decode_batch_size: int = Field(16, ge=1, description="Videos per Ray Data decode task.")
    shuffle_seed: int | None = Field(0, description="Seed of the per-epoch local shuffle (None: no shuffle).")
    storage: dict[str, str] = Field(
        default_factory=dict, description="Extra options for object storage (endpoint_override, region...)."
    )


class FaultConfig(Config):
    """Test hook: one real worker death (``os._exit``) at a given global step, once per run."""

    exit_at_step: int | None = Field(None, ge=1, description="Global step after which rank `rank` exits.")
    rank: int = Field(0, ge=0, description="Rank of the worker that dies.")


class LoraConfig(Config):
    """LoRA adapters (peft) on the language model's projections; the base stays frozen."""

    rank: int = Field(16, ge=1, description="Adapter rank r.")
    alpha: float = Field(32.0, gt=0, description="Scale numerator: the update is B A x alpha / r.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter input (0 keeps no extra activations).")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1,
        description="Names of the projections that get adapters (module-name suffixes).",
    )
    vision: bool = Field(
        False, description="Also adapt the vision tower's modules of those names (Qwen2.5-VL: its MLP)."
    )


class TrainConfig(Config):
    """One training run: objective, model, data, parallelism, optimiser, checkpoints."""

    objective: Objective = Field(
        "sft", description="sft, aso (analytic score optimisation), grpo, or the baselines soft_sft, expected_score."
    )
    model: ModelConfig = Field(..., description="The starting checkpoint (for ASO/GRPO: the SFT model).")
    data: DataConfig = Field(..., description="Training data.")
    output_dir: LocalPath = Field("runs", description="Storage path of Ray Train (local folder or s3://...).")
    run_name: str = Field("train", min_length=1, description="Run name: checkpoints go to output_dir/run_name.")
    resume: bool = Field(True, description="Continue from the run's latest checkpoint when there is one.")
    workers: int = Field(1, ge=1, description="Ray Train workers (data-parallel replicas).")
    use_gpu: bool = Field(False, description="One GPU per worker, NCCL; otherwise CPU and gloo.")
    cpus_per_worker: float | None = Field(
        None, gt=0, description="CPUs reserved per worker (fractional is fine); unset: 1, lowered to fit beside data_cpus."
    )
    data_cpus: float = Field(
        1.0, ge=0, description="CPUs kept free for the Ray Data tasks that feed the workers (each task takes 1)."
    )
    check_resources: bool = Field(
        True, description="Check workers + data_cpus against the cluster before starting (off: autoscaling clusters)."
    )
    resource_wait_s: float = Field(
        60.0, ge=0, description="How long to wait for nodes still joining before refusing a run that does not fit."
    )
    stall_timeout_s: float | None = Field(
        600.0, gt=0, description="Fail, naming the stage, when a run makes no progress for this long (None: never)."
    )
    worker_resources: dict[str, float] = Field(
        default_factory=dict, description="Extra Ray resources per worker (e.g. a custom node slot)."
    )
    strategy: Literal["ddp", "fsdp2"] = Field("ddp", description="ddp, or fsdp2 (fully_shard per layer).")
    mixed_precision: Literal["auto", "no", "bf16"] = Field(
        "auto", description="auto: bf16 autocast on GPU, none on CPU."
    )
    epochs: int = Field(1, ge=1, description="Passes over the training set.")
    batch_size: int = Field(2, ge=1, description="Videos per worker per micro-batch (x dimensions rows).")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimiser step.")
    lr: float = Field(1e-5, gt=0, description="Peak learning rate (AdamW).")
    lora: LoraConfig | None = Field(
        None, description="Train LoRA adapters instead of every weight (None: full fine-tuning)."
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute each layer's activations in the backward (less memory, ~30% more compute)."
    )
    freeze_vision: bool = Field(
        False, description="Keep the vision tower's weights fixed; train the language model only."
    )
    vision_lr_scale: float = Field(
        1.0, gt=0, description="The vision tower's learning rate as a multiple of lr (e.g. 0.1 to adapt it gently)."
    )
    freeze: list[str] = Field(
        default_factory=list,
        description="Parameter-name prefixes to keep fixed, as model.named_parameters() names them "
        "(e.g. model.visual.patch_embed); each must match at least one parameter.",
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps with linear warm-up.")
    schedule: Literal["constant", "cosine"] = Field("cosine", description="Learning-rate decay after warm-up.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping (None: off).")
    seed: int = Field(0, description="Seed of the model-side randomness (dropout, GRPO sampling).")
    max_failures: int = Field(2, ge=0, description="Worker-group restarts allowed (FailureConfig).")
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept (the latest ones).")
    log_every: int = Field(10, ge=1, description="Log and record step metrics every N optimiser steps.")
    aso: ASOConfig = Field(default_factory=ASOConfig, description="ASO loss settings.")
    soft_label: SoftLabelConfig = Field(default_factory=SoftLabelConfig, description="Soft-label SFT settings.")
    expected_score: ExpectedScoreConfig = Field(
        default_factory=ExpectedScoreConfig, description="Expected-score regression settings."
    )
    grpo: GRPOConfig = Field(
        default_factory=lambda: GRPOConfig(group_size=4, max_new_tokens=48), description="GRPO settings."
    )
    fault: FaultConfig = Field(default_factory=FaultConfig, description="Failure injection (tests only).")
    time_limit_s: float | None = Field(
        None, gt=0, description="Stop after the step that passes this wall time (equal-time comparisons)."
    )

    @model_validator(mode="after")
    def _lora_with_ddp(self) -> TrainConfig:
        if self.lora is not None and self.strategy == "fsdp2":
            raise ValueError("lora trains with strategy ddp (the frozen base is replicated); fsdp2 is for full fine-tuning")
        return self

    @model_validator(mode="after")
    def _needs_reference(self) -> TrainConfig:
        if self.objective == "aso" and not self.data.reference:  # GRPO's reference is the start model
            raise ValueError(f"objective {self.objective} needs data.reference (run the reference pass)")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.run_name


class ReferenceConfig(Config):
    """The reference pass: score the training set once with the frozen SFT model."""

    model: ModelConfig = Field(..., description="The frozen SFT model.")
    data: DataConfig = Field(..., description="The training data (same decode settings as training).")
    output: LocalPath | None = Field(None, description="pi_ref folder (default: <manifest dir>/pi_ref).")
    actors: int = Field(1, ge=1, description="Scoring actors in the Ray Data actor pool.")
    cpus_per_actor: float = Field(1.0, gt=0, description="CPUs reserved per actor.")
    gpus_per_actor: float = Field(0.0, ge=0, description="GPUs per actor.")
    batch_size: int = Field(8, ge=1, description="Videos per scoring call.")


class EvalConfig(Config):
    """Evaluation: an annotation manifest or a MOS CSV, scored by a model, metrics and a report out."""

    model: ModelConfig = Field(..., description="The model to evaluate.")
    manifest: LocalPath | None = Field(None, description="Annotation manifest to evaluate against.")
    mos_csv: LocalPath | None = Field(None, description="MOS CSV (KoNViD-1k / LSVQ style) instead of a manifest.")
    video_dir: LocalPath | None = Field(None, description="Folder of the MOS CSV's videos (default: the CSV's).")
    mos_pattern: str = Field("{name}.mp4", description="File name of a MOS row's video.")
    mos_range: tuple[float, float] | None = Field(None, description="MOS scale (lo, hi); inferred if unset.")
    decode: DecodeConfig = Field(
        default_factory=lambda: DecodeConfig(num_frames=8, height=64, width=64, threads=1),
        description="Frame sampling; must match the model's training decode settings.",
    )
    out: LocalPath = Field("eval", description="Output folder: metrics.json, index.html, plots/.")
    actors: int = Field(1, ge=1, description="Scoring actors.")
    cpus_per_actor: float = Field(1.0, gt=0, description="CPUs per actor.")
    gpus_per_actor: float = Field(0.0, ge=0, description="GPUs per actor.")
    batch_size: int = Field(8, ge=1, description="Videos per scoring call.")
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N videos.")
    title: str = Field("UltraVQA-Ray evaluation", description="Report title.")
    rationales: int = Field(
        0,
        ge=0,
        description="Generate rationales for the first N videos of the manifest and report sub-attribute "
        "precision/recall and band contradiction (0: none; generation is slower than scoring).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> EvalConfig:
        if (self.manifest is None) == (self.mos_csv is None):
            raise ValueError("give exactly one of manifest and mos_csv")
        return self
