"""Real-size model presets: the published shapes of Qwen2.5-VL-3B/-7B and Qwen3-VL-4B/-8B, built
with random weights, so that memory, speed and shape problems show before a user's checkpoint does.

No weights can be downloaded here; the architecture is what costs memory and time, and it is public
(each checkpoint's ``config.json``). A preset holds those values; :func:`build_preset_model` writes a
folder that every command loads like a real checkpoint (``from_pretrained``)::

    build_preset_model("qwen2_5_vl_3b", "models/qwen2_5_vl_3b")                      # real size
    build_preset_model("qwen2_5_vl_3b", "models/reduced", layers=1, vision_layers=2)  # CI

The weights never exist as a float32 copy: the model is built on the meta device (shapes only),
and each tensor is drawn directly in bfloat16 (``normal_`` on a bf16 tensor) and written into
safetensors shards of at most ``shard_bytes``, so the build's peak memory is one shard, whatever
the model's size. Norm weights are one, biases zero, every other tensor N(0, 0.02), the
initialiser range of the published configs.

The tokenizer is the tiny byte-level BPE of :mod:`ultravqa_ray.model.tiny` (a real one cannot be
had offline); the model's vocabulary keeps its real size (embedding and LM head cost what they
cost in the real model), and the config's special-token ids are the tiny tokenizer's. Reduced
depth (``layers``, ``vision_layers``) keeps every width; the vision tower's full-attention blocks
(Qwen2.5-VL window attention) and deepstack taps (Qwen3-VL) are re-spread over the kept blocks so
that both kinds of block stay exercised.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ultravqa_ray.model.families import FAMILIES
from ultravqa_ray.model.tiny import SPECIAL_TOKENS, build_tiny_tokenizer


@dataclass(frozen=True)
class Preset:
    """Published configuration values of one checkpoint (text and vision ``config.json`` sections)."""

    name: str
    arch: str  # a FAMILIES key
    hub_name: str  # the checkpoint these values come from (documentation; never downloaded)
    text: dict[str, Any]
    vision: dict[str, Any]
    tie_word_embeddings: bool
    processor: dict[str, Any] = field(default_factory=dict)


_QWEN25_VISION = {
    "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "hidden_act": "silu",
    "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2, "in_channels": 3,
}  # fmt: skip
_QWEN25_ROPE = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]}
_QWEN3_ROPE = {"rope_type": "default", "rope_theta": 5_000_000.0, "mrope_section": [24, 20, 20],
               "mrope_interleaved": True}  # fmt: skip

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="qwen2_5_vl_3b", arch="qwen2_5_vl", hub_name="Qwen/Qwen2.5-VL-3B-Instruct",
            text={"hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                  "num_attention_heads": 16, "num_key_value_heads": 2, "vocab_size": 151936,
                  "max_position_embeddings": 128000, "rms_norm_eps": 1e-6, "rope_parameters": _QWEN25_ROPE},
            vision={**_QWEN25_VISION, "out_hidden_size": 2048},
            tie_word_embeddings=True,
        ),
        Preset(
            name="qwen2_5_vl_7b", arch="qwen2_5_vl", hub_name="Qwen/Qwen2.5-VL-7B-Instruct",
            text={"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                  "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
                  "max_position_embeddings": 128000, "rms_norm_eps": 1e-6, "rope_parameters": _QWEN25_ROPE},
            vision={**_QWEN25_VISION, "out_hidden_size": 3584},
            tie_word_embeddings=False,
        ),
        Preset(
            name="qwen3_vl_4b", arch="qwen3_vl", hub_name="Qwen/Qwen3-VL-4B-Instruct",
            text={"hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36,
                  "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
                  "max_position_embeddings": 262144, "rms_norm_eps": 1e-6, "rope_parameters": _QWEN3_ROPE},
            vision={"depth": 24, "hidden_size": 1024, "intermediate_size": 4096, "num_heads": 16,
                    "hidden_act": "gelu_pytorch_tanh", "out_hidden_size": 2560, "patch_size": 16,
                    "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 2304,
                    "deepstack_visual_indexes": [5, 11, 17], "in_channels": 3},
            tie_word_embeddings=True,
        ),
        Preset(
            name="qwen3_vl_8b", arch="qwen3_vl", hub_name="Qwen/Qwen3-VL-8B-Instruct",
            text={"hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
                  "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
                  "max_position_embeddings": 262144, "rms_norm_eps": 1e-6, "rope_parameters": _QWEN3_ROPE},
            vision={"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16,
                    "hidden_act": "gelu_pytorch_tanh", "out_hidden_size": 4096, "patch_size": 16,
                    "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 2304,
                    "deepstack_visual_indexes": [8, 16, 24], "in_channels": 3},
            tie_word_embeddings=False,
        ),
    )
}  # fmt: skip


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def preset_config(
    preset: Preset | str,
    tokenizer: Any,
    *,
    layers: int | None = None,
    vision_layers: int | None = None,
):
    """The transformers config of ``preset`` (optionally at reduced depth) with the tokenizer's ids."""
    import transformers

    p = get_preset(preset) if isinstance(preset, str) else preset
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(p.text, initializer_range=0.02, pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=p.tie_word_embeddings)
    vision = dict(p.vision, initializer_range=0.02)
    if layers is not None:
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        text["num_hidden_layers"] = min(layers, p.text["num_hidden_layers"])
    depth = vision["depth"]
    if vision_layers is not None:
        if vision_layers < 1:
            raise ValueError(f"vision_layers must be at least 1, got {vision_layers}")
        new_depth = min(vision_layers, depth)
        vision["depth"] = new_depth
        if "fullatt_block_indexes" in vision:  # keep window AND full-attention blocks when there are two
            vision["fullatt_block_indexes"] = [new_depth - 1]
        if "deepstack_visual_indexes" in vision:  # one tap per kept block, at most as many as the text layers
            taps = min(len(vision["deepstack_visual_indexes"]), new_depth, text["num_hidden_layers"])
            vision["deepstack_visual_indexes"] = list(range(new_depth - taps, new_depth))
    if p.arch == "qwen2_5_vl":
        text |= {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"]}
    config_class = getattr(transformers, FAMILIES[p.arch].model_class).config_class
    return config_class(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=p.tie_word_embeddings,
    )


def meta_model(config: Any, arch: str):
    """The model of ``config`` on the meta device: every tensor's name, shape and dtype, no storage."""
    import torch
    import transformers

    with torch.device("meta"):
        return getattr(transformers, FAMILIES[arch].model_class)(config)


def parameter_shapes(config: Any, arch: str) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every saved tensor (tied LM head left out), from a meta-device build."""
    model = meta_model(config, arch)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if getattr(config, "tie_word_embeddings", False):
        shapes.pop("lm_head.weight", None)
    return shapes


def _init_tensor(name: str, shape: tuple[int, ...], generator: Any, std: float):
    import torch

    tensor = torch.empty(shape, dtype=torch.bfloat16)
    if name.endswith("bias"):
        return tensor.zero_()
    if len(shape) == 1:  # RMSNorm / LayerNorm weights
        return tensor.fill_(1.0)
    return tensor.normal_(0.0, std, generator=generator)


def build_preset_model(
    preset: str,
    out_dir: str | Path,
    *,
    layers: int | None = None,
    vision_layers: int | None = None,
    k: int = 5,
    seed: int = 0,
    shard_bytes: int = 2 << 30,
    processor: dict[str, Any] | None = None,
) -> Path:
    """Write a random-weight bf16 model of ``preset`` (optionally at reduced depth) to ``out_dir``.

    ``processor``: pixel bounds to write into the preprocessor config (``min_pixels``, ``max_pixels``
    per frame for Qwen2.5-VL; ``size`` for Qwen3-VL), else the family's defaults.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import GenerationConfig

    from ultravqa_ray.model.tiny import tiny_processor_config

    p = get_preset(preset)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(k)
    config = preset_config(p, tokenizer, layers=layers, vision_layers=vision_layers)
    config.dtype = "bfloat16"
    shapes = parameter_shapes(config, p.arch)
    generator = torch.Generator().manual_seed(seed)
    weight_map: dict[str, str] = {}
    shard: dict[str, torch.Tensor] = {}
    size = total = 0
    files: list[list[str]] = []

    def flush() -> None:
        nonlocal shard, size
        if shard:
            name = f"model-{len(files) + 1:05d}.safetensors"
            save_file(shard, out / name, metadata={"format": "pt"})
            files.append(list(shard))
            shard, size = {}, 0

    for name, shape in shapes.items():
        tensor = _init_tensor(name, shape, generator, 0.02)
        nbytes = tensor.numel() * tensor.element_size()
        if size and size + nbytes > shard_bytes:
            flush()
        shard[name] = tensor
        size += nbytes
        total += nbytes
    flush()
    n = len(files)
    for i, names in enumerate(files, start=1):
        final = f"model-{i:05d}-of-{n:05d}.safetensors" if n > 1 else "model.safetensors"
        (out / f"model-{i:05d}.safetensors").rename(out / final)
        weight_map |= {key: final for key in names}
    if n > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    config.architectures = [FAMILIES[p.arch].model_class]
    config.save_pretrained(out)
    GenerationConfig(
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        do_sample=False,
    ).save_pretrained(out)
    tokenizer.save_pretrained(out)
    file_name, content = tiny_processor_config(p.arch)
    if p.arch == "qwen3_vl":
        content["size"] = {"shortest_edge": 4096, "longest_edge": 25165824}  # Qwen3-VL's published bounds
    else:
        content |= {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 768}  # per frame, as qwen-vl-utils for video
    content |= processor or {}
    (out / file_name).write_text(json.dumps(content, indent=2) + "\n")
    return out


def count_parameters(preset: str, *, layers: int | None = None, vision_layers: int | None = None) -> dict[str, int]:
    """Parameters of the (reduced) preset by part: ``vision``, ``embed`` (input embedding and an
    untied LM head), ``language`` (decoder layers and final norm), ``total``."""
    p = get_preset(preset)
    config = preset_config(p, build_tiny_tokenizer(5), layers=layers, vision_layers=vision_layers)
    shapes = parameter_shapes(config, p.arch)
    parts = {"vision": 0, "embed": 0, "language": 0}
    for name, shape in shapes.items():
        n = 1
        for s in shape:
            n *= s
        if ".visual." in f".{name}":
            parts["vision"] += n
        elif "embed_tokens" in name or name.startswith("lm_head"):
            parts["embed"] += n
        else:
            parts["language"] += n
    parts["total"] = sum(parts.values())
    return parts
