"""Offline tiny models: a random-weight model of the real class with a locally trained tokenizer.

No weights can be downloaded here, so tests, benchmarks and the demo build a small model of the
real transformers class (Qwen2-VL, Qwen2.5-VL or Qwen3-VL: same code paths as a real checkpoint,
just narrow and shallow) and save it so that ``from_pretrained(DIR)`` loads model and tokenizer::

    build_tiny_model("qwen2_5_vl", "runs/tiny", k=5, hidden_size=64, num_layers=2, seed=0)

The tokenizer is a byte-level BPE trained on the prompt vocabulary with the family's special tokens;
its pre-tokenizer is Qwen's except that a run of digits stays together, so every score string
``"1".."K"`` (also ``"10"``) is one token; the build checks this. A ChatML chat template is saved
with it. Config special-token ids are those of the tokenizer; the mrope sections sum to head_dim/2.
The preprocessor configs are written the way real checkpoints have them: ``preprocessor_config.json``
only for Qwen2(.5)-VL, ``video_preprocessor_config.json`` for Qwen3-VL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from connectors.wire.dimensions import DIMENSIONS
from ultravqa_ray.model.config import PromptConfig
from ultravqa_ray.model.families import FAMILIES, Family
from ultravqa_ray.model.hf_utils import quiet_progress_bars, vision_tower

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen2's pre-tokenizer with ``\p{N}+`` for ``\p{N}``: "10" stays one piece.
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'video' -%}{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- else -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

_FILLER = (
    "The video is sharp and well lit, with smooth motion and a clear subject. There is some blur, "
    "noise and compression artifacts; the camera shakes and the frames stutter. The scene is static, "
    "cluttered or empty, overexposed or underexposed, tilted, with rich and meaningful content. "
    "Good composition, color, lighting and framing. Large motion, small motion, no motion."
)


def rationale_texts(n_clips: int = 400, seed: int = 12345) -> list[str]:
    """Rationales of the synthetic corpus' template language (factors only, no pixels): the extra
    tokenizer corpus of ``vocabulary="rationales"``, so that a rationale is ~2x fewer tokens."""
    from ultravqa_ray.data.config import SynthConfig
    from ultravqa_ray.data.factors import sample_factors
    from ultravqa_ray.data.synth import RaterPool, annotate, clip_streams

    config = SynthConfig(n=n_clips, seed=seed)
    pool = RaterPool.from_config(config)
    texts: list[str] = []
    for i in range(n_clips):
        rng_factors, _, rng_ratings = clip_streams(seed, i)
        texts += annotate(i, sample_factors(rng_factors, config), config, rng_ratings, pool).rationale.values()
    return texts


def build_tiny_tokenizer(
    k: int = 5, *, vocab_size: int = 640, prompt: PromptConfig | None = None, extra_texts: Sequence[str] = ()
):
    """A byte-level BPE tokenizer (``TokenizersBackend``) with the Qwen special tokens; ``extra_texts``
    join the training corpus (e.g. :func:`rationale_texts`)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    prompt = prompt or PromptConfig()
    scores = [str(s) for s in range(1, k + 1)]
    corpus = [prompt.system, prompt.answer_prefix, _FILLER, "system user assistant seconds", *extra_texts]
    for d in DIMENSIONS:
        for kk in sorted({5, 10, k}):
            corpus.append(
                prompt.question.format(label=d.label, description=d.description, name=d.value, k=kk)
            )
    corpus += [f"{prompt.answer_prefix}{s}" for s in scores] * 4
    corpus += [" ".join(scores)] * 50 + [f"<{t / 2:.1f} seconds>" for t in range(64)]

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=32768,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    for s in scores:
        pieces = wrapped.tokenize(s)
        if len(pieces) != 1:  # never expected: the corpus repeats every score string
            raise RuntimeError(f"tiny tokenizer splits score {s!r} into {pieces}")
    return wrapped


