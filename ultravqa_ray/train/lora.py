"""LoRA through ``peft``: adapters on the language model's projections, saved beside the base
reference and merged into a plain Hugging Face folder that every command loads.

:func:`apply_lora` injects the adapters into the scorer's model in place (``get_peft_model``): the
module keeps its class, so the scorer's positions, one-pass read-out and generation are unchanged,
and only the adapter weights train (the base stays frozen, in its own dtype: bf16 at real size;
the adapters are fp32). A checkpoint then holds

- ``adapter/``: ``adapter_model.safetensors`` and ``adapter_config.json`` whose
  ``base_model_name_or_path`` is the base reference (``model.name_or_path`` of the run), so a
  resumed run reloads base and adapters, never a merged copy;
- ``model/``: the base weights plus each adapter's ``B A x alpha / r`` (:func:`merged_state_dict`,
  computed beside the weights, never by merging in place: a bf16 merge and unmerge would round the
  base), a plain folder for ``score``, ``eval``, ``reference`` and Serve.

ASO with LoRA needs no reference model: ``pi_ref`` is stored beside the data by the reference pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

ADAPTER_DIR = "adapter"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def target_regex(config: Any) -> str:
    """peft's ``target_modules`` regex: the named projections of the language model (and, with
    ``vision``, of the vision tower's blocks)."""
    names = "|".join(sorted(set(config.target_modules)))
    scopes = ["language_model"] + (["visual"] if config.vision else [])
    return rf".*\.({'|'.join(scopes)})\..*\.({names})"


def apply_lora(model: torch.nn.Module, config: Any, base_reference: str) -> Any:
    """Inject LoRA adapters into ``model`` in place; returns the ``PeftModel`` (for saving)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_config = PeftLoraConfig(
        r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
        target_modules=target_regex(config), bias="none",
    )  # fmt: skip
    peft_model = get_peft_model(model, peft_config)
    peft_model.peft_config["default"].base_model_name_or_path = base_reference
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"train.lora.target_modules {config.target_modules} matched no module of the model")
    return peft_model


def load_adapter(peft_model: Any, folder: Path) -> None:
    """Load saved adapter weights (a checkpoint's ``adapter/``) into an injected model."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    result = set_peft_model_state_dict(peft_model, load_file(folder / ADAPTER_WEIGHTS))
    unexpected = list(getattr(result, "unexpected_keys", []))
    if unexpected:
        raise ValueError(f"adapter {folder} does not fit the model: unexpected keys {unexpected[:3]}")


def merged_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with every LoRA layer folded into its base weight, original names."""
    from peft.tuners.lora import LoraLayer

    state: dict[str, torch.Tensor] = {}
    lora_modules: list[str] = []
    for name, found in model.named_modules():
        if not isinstance(found, LoraLayer):
            continue
        module: Any = found  # a LoraLayer mixed into a torch Linear (peft's typing does not say so)
        base: Any = module.get_base_layer()
        weight = base.weight.detach()
        delta = torch.zeros_like(weight, dtype=torch.float32)
        for adapter in module.active_adapters:
            if adapter in module.lora_A:
                delta += module.get_delta_weight(adapter).float()
        state[f"{name}.weight"] = (weight.float() + delta).to(weight.dtype)
        if getattr(base, "bias", None) is not None:
            state[f"{name}.bias"] = base.bias.detach()
        lora_modules.append(name + ".")
    prefixes = tuple(lora_modules)
    for key, value in model.state_dict().items():
        if prefixes and key.startswith(prefixes):
            continue
        state[key] = value.detach()
    return state


def save_adapter(peft_model: Any, folder: Path) -> Path:
    out = folder / ADAPTER_DIR
    peft_model.save_pretrained(out, safe_serialization=True)
    return out

