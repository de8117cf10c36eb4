"""The demo's default model: a matching recipe stamp returns the cached folder at once, a changed
recipe does not match, and the decode settings saved beside the model load back.

The full first-use training (corpus -> SFT -> reference -> ASO -> held-out evaluation) takes minutes
and is measured by bench/bench_train.py and the demo, not here; its parts are tested in this folder.
"""

from __future__ import annotations

import json

import pytest

from ultravqa_ray.train import default_model as dm


def test_cached_model_is_returned_without_training(tmp_path):
    (tmp_path / dm.MODEL_SUBDIR).mkdir()
    (tmp_path / dm.MODEL_SUBDIR / "config.json").write_text("{}")
    (tmp_path / dm.STAMP).write_text(json.dumps({"hash": dm.recipe_hash()}))
    (tmp_path / dm.DECODE_FILE).write_text(dm.default_decode_config().to_yaml())
    messages: list[str] = []
    assert dm.ensure_default_model(tmp_path, log=messages.append) == tmp_path / dm.MODEL_SUBDIR
    assert "cached" in messages[0]
    assert dm.load_decode_config(tmp_path / dm.MODEL_SUBDIR) == dm.default_decode_config()


def test_recipe_change_invalidates_the_stamp(tmp_path):
    changed = json.loads(json.dumps(dm.DEFAULT_MODEL_RECIPE))
    changed["sft"]["epochs"] += 1
    assert dm.recipe_hash(changed) != dm.recipe_hash()
    (tmp_path / dm.MODEL_SUBDIR).mkdir()
    (tmp_path / dm.MODEL_SUBDIR / "config.json").write_text("{}")
    (tmp_path / dm.STAMP).write_text(json.dumps({"hash": dm.recipe_hash(changed)}))
    assert dm._cached(tmp_path) is None


def test_decode_config_missing_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="decode.yaml"):
        dm.load_decode_config(tmp_path)
