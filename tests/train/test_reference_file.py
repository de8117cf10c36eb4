"""A pi_ref file is checked on read: a file of another K, dimension order or model revision is
refused with a message naming both sides; a matching one loads. GRPO needs none."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.wire.dimensions import DIMENSIONS
from connectors.wire.messages import ModelRef
from ultravqa_ray.model import ModelConfig
from ultravqa_ray.train.config import DataConfig, TrainConfig
from ultravqa_ray.train.data import read_reference
from ultravqa_ray.train.reference import write_reference

MODEL = ModelRef(name="runs/sft/model", revision="sha256:aaaa")


@pytest.fixture
def pi_ref(tmp_path):
    probs = {"v1": np.full((len(DIMENSIONS), 5), 0.2, np.float32), "v2": np.eye(5, dtype=np.float32)}
    return write_reference(tmp_path / "pi_ref.parquet", probs, MODEL, k=5)


def test_a_matching_reference_loads(pi_ref):
    loaded = read_reference(pi_ref, model=MODEL, k=5)
    assert set(loaded) == {"v1", "v2"} and loaded["v2"].shape == (5, 5)
    np.testing.assert_allclose(loaded["v1"], 0.2)


def test_another_k_is_refused_naming_both(pi_ref):
    with pytest.raises(ValueError, match=r"K=5 in the file, K=10 for this run"):
        read_reference(pi_ref, model=MODEL, k=10)


def test_another_model_revision_is_refused_naming_both(pi_ref):
    other = ModelRef(name="runs/other/model", revision="sha256:bbbb")
    with pytest.raises(ValueError, match=r"sha256:aaaa \(runs/sft/model\) in the file, sha256:bbbb \(runs/other/model\)"):
        read_reference(pi_ref, model=other, k=5)


def test_another_dimension_order_is_refused(pi_ref):
    with pytest.raises(ValueError, match="dimensions"):
        read_reference(pi_ref, model=MODEL, k=5, dimensions=list(reversed(DIMENSIONS)))


def test_a_file_without_metadata_is_refused(tmp_path):
    path = tmp_path / "bare.parquet"
    pq.write_table(pa.table({"video_id": ["v"], "pi_ref": [[[0.2] * 5] * 5]}), path)
    with pytest.raises(ValueError, match="no model/k/dimensions metadata"):
        read_reference(path, k=5)


def test_aso_needs_a_reference_grpo_does_not(tmp_path):
    data = DataConfig(manifest=str(tmp_path / "m.jsonl"))
    model = ModelConfig(name_or_path="m")
    with pytest.raises(ValueError, match="needs data.reference"):
        TrainConfig(objective="aso", model=model, data=data)
    assert TrainConfig(objective="grpo", model=model, data=data).data.reference is None
