"""LoRA through ``peft``: adapters on the language model's projections, saved beside the base
reference and merged into a plain Hugging Face folder that every command loads.

:func:`apply_lora` injects the adapters into the scorer's model in place (``get_peft_model``): the
module keeps its class, so the scorer's positions, one-pass read-out and generation are unchanged,
and only the adapter weights train (the base stays frozen, in its own dtype: bf16 at real size;
the adapters are fp32). A checkpoint then holds

- ``adapter/``: ``adapter_model.safetensors`` and ``adapter_config.json`` whose
  ``base_model_name_or_path`` is the base reference (``model.name_or_path`` of the run), so a
  resumed run reloads base and adapters, never a merged copy;
- ``model/``: the base weights plus each adapter's ``B A x alpha / r``, a plain folder for ``score``,
  ``eval``, ``reference`` and Serve. :func:`merge_into_folder` streams it from the base folder's
  safetensors shard by shard (memory: one shard; a real-size base is never held twice), with the
  base's tensor names and file layout, each adapter update made when its weight is written. Never
  by merging in place: a bf16 merge and unmerge would round the training base. (A base given as a
  hub name, not a folder, is merged in memory, :func:`merged_state_dict`.)

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


def _canonical(name: str) -> str:
    """One spelling of a Qwen-VL tensor name: transformers 5 module names (``model.language_model.*``,
    ``model.visual.*``) and the original checkpoint names (``model.*``, ``visual.*``) agree here."""
    for prefix in ("base_model.model.",):
        name = name.removeprefix(prefix)
    name = name.replace("model.language_model.", "model.", 1)
    if name.startswith("model.visual."):
        name = name.removeprefix("model.")
    return name


class AdapterUpdates:
    """A saved adapter's updates ``B A x alpha / r`` by canonical base-weight name, each made (in fp32)
    only when asked for: the factors are small, but the updates of every adapted projection at once
    would be an fp32 copy of most of the language model (11 GB for Qwen2.5-VL-3B)."""

    def __init__(self, adapter_dir: Path) -> None:
        import json

        from safetensors.torch import load_file

        config = json.loads((adapter_dir / "adapter_config.json").read_text())
        if config.get("use_rslora") or config.get("use_dora"):
            raise ValueError(f"adapter {adapter_dir}: rsLoRA/DoRA adapters are not merged here")
        weights = load_file(adapter_dir / ADAPTER_WEIGHTS)
        self.scale = float(config["lora_alpha"]) / float(config["r"])
        self.factors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # name -> (B, A)
        for key, a in weights.items():
            if ".lora_A." in key:
                module = key.split(".lora_A.")[0]
                self.factors[_canonical(module) + ".weight"] = (weights[key.replace(".lora_A.", ".lora_B.")], a)

    def __contains__(self, name: str) -> bool:
        return name in self.factors

    def delta(self, name: str) -> torch.Tensor:
        b, a = self.factors[name]
        return (b.float() @ a.float()) * self.scale


def merge_into_folder(base_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """Write base + adapter into ``out_dir`` as a plain Hugging Face model (weights only: config and
    side files are the caller's), one safetensors file at a time, with the base's names and files;
    each update is made in fp32 when its weight is written, so the memory is one shard and one
    weight's update."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    updates = AdapterUpdates(adapter_dir)
    files = sorted(base_dir.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors files in the base folder {base_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    used = set()
    for path in files:
        shard: dict[str, torch.Tensor] = {}
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata()
            for key in fh.keys():
                tensor = fh.get_tensor(key)
                name = _canonical(key)
                if name in updates:
                    tensor = (tensor.float() + updates.delta(name)).to(tensor.dtype)
                    used.add(name)
                shard[key] = tensor
        save_file(shard, str(out_dir / path.name), metadata=metadata)
        del shard
    index = base_dir / "model.safetensors.index.json"
    if index.is_file():
        (out_dir / index.name).write_text(index.read_text())
    missing = sorted(set(updates.factors) - used)
    if missing:
        raise ValueError(f"adapter {adapter_dir} adapts weights the base {base_dir} does not have: {missing[:3]}")
    return out_dir


def save_adapter(peft_model: Any, folder: Path) -> Path:
    out = folder / ADAPTER_DIR
    peft_model.save_pretrained(out, safe_serialization=True)
    return out

