"""The memory planner: per-device bytes of weights, gradients, optimiser state and activations for
SFT, ASO and serving, and the largest batch that fits a device (``ultravqa-ray plan``).

Everything is counted from the model's shapes (a preset or a checkpoint's ``config.json``, built on
the meta device: no weights are read) and the clip's token count; nothing is fitted. Bytes, per
device, ``N`` devices, ``P`` parameters, ``P_t`` trained parameters:

=============  ==========================================  ===============================================
part           ``lora`` (base frozen in bf16, DDP)          ``full`` (FSDP2, fp32 master, bf16 compute)
=============  ==========================================  ===============================================
weights        ``2 P + 4 P_lora`` (adapters in fp32)        ``4 P / N`` + bf16 gathers: root (embeddings,
                                                            LM head) ``2 P_root`` and two blocks in flight
gradients      ``4 P_lora``                                 ``4 P_t / N`` + one block's bf16 gradient
optimiser      ``8 P_lora`` (AdamW: two fp32 moments)       ``8 P_t / N``
activations    per token, see :func:`decoder_bytes_per_token`, times rows, layers; plus the logits
=============  ==========================================  ===============================================

``full`` on the CPU of this project (one process, no FSDP, ``model.dtype: bfloat16``) keeps
everything in bf16: weights ``2 P``, gradients ``2 P_t``, AdamW moments ``4 P_t``; the planner
calls this ``full-bf16``.

Activations of a training step. A micro-batch of ``b`` videos is ``R = b x D`` rows (one per
dimension), each a full sequence of ``T = video tokens + text tokens``; the vision tower runs on
each row's patches. Saved for the backward per token and decoder layer (bf16, SDPA attention, HF
RMSNorm computing in fp32): the two norms ``2 x (4 h + 2 h)``, the attention and MLP inputs
``2 h + 2 h``, query/key/value after rotary ``2 (H d + 2 kv d)``, the attention output and its
reshaped copy ``2 x 2 H d``, and the SwiGLU ``4 x 2 I`` (gate, its SiLU, up, their product):
``16 h + 6 H d + 4 kv d + 8 I`` bytes. Gradient checkpointing keeps only each layer's input
(``2 h``) plus one layer recomputed. The vision tower saves nothing when nothing in it is
trained (LoRA on the language model, or ``freeze_vision``), else the same count with its widths.
The logits of the answer tokens cost ``R x A x V x 10`` bytes (bf16 logits, fp32 log-softmax and
its gradient), ``A`` the answer length (rationale and score). ASO stores ``pi_ref`` beside the
data: no reference model is held, which saves ``2 P`` bytes (bf16 reference weights) per device
against an online reference.

Serving (``score_clips``): bf16 weights, the prefix KV cache ``L x 2 x kv d x 2 x T x V`` repeated
``D`` times for the dimension suffixes, and the largest transient of the prefix forward.

A fixed ``overhead`` (runtime, allocator; 0.6 GiB measured for this CPU process with torch and
transformers imported, 1 GiB assumed for a CUDA context) is added to every total.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

GiB = 1 << 30
Mode = Literal["lora", "full", "full-bf16"]
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelShape:
    """What the planner needs of a model: parameter counts by part and the layer widths."""

    name: str
    arch: str
    params_total: int
    params_vision: int
    params_embed: int  # input embeddings plus an untied LM head
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    vision_layers: int
    vision_hidden: int
    vision_intermediate: int
    vision_swiglu: bool
    patch: int
    merge: int
    temporal_patch: int
    largest_block: int  # parameters of the largest decoder layer or vision block

    @property
    def params_language(self) -> int:
        return self.params_total - self.params_vision - self.params_embed


def shape_of(model: str, *, layers: int | None = None, vision_layers: int | None = None) -> ModelShape:
    """The shape of a preset name (see :mod:`ultravqa_ray.model.presets`) or a checkpoint folder."""
    from ultravqa_ray.model.families import family_for
    from ultravqa_ray.model.presets import PRESETS, parameter_shapes, preset_config
    from ultravqa_ray.model.tiny import build_tiny_tokenizer

    if model in PRESETS:
        arch = PRESETS[model].arch
        config = preset_config(model, build_tiny_tokenizer(5), layers=layers, vision_layers=vision_layers)
    else:
        from transformers import AutoConfig

        from ultravqa_ray.model.folder import model_folder

        folder = model_folder(model)
        if not (Path(folder) / "config.json").is_file():
            raise ValueError(f"--model {model!r} is neither a preset ({', '.join(PRESETS)}) nor a model folder")
        config = AutoConfig.from_pretrained(folder)
        arch = family_for(config.model_type).name
    shapes = parameter_shapes(config, arch)
    text, vision = config.text_config, config.vision_config
    parts = {"vision": 0, "embed": 0}
    blocks: dict[str, int] = {}
    for name, shape in shapes.items():
        n = math.prod(shape)
        if name.startswith("model.visual.") or name.startswith("visual."):
            parts["vision"] += n
        elif "embed_tokens" in name or name.startswith("lm_head"):
            parts["embed"] += n
        for marker in (".layers.", ".blocks."):
            if marker in name:
                head, rest = name.split(marker, 1)
                key = head + marker + rest.split(".", 1)[0]
                blocks[key] = blocks.get(key, 0) + n
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return ModelShape(
        name=model, arch=arch, params_total=sum(math.prod(s) for s in shapes.values()),
        params_vision=parts["vision"], params_embed=parts["embed"],
        layers=text.num_hidden_layers, hidden=text.hidden_size, intermediate=text.intermediate_size,
        heads=heads, kv_heads=text.num_key_value_heads, head_dim=head_dim, vocab=text.vocab_size,
        vision_layers=vision.depth, vision_hidden=vision.hidden_size, vision_intermediate=vision.intermediate_size,
        vision_swiglu=arch == "qwen2_5_vl", patch=vision.patch_size, merge=vision.spatial_merge_size,
        temporal_patch=vision.temporal_patch_size, largest_block=max(blocks.values(), default=0),
    )  # fmt: skip


def lora_parameters(shape: ModelShape, rank: int, targets: tuple[str, ...] = DEFAULT_LORA_TARGETS) -> int:
    """Parameters of rank-``rank`` adapters on the language model's ``targets`` projections."""
    h, i, qd, kvd = shape.hidden, shape.intermediate, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    dims = {"q_proj": (h, qd), "k_proj": (h, kvd), "v_proj": (h, kvd), "o_proj": (qd, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}  # fmt: skip
    unknown = [t for t in targets if t not in dims]
    if unknown:
        raise ValueError(f"the planner knows the language model's {', '.join(dims)}, not {unknown}")
    return shape.layers * sum(rank * (dims[t][0] + dims[t][1]) for t in targets)


@dataclass(frozen=True)
class Workload:
    """One step's input: clip size, batch and prompt lengths."""

    frames: int = 16
    resolution: int = 448
    batch: int = 1  # videos per device per micro-batch
    dimensions: int = 5
    text_tokens: int = 128  # system turn, question and answer of one row
    answer_tokens: int = 48  # rationale plus "Score: N": the positions whose logits are kept


def video_patches(shape: ModelShape, w: Workload) -> tuple[int, int]:
    """(vision-tower patches, language-model video tokens) of one clip at ``frames`` x ``resolution``^2."""
    unit = shape.patch * shape.merge
    side = max(1, round(w.resolution / unit)) * shape.merge
    t = math.ceil(w.frames / shape.temporal_patch)
    patches = t * side * side
    return patches, patches // (shape.merge * shape.merge)


def decoder_bytes_per_token(hidden: int, intermediate: int, q_dim: int, kv_dim: int, swiglu: bool = True) -> int:
    """Bytes one decoder layer (or vision block) saves for the backward per token (module docstring)."""
    mlp = 8 * intermediate if swiglu else 4 * intermediate
    return 16 * hidden + 6 * q_dim + 4 * kv_dim + mlp


@dataclass(frozen=True)
class Plan:
    """Per-device bytes of one task (``sft``, ``aso`` or ``serve``)."""

    task: str
    weights: int
    gradients: int
    optimizer: int
    activations: int
    overhead: int
    reference_saved: int = 0  # ASO: the reference model that stored pi_ref makes unnecessary

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.overhead

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


@dataclass(frozen=True)
class PlanSettings:
    mode: Mode = "lora"
    gpus: int = 1
    lora_rank: int = 16
    lora_targets: tuple[str, ...] = DEFAULT_LORA_TARGETS
    gradient_checkpointing: bool = False
    freeze_vision: bool = False
    overhead: int = GiB


def _static(shape: ModelShape, s: PlanSettings) -> tuple[int, int, int]:
    """(weights, gradients, optimiser) bytes per device for training."""
    p, n = shape.params_total, s.gpus
    trained = p - (shape.params_vision if s.freeze_vision else 0)
    if s.mode == "lora":
        lora = lora_parameters(shape, s.lora_rank, s.lora_targets)
        return 2 * p + 4 * lora, 4 * lora, 8 * lora
    if s.mode == "full-bf16":
        return 2 * p, 2 * trained, 4 * trained
    if s.mode == "full":
        root = shape.params_embed
        return 4 * p // n + 2 * root + 2 * 2 * shape.largest_block, 4 * trained // n + 2 * shape.largest_block, 8 * trained // n
    raise ValueError(f"unknown mode {s.mode!r}; choose lora, full or full-bf16")


def train_activations(shape: ModelShape, w: Workload, s: PlanSettings) -> int:
    """Activation bytes of one training micro-batch (forward saved tensors, logits, vision)."""
    rows = w.batch * w.dimensions
    patches, video_tokens = video_patches(shape, w)
    tokens = rows * (video_tokens + w.text_tokens)
    q_dim, kv_dim = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    per_layer = decoder_bytes_per_token(shape.hidden, shape.intermediate, q_dim, kv_dim)
    if s.gradient_checkpointing:
        language = tokens * (shape.layers * 2 * shape.hidden + per_layer)
    else:
        language = tokens * shape.layers * per_layer
    logits = rows * w.answer_tokens * shape.vocab * 10
    vision_trained = s.mode != "lora" and not s.freeze_vision
    v_per_block = decoder_bytes_per_token(
        shape.vision_hidden, shape.vision_intermediate, shape.vision_hidden, shape.vision_hidden, shape.vision_swiglu
    )
    if vision_trained:
        vision = rows * patches * (shape.vision_layers * v_per_block if not s.gradient_checkpointing
                                   else shape.vision_layers * 2 * shape.vision_hidden + v_per_block)  # fmt: skip
    else:
        vision = rows * patches * v_per_block  # the transient of one block: nothing kept
    return language + logits + vision


def plan_training(shape: ModelShape, w: Workload, s: PlanSettings, task: str = "sft") -> Plan:
    weights, grads, optim = _static(shape, s)
    return Plan(
        task=task, weights=weights, gradients=grads, optimizer=optim,
        activations=train_activations(shape, w, s), overhead=s.overhead,
        reference_saved=2 * shape.params_total if task == "aso" else 0,
    )  # fmt: skip


def plan_serving(shape: ModelShape, w: Workload, overhead: int = GiB) -> Plan:
    """Scoring ``w.batch`` clips in one chunk: bf16 weights, the repeated prefix cache, the transient."""
    patches, video_tokens = video_patches(shape, w)
    prefix = video_tokens + w.text_tokens // 2
    kv = shape.layers * 2 * shape.kv_heads * shape.head_dim * 2
    cache = kv * prefix * w.batch * (w.dimensions + 1)  # the repeat holds old and new copies of a layer briefly
    hidden = w.batch * prefix * (4 * shape.hidden + 3 * shape.intermediate) * 2
    vision = w.batch * patches * (4 * shape.vision_hidden + 3 * shape.vision_intermediate) * 2
    return Plan(task="serve", weights=2 * shape.params_total, gradients=0, optimizer=0,
                activations=cache + max(hidden, vision), overhead=overhead)  # fmt: skip


def largest_batch(shape: ModelShape, w: Workload, s: PlanSettings, device_bytes: int, task: str = "sft") -> int:
    """The most videos per device per micro-batch whose plan fits ``device_bytes`` (0: none fits)."""
    best = 0
    for batch in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        w_b = Workload(**{**asdict(w), "batch": batch})
        total = plan_serving(shape, w_b, s.overhead).total if task == "serve" else plan_training(shape, w_b, s, task).total
        if total > device_bytes:
            break
        best = batch
    if best == 0:
        return 0
    lo, hi = best, best * 2  # refine between the last fitting power of two and the next
    while hi - lo > 1:
        mid = (lo + hi) // 2
        w_b = Workload(**{**asdict(w), "batch": mid})
        total = plan_serving(shape, w_b, s.overhead).total if task == "serve" else plan_training(shape, w_b, s, task).total
        lo, hi = (mid, hi) if total <= device_bytes else (lo, mid)
    return lo


def plan_all(shape: ModelShape, w: Workload, s: PlanSettings, device_bytes: int) -> dict[str, Any]:
    """The planner's report: the three tasks and the largest batch of each."""
    plans = {
        "sft": plan_training(shape, w, s, "sft"),
        "aso": plan_training(shape, w, s, "aso"),
        "serve": plan_serving(shape, w, s.overhead),
    }
    patches, video_tokens = video_patches(shape, w)
    return {
        "model": shape.name,
        "params": shape.params_total,
        "mode": s.mode,
        "gpus": s.gpus,
        "frames": w.frames,
        "resolution": w.resolution,
        "batch": w.batch,
        "vision_patches_per_clip": patches,
        "video_tokens_per_clip": video_tokens,
        "device_gib": device_bytes / GiB,
        "plans": {task: plan.as_dict() for task, plan in plans.items()},
        "largest_batch": {task: largest_batch(shape, w, s, device_bytes, task) for task in plans},
    }
