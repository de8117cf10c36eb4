"""Serving only loads models: names are resolved before Serve starts, a replica refuses them, and the
serving modules do not pull in the tiny-model builder or the training code."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ultravqa_ray.serve.config import ServeConfig
from ultravqa_ray.serve.models import loadable_model, resolve_serve_config
from ultravqa_ray.serve.scoring import ReplicaScorer
from ultravqa_ray.train.default_model import SHIPPED_DIR, TINY_DECODE, resolve_model


def test_default_resolves_to_the_shipped_folder_and_its_decode_settings(tmp_path):
    resolved = resolve_serve_config(ServeConfig(model="default", cache_dir=tmp_path))
    assert resolved.model == str(SHIPPED_DIR / "model") and resolved.decode is not None
    assert (resolved.decode.height, resolved.decode.num_frames) == (112, 8)
    assert not any(tmp_path.iterdir()), "nothing built, nothing trained"
    # the default model's folder (weights one level down) is accepted as given
    assert resolve_serve_config(ServeConfig(model=str(SHIPPED_DIR))).model == str(SHIPPED_DIR / "model")


@pytest.mark.parametrize("name", ["tiny", "tiny:qwen3_vl"])
def test_serve_refuses_to_build_models(name, tmp_path):
    with pytest.raises(ValueError, match="built by the CLI or the demo"):
        resolve_serve_config(ServeConfig(model=name, cache_dir=tmp_path))
    with pytest.raises(ValueError, match="resolve it before Serve starts"):
        ReplicaScorer(ServeConfig(model=name, cache_dir=tmp_path))
    with pytest.raises(ValueError, match="resolve it before Serve starts"):
        loadable_model(ServeConfig(model="default"))


def test_a_tiny_model_built_before_serve_carries_its_decode_settings(tmp_path):
    folder = resolve_model("tiny", tmp_path)
    resolved = resolve_serve_config(ServeConfig(model=folder, cache_dir=tmp_path))
    assert resolved.model == folder and resolved.decode == TINY_DECODE


def test_serving_modules_do_not_import_the_builders():
    code = (
        "import sys; import ultravqa_ray.serve.deployment, ultravqa_ray.serve.scoring, ultravqa_ray.serve.http; "
        "print(sorted(m for m in sys.modules if m in ('ultravqa_ray.train.default_model', 'ultravqa_ray.data.synth')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]", out.stdout