def mrope_sections(head_dim: int, family: str) -> list[int]:
    """Temporal/height/width split of the rotary half-dimension, in the family's proportions."""
    half = head_dim // 2
    if family == "qwen3_vl":  # [24, 20, 20] of 64, interleaved
        hw = half * 5 // 16
        return [half - 2 * hw, hw, hw]
    t = half // 4  # [16, 24, 24] of 64
    h = (half - t) // 2
    return [t, h, half - t - h]


def tiny_model_config(
    arch: str,
    tokenizer: Any,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    vision_hidden_size: int = 32,
    vision_layers: int = 2,
    init_std: float = 0.1,
):
    """The transformers config of a tiny model of ``arch`` whose token ids match ``tokenizer``."""
    import transformers

    family = FAMILIES[arch]
    if hidden_size % num_heads or (hidden_size // num_heads) % 2:
        raise ValueError(f"hidden_size {hidden_size} must split into {num_heads} heads of even size")
    head_dim = hidden_size // num_heads
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    rope = {
        "rope_type": "default",
        "rope_theta": 1_000_000.0,
        "mrope_section": mrope_sections(head_dim, arch),
    }
    text: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": max(1, num_heads // 2),
        "max_position_embeddings": 8192,
        "initializer_range": init_std,
        "rope_parameters": rope,
        "pad_token_id": ids["<|endoftext|>"],
    }
    vision: dict[str, Any] = {
        "depth": vision_layers,
        "num_heads": 2,
        "patch_size": family.default_spec.patch_size,
        "temporal_patch_size": family.default_spec.temporal_patch_size,
        "spatial_merge_size": family.default_spec.merge_size,
        "initializer_range": init_std,
    }
    if arch == "qwen2_vl":
        text |= {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"]}
        vision |= {"embed_dim": vision_hidden_size, "hidden_size": hidden_size, "mlp_ratio": 2}
    elif arch == "qwen2_5_vl":
        text |= {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"]}
        vision |= {
            "hidden_size": vision_hidden_size,
            "intermediate_size": 2 * vision_hidden_size,
            "out_hidden_size": hidden_size,
            "window_size": 56,
            "fullatt_block_indexes": [vision_layers - 1],
            "tokens_per_second": 2,
        }
    elif arch == "qwen3_vl":
        text |= {"head_dim": head_dim}
        rope["mrope_interleaved"] = True
        vision |= {
            "hidden_size": vision_hidden_size,
            "intermediate_size": 2 * vision_hidden_size,
            "out_hidden_size": hidden_size,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [0],
        }
    else:  # pragma: no cover - FAMILIES lookup above already refused it
        raise ValueError(arch)
    config_class = getattr(transformers, family.model_class).config_class
    return config_class(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def tiny_processor_config(arch: str) -> tuple[str, dict[str, Any]]:
    """File name and content of the tiny model's preprocessor config (small pixel budgets)."""
    spec = FAMILIES[arch].default_spec
    common = {
        "patch_size": spec.patch_size,
        "temporal_patch_size": spec.temporal_patch_size,
        "merge_size": spec.merge_size,
        "image_mean": list(spec.image_mean),
        "image_std": list(spec.image_std),
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "resample": 3,
    }
    if arch == "qwen3_vl":  # pixel bounds over the whole clip, as Qwen3VLVideoProcessor
        return "video_preprocessor_config.json", {
            "video_processor_type": "Qwen3VLVideoProcessor",
            "size": {"shortest_edge": 4 * 32 * 32, "longest_edge": 8 * 96 * 96},
            **common,
        }
    return "preprocessor_config.json", {  # per-frame bounds, as Qwen2-VL / Qwen2.5-VL
        "image_processor_type": "Qwen2VLImageProcessor",
        "min_pixels": 56 * 56,
        "max_pixels": 112 * 112,
        **common,
    }


def build_tiny_model(
    arch: str,
    out_dir: str | Path,
    *,
    k: int = 5,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    vision_hidden_size: int = 32,
    vision_layers: int = 2,
    vocab_size: int = 640,
    init_std: float = 0.1,
    seed: int = 0,
    vision_init: Literal["random", "filters", "filters+colour"] = "random",
    vocabulary: Literal["prompts", "rationales"] = "prompts",
) -> Path:
    """Build, save and return the folder of a tiny random-weight model of ``arch``.

    ``arch`` is one of :data:`~ultravqa_ray.model.families.FAMILIES` (qwen2_vl, qwen2_5_vl,
    qwen3_vl). ``init_std`` is larger than a real model's 0.02 so that the score distributions of
    different videos and dimensions differ visibly. Deterministic for a seed.

    ``vision_init="filters"`` hand-initialises part of the vision patch embedding with fixed
    low-level filters (:func:`init_vision_filters`) instead of random weights: a stand-in for the
    pretrained vision tower a real checkpoint has, so that a model trained from scratch on a few
    hundred clips can see motion and sharpness at all. The weights stay trainable.
    ``"filters+colour"`` adds the colour filters of :func:`colour_filters` (exposure and saturation,
    which aesthetics is made of); it needs ``vision_hidden_size`` of 48 or more.

    ``vocabulary="rationales"`` trains the tokenizer on the synthetic rationales too
    (:func:`rationale_texts`; give a larger ``vocab_size``), for models that learn to write them.
    """
    import torch
    import transformers
    from transformers import GenerationConfig

    if arch not in FAMILIES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(FAMILIES)}")
    family: type[Family] = FAMILIES[arch]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if vocabulary not in ("prompts", "rationales"):
        raise ValueError(f"unknown vocabulary {vocabulary!r}; choose prompts or rationales")
    extra = rationale_texts() if vocabulary == "rationales" else []
    tokenizer = build_tiny_tokenizer(k, vocab_size=vocab_size, extra_texts=extra)
    config = tiny_model_config(
        arch,
        tokenizer,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        vision_hidden_size=vision_hidden_size,
        vision_layers=vision_layers,
        init_std=init_std,
    )
    torch.manual_seed(seed)
    model = getattr(transformers, family.model_class)(config).eval()
    if vision_init in ("filters", "filters+colour"):
        init_vision_filters(model, colour=vision_init == "filters+colour")
    elif vision_init != "random":
        raise ValueError(f"unknown vision_init {vision_init!r}; choose random, filters or filters+colour")
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        do_sample=False,
    )
    with quiet_progress_bars():
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    name, content = tiny_processor_config(arch)
    (out / name).write_text(json.dumps(content, indent=2) + "\n")
    return out


def _unit(pattern: Any) -> Any:
    pattern = pattern - pattern.mean()
    return pattern / pattern.norm()


def vision_filter_bank(patch: int, temporal: int, n: int = 3) -> Any:
    """``(8 n + 2, 3, T, P, P)`` fixed filters, each once with each sign (an MLP then gets |response|).

    Per family of ``n`` (spatial patterns are unit-norm, zero-mean, the same on R, G and B):

    - motion: a low-frequency grating (one cycle per patch, several orientations/phases) times the
      temporal difference of the patch's frames: large when the picture moves, blind to fine noise;
    - detail: a high-pass pattern (the discrete Laplacian of a fixed +/-1 pattern) times the
      temporal sum: fine detail plus noise (blur, down-scaling and compression remove it);
    - flicker: the same high-pass patterns times the temporal difference: noise (independent
      from frame to frame) and moving texture;
    - structure: a mid-frequency grating (three cycles per patch) times the temporal sum: the
      content's own contrast, which detail is compared with (the language model's RMSNorm turns
      the energies into ratios).

    and one last filter, shift: the patch's mean brightness times the temporal difference, which
    sees displacements larger than a grating's period (objects and camera moving several pixels
    between sampled frames) that the zero-mean gratings alias.
    """
    import math

    import torch

    gen = torch.Generator().manual_seed(1234)
    yy, xx = torch.meshgrid(
        torch.arange(patch, dtype=torch.float32), torch.arange(patch, dtype=torch.float32), indexing="ij"
    )
    low, mid, high = [], [], []
    for i in range(n):
        angle = math.pi * i / n
        phase = 2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / patch
        low.append(_unit(torch.cos(phase + i)))
        mid.append(_unit(torch.cos(3 * phase + i)))
        signs = torch.randint(0, 2, (patch + 2, patch + 2), generator=gen).float() * 2 - 1
        lap = 4 * signs[1:-1, 1:-1] - signs[:-2, 1:-1] - signs[2:, 1:-1] - signs[1:-1, :-2] - signs[1:-1, 2:]
        high.append(_unit(lap))
    t_diff = torch.tensor([1.0, -1.0] + [0.0] * (temporal - 2)) / math.sqrt(2)
    t_sum = torch.full((temporal,), 1.0 / math.sqrt(temporal))
    filters = []
    for spatial, time_profile in (
        [(p, t_diff) for p in low]
        + [(p, t_sum) for p in high]
        + [(p, t_diff) for p in high]
        + [(p, t_sum) for p in mid]
        + [(torch.full((patch, patch), 1.0 / patch), t_diff)]
    ):
        kernel = time_profile[:, None, None] * spatial[None] / math.sqrt(3)
        kernel = kernel[None].expand(3, -1, -1, -1)
        filters += [kernel, -kernel]
    return torch.stack(filters)


def colour_filters(patch: int, temporal: int, gain: float = 0.05) -> Any:
    """``(6, 3, T, P, P)``: three flat colour filters times the temporal sum, each with both signs:
    brightness (R + G + B), and the two colour differences R - G and R + G - 2B. Their energies are
    the patch's distance from mid-grey (exposure) and its saturation (colour), which no zero-mean
    grating sees. Scaled by ``gain`` so that a flat bright patch does not dominate the RMS the
    merger's norm divides by (a unit-norm flat filter answers ~34x the pixel value)."""
    import torch

    flat = torch.full((temporal, patch, patch), 1.0)
    kernels = []
    for weights in ((1.0, 1.0, 1.0), (1.0, -1.0, 0.0), (1.0, 1.0, -2.0)):
        k = torch.stack([w * flat for w in weights])
        k = gain * k / k.norm()
        kernels += [k, -k]
    return torch.stack(kernels)


def contrast_filters(patch: int, temporal: int, count: int) -> Any:
    """``(count, 3, T, P, P)`` static contrast filters: gratings of one and two cycles per patch,
    several orientations, times the temporal sum (cycled when ``count`` exceeds six)."""
    import math

    import torch

    yy, xx = torch.meshgrid(
        torch.arange(patch, dtype=torch.float32), torch.arange(patch, dtype=torch.float32), indexing="ij"
    )
    t_sum = torch.full((temporal,), 1.0 / math.sqrt(temporal))
    patterns = []
    for i in range(3):
        angle = math.pi * i / 3
        phase = 2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / patch
        patterns += [_unit(torch.cos(phase + i)), _unit(torch.cos(2 * phase + i))]
    kernels = [(t_sum[:, None, None] * patterns[k % len(patterns)][None] / math.sqrt(3))[None].expand(3, -1, -1, -1)
               for k in range(count)]  # fmt: skip
    return torch.stack(kernels)


def init_vision_filters(
    model: Any, n: int = 3, gain: float = 4.0, norm_gain: float = 3.0, colour: bool = False
) -> None:
    """Hand-initialise a Qwen2(.5)-VL vision tower to pass filter energies to the language model.

    1. The first ``6 n`` output channels of the patch embedding become :func:`vision_filter_bank`
       (each filter with both signs).
    2. The patch merger's MLP reads each (filter, sign, merged patch) channel into its own hidden
       unit (weight ``gain``), so its GELU sees ``+r`` and ``-r``, and the sum of both is about
       ``gain * |r|``: the energy of the filter's response. The merger's output dimensions
       ``0 .. 4 n`` become these energies, one per filter, summed over the merged patches; its
       other output dimensions start at zero, so a vision token carries the energies and nothing
       else. (Left random, they carry patch features of their own that the language model's
       grouped-query value projection, 64 -> 32 dimensions here, mixes with the energies: the weak
       detail and noise energies then drown, and a linear read-out of the answer position's hidden
       state tells clarity with SRCC 0.2 instead of 0.77 on held-out synthetic clips.)

    3. The remaining patch-embedding channels become static contrast filters
       (:func:`contrast_filters`) times ``norm_gain``. They carry no energy of their own to the
       language model, but they dominate the RMS that the merger's RMSNorm (``ln_q``) divides each
       patch by, so every energy arrives as a ratio to the patch's local contrast: fine detail
       relative to structure is what tells sharp from blurred, whatever the content's texture. On
       400 synthetic clips this raised held-out SRCC after SFT on content from 0.34 to 0.50 and on
       aesthetics from 0.25 to 0.42 (clarity 0.0 -> 0.13).
    With ``colour``, :func:`colour_filters` follow the bank (three more energies: exposure and
    saturation).

    4. The vision blocks between them start as the identity: the output projections of their
       attention and MLP branches are zero (the residual stream passes the filter responses on
       unchanged; the branches' other weights stay random, so training can still grow them).
       Random blocks would mix the responses before the merger sees them: on held-out synthetic
       clips a linear read-out of the merger's output then tells clarity with SRCC 0.44 instead of 0.75.
    """
    import torch

    visual = vision_tower(model)
    weight = visual.patch_embed.proj.weight  # (C_out, 3, T, P, P)
    bank = vision_filter_bank(weight.shape[-1], weight.shape[2], n)
    if colour:
        bank = torch.cat([bank, colour_filters(weight.shape[-1], weight.shape[2])])
    channels = weight.shape[0]
    mlp = getattr(visual.merger, "mlp", None)
    if not isinstance(mlp, torch.nn.Sequential) or len(mlp) != 3:
        raise ValueError(
            f"vision_init=filters supports Qwen2-VL and Qwen2.5-VL mergers, not {type(visual.merger).__name__}"
        )
    fc1, fc2 = mlp[0], mlp[2]
    if not isinstance(fc1, torch.nn.Linear) or not isinstance(fc2, torch.nn.Linear):
        raise ValueError(f"vision_init=filters needs a Linear-GELU-Linear merger, got {mlp}")
    merged = fc1.in_features // channels  # patches concatenated by the spatial merge
    if bank.shape[0] > channels or bank.shape[0] * merged > fc1.out_features or bank.shape[0] // 2 > fc2.out_features:
        raise ValueError(
            f"vision_init=filters needs more than {bank.shape[0]} vision channels, got {channels}"
        )
    with torch.no_grad():
        for block in visual.blocks:
            mlp_out = getattr(block.mlp, "down_proj", None) or block.mlp.fc2  # Qwen2.5-VL / Qwen2-VL
            for branch_out in (block.attn.proj, mlp_out):
                branch_out.weight.zero_()
                if branch_out.bias is not None:
                    branch_out.bias.zero_()
        weight[: bank.shape[0]] = bank.to(weight.dtype)
        spare = channels - bank.shape[0]
        if spare > 0:
            weight[bank.shape[0] :] = (norm_gain * contrast_filters(weight.shape[-1], weight.shape[2], spare)).to(weight.dtype)
        fc2.weight.zero_()
        fc2.bias.zero_()
        for c in range(bank.shape[0]):
            for q in range(merged):
                unit = c * merged + q
                fc1.weight[unit] = 0.0
                fc1.weight[unit, q * channels + c] = gain
                fc1.bias[unit] = 0.0
                fc2.weight[:, unit] = 0.0
                fc2.weight[c // 2, unit] = 1.0 / (gain * merged)

