"""Training checkpoints: a Hugging Face model folder plus optimiser state and the loop position.

Layout of one checkpoint folder::

    model/              save_pretrained (config.json, model.safetensors), tokenizer, preprocessor config,
                        scoring_config.json (decode settings, K, dimensions, prompt version),
                        checksums.json (sha256 of every file: verified when fetched from s3:// or gs://);
                        with LoRA the base with the adapters merged in
    adapter/            LoRA runs only: peft adapter weights and config (base_model_name_or_path: the base)
    optimizer.pt        optimiser and LR-scheduler state (full, unsharded)
    train_state.json    {"epoch": e (completed), "step": global optimiser step, "objective": ...}

``model/`` loads with ``from_pretrained`` and with ``ScorerModel(ModelConfig(name_or_path=...))``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from ultravqa_ray.model.folder import ScoringSettings
from ultravqa_ray.model.store import write_checksums

MODEL_DIR = "model"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "train_state.json"
_SIDE_FILES = ("preprocessor_config.json", "video_preprocessor_config.json", "chat_template.jinja")


def save_checkpoint(
    folder: Path,
    model: Any,
    tokenizer: Any,
    source_model_dir: str | Path,
    *,
    state_dict: dict[str, torch.Tensor] | None,
    optimizer_state: dict[str, Any],
    train_state: dict[str, Any],
    scoring: ScoringSettings | None = None,
    adapter: Any = None,
) -> Path:
    """Write one checkpoint into ``folder`` (the caller reports it to Ray Train); ``scoring``: the
    preprocessing and scale the model was trained with (``model/scoring_config.json``); ``adapter``:
    the ``PeftModel`` of a LoRA run: saved to ``adapter/``, and ``model/`` is the base folder
    (``source_model_dir``) with the adapters merged in."""
    model_dir = folder / MODEL_DIR
    model_dir.mkdir(parents=True, exist_ok=True)
    source = Path(source_model_dir)
    if adapter is not None:
        from ultravqa_ray.train import lora

        adapter_dir = lora.save_adapter(adapter, folder)
        if source.is_dir():  # streamed, one shard at a time: the base is never held twice
            lora.merge_into_folder(source, adapter_dir, model_dir)
            model.config.save_pretrained(model_dir)
            if getattr(model, "generation_config", None) is not None:
                model.generation_config.save_pretrained(model_dir)
        else:
            model.save_pretrained(model_dir, state_dict=lora.merged_state_dict(model), safe_serialization=True)
    else:
        model.save_pretrained(model_dir, state_dict=state_dict, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    for name in _SIDE_FILES:
        if (source / name).exists() and not (model_dir / name).exists():
            shutil.copy2(source / name, model_dir / name)
    if scoring is not None:
        scoring.write(model_dir)
    write_checksums(model_dir)  # what a fetch from object storage verifies (ultravqa_ray.model.store)
    torch.save(optimizer_state, folder / OPTIMIZER_FILE)
    (folder / STATE_FILE).write_text(json.dumps(train_state, indent=2) + "\n")
    return folder


def read_train_state(folder: Path) -> dict[str, Any]:
    return json.loads((folder / STATE_FILE).read_text())


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint folder of a run (``checkpoint_*`` with a train state), if any."""
    if not run_dir.exists():
        return None
    found = []
    for path in run_dir.glob("checkpoint_*"):
        if (path / STATE_FILE).exists() and (path / MODEL_DIR / "config.json").exists():
            found.append((read_train_state(path)["step"], path.stat().st_mtime, path))
    return max(found)[2] if found else None


def latest_checkpoint_uri(run_uri: str) -> str | None:
    """The newest complete checkpoint of a run on object storage (``s3://.../<run>``), if any: the
    ``checkpoint_*`` folder with a train state and a model config whose state has the highest step."""
    from connectors.listing import list_prefix
    from connectors.storage import object_filesystem

    base = run_uri.rstrip("/")
    names = {e.video_id for e in list_prefix(base + "/")}
    found = []
    for name in names:
        folder, _, leaf = name.partition("/")
        if folder.startswith("checkpoint_") and leaf == STATE_FILE and f"{folder}/{MODEL_DIR}/config.json" in names:
            filesystem, path = object_filesystem(f"{base}/{name}")
            with filesystem.open_input_stream(path) as fh:
                found.append((json.loads(fh.read())["step"], folder))
    return f"{base}/{max(found)[1]}" if found else None
