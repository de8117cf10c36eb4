"""Frame preprocessing against the reference video processors of transformers.

The reference classes (``Qwen2VLVideoProcessor``, ``Qwen3VLVideoProcessor``) cannot be imported here:
their modules need torchvision (not importable) and PIL (not installed). So the test reads the
installed transformers source and runs the reference code itself: the module's ``smart_resize`` and
the class's ``resize``, ``patchify`` and ``_preprocess`` methods, with the TorchvisionBackend's
``rescale_and_normalize``, exactly as written there. Only two torchvision kernels are stood in for:

- ``tvF.normalize``: torchvision's few lines (``tensor.sub_(mean).div_(std)``), copied;
- ``tvF.resize``: on a uint8 CPU tensor with bicubic interpolation torchvision calls
  ``torch.nn.functional.interpolate(..., antialias=True)`` on the uint8 tensor itself (its native
  uint8 path); the stand-in does the same. The interpolation kernel itself therefore is NOT compared
  against an independent implementation (torchvision and PIL are both unavailable here): what is
  compared is everything around it - target size, dtype path, normalisation, temporal padding,
  patch order, grid - bit for bit.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import math
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers

from ultravqa_ray.model.families import FAMILIES, Qwen2VL, Qwen3VL
from ultravqa_ray.model.preprocess import (
    VisionSpec,
    load_processor_config,
    patchify,
    preprocess_video,
    smart_resize_clip,
    smart_resize_frame,
    target_size,
)

MODELS = Path(transformers.__file__).parent / "models"


def _tv_resize(image, size, interpolation="bicubic", antialias=True):
    """torchvision's tensor resize for uint8 on CPU (native uint8 interpolate), by shape."""
    shape = image.shape
    flat = image.reshape(-1, *shape[-3:])
    out = F.interpolate(flat, size=list(size), mode=interpolation, antialias=antialias, align_corners=False)
    return out.reshape(*shape[:-2], *out.shape[-2:])


def _tv_normalize(tensor, mean, std, inplace=False):
    """torchvision.transforms.v2.functional.normalize for tensors."""
    if not inplace:
        tensor = tensor.clone()
    mean = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device)
    std = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device)
    if mean.ndim == 1:
        mean = mean.view(-1, 1, 1)
    if std.ndim == 1:
        std = std.view(-1, 1, 1)
    return tensor.sub_(mean).div_(std)


def _source_of(tree: ast.Module, source: str, *, function: str | None = None, cls: str | None = None,
               methods: tuple[str, ...] = ()) -> str:  # fmt: skip
    if function is not None:
        node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
        return ast.get_source_segment(source, node)
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    parts = []
    for m in node.body:
        if isinstance(m, ast.FunctionDef) and m.name in methods:
            parts.append(textwrap.dedent(ast.get_source_segment(source, m, padded=True)))
    assert len(parts) == len(methods), f"{cls} no longer has all of {methods}"
    return "\n".join(parts)


def reference_processor(family: str):
    """The reference video processor of a family, built from the installed transformers source."""
    module = {
        "qwen2_vl": "qwen2_vl/video_processing_qwen2_vl.py",
        "qwen3_vl": "qwen3_vl/video_processing_qwen3_vl.py",
    }
    class_name = {"qwen2_vl": "Qwen2VLVideoProcessor", "qwen3_vl": "Qwen3VLVideoProcessor"}[family]
    source = (MODELS / module[family]).read_text()
    tree = ast.parse(source)
    backend_path = Path(transformers.__file__).parent / "image_processing_backends.py"
    backend = backend_path.read_text()
    backend_tree = ast.parse(backend)
    backend_methods = _source_of(backend_tree, backend, cls="TorchvisionBackend",
                                 methods=("rescale", "normalize", "_fuse_mean_std_and_rescale_factor",
                                          "rescale_and_normalize"))  # fmt: skip
    methods = _source_of(tree, source, cls=class_name, methods=("resize", "patchify", "_preprocess"))
    module_source = "\n".join(
        [
            "from __future__ import annotations",
            _source_of(tree, source, function="smart_resize"),
            "class _Backend:",
            textwrap.indent(backend_methods, "    "),
            "    def resize(self, image, size, resample=None, **kwargs):",
            "        return tvF.resize(image, [size.height, size.width], interpolation=resample, antialias=True)",
            f"class {class_name}(_Backend):",
            textwrap.indent(methods, "    "),
        ]
    )
    from transformers.image_processing_utils import BatchFeature
    from transformers.image_utils import SizeDict
    from transformers.video_utils import group_videos_by_shape, reorder_videos

    namespace = {
        "math": math,
        "np": np,
        "torch": torch,
        "tvF": SimpleNamespace(resize=_tv_resize, normalize=_tv_normalize),
        "BatchFeature": BatchFeature,
        "SizeDict": SizeDict,
        "group_videos_by_shape": group_videos_by_shape,
        "reorder_videos": reorder_videos,
        "logger": SimpleNamespace(warning_once=lambda *a, **k: None),
    }
    exec(compile(module_source, f"<reference {class_name}>", "exec"), namespace)  # noqa: S102
    processor = namespace[class_name]()
    processor.max_video_tokens = FAMILIES[family].default_spec.max_video_tokens
    return processor, namespace["smart_resize"], SizeDict


def run_reference(family: str, frames: np.ndarray, spec: VisionSpec):
    processor, _, SizeDict = reference_processor(family)
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()  # as _prepare_input_videos
    out = processor._preprocess(
        videos=[video],
        do_resize=spec.do_resize,
        size=SizeDict(shortest_edge=spec.min_pixels, longest_edge=spec.max_pixels),
        resample=spec.resample,
        do_rescale=spec.do_rescale,
        rescale_factor=spec.rescale_factor,
        do_normalize=spec.do_normalize,
        image_mean=list(spec.image_mean),
        image_std=list(spec.image_std),
        patch_size=spec.patch_size,
        temporal_patch_size=spec.temporal_patch_size,
        merge_size=spec.merge_size,
        cap_pixels_per_frame=spec.cap_pixels_per_frame,
    )
    return out["pixel_values_videos"], out["video_grid_thw"]


CASES = [  # (frames, height, width, min_pixels, max_pixels (per frame; x frames for qwen3), cap)
    (8, 144, 176, 56 * 56, 112 * 112, False),
    (5, 144, 176, 56 * 56, 112 * 112, False),  # odd frame count: last frame repeated
    (4, 20, 30, 56 * 56, 112 * 112, False),  # upscaled to the minimum
    (2, 272, 640, 56 * 56, 168 * 168, False),  # wide, downscaled to the maximum
    (6, 144, 176, 56 * 56, 28 * 28 * 768, True),  # per-frame cap from the token budget
]


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}x{c[2]}{'-cap' if c[5] else ''}")
def test_pixel_values_equal_the_reference_processor(family, case):
    n, h, w, lo, hi, cap = case
    base = FAMILIES[family].default_spec
    if base.budget == "video":
        lo, hi = lo * n, hi * n
    spec = VisionSpec(**{**base.__dict__, "min_pixels": lo, "max_pixels": hi, "cap_pixels_per_frame": cap})
    frames = np.random.default_rng(n * h + w).integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    ours = preprocess_video(frames, spec)
    ref_pixels, ref_grid = run_reference(family, frames, spec)
    assert list(ours.grid_thw) == ref_grid[0].tolist()
    assert ours.pixel_values.dtype == ref_pixels.dtype == torch.float32
    assert ours.pixel_values.shape == ref_pixels.shape
    assert torch.equal(ours.pixel_values, ref_pixels)


def test_pixel_values_of_a_real_clip_equal_the_reference(real_clips, tiny_dirs):
    spec = Qwen2VL.default_spec.updated(load_processor_config(str(tiny_dirs["qwen2_5_vl"])))
    frames = np.asarray(real_clips[0].frames)
    ours = preprocess_video(frames, spec)
    ref_pixels, ref_grid = run_reference("qwen2_vl", frames, spec)
    assert list(ours.grid_thw) == ref_grid[0].tolist() == [4, 6, 8]
    assert torch.equal(ours.pixel_values, ref_pixels)


def test_smart_resize_equals_the_reference_functions():
    _, ref2, _ = reference_processor("qwen2_vl")
    _, ref3, _ = reference_processor("qwen3_vl")
    sizes = [10, 27, 28, 29, 56, 64, 100, 144, 176, 224, 272, 480, 640, 720, 1080, 1920, 4000]
    for h, w in itertools.product(sizes, sizes):
        if max(h, w) / min(h, w) > 200:
            continue
        for lo, hi in [(56 * 56, 28 * 28 * 1280), (3136, 12845056), (128 * 28 * 28, 28 * 28 * 768)]:
            assert smart_resize_frame(h, w, factor=28, min_pixels=lo, max_pixels=hi) == ref2(
                h, w, factor=28, min_pixels=lo, max_pixels=hi
            )
        for n in (2, 3, 8, 33):
            kw = {"temporal_factor": 2, "factor": 32, "min_pixels": 4096 * n, "max_pixels": 32 * 32 * 768 * n}
            assert smart_resize_clip(n, h, w, **kw) == ref3(n, h, w, **kw)


def test_patch_layout_groups_each_merged_token():
    """Patches merged into one LLM token are adjacent rows, time-major, then row, then column."""
    spec = VisionSpec(**{**Qwen2VL.default_spec.__dict__, "patch_size": 2, "merge_size": 2})
    t, h, w = 4, 8, 12  # grid 2 x 4 x 6
    frames = torch.zeros(t, 3, h, w)
    for ti, y, x in itertools.product(range(t), range(h), range(w)):
        frames[ti, :, y, x] = ti * 10000 + (y // 4) * 100 + (x // 4)  # id of the merged token
    pixels, grid = patchify(frames, spec)
    assert grid == (2, 4, 6)
    token_of_row = pixels[:, 0]
    groups = token_of_row.view(-1, 4)  # 4 = merge_size**2 consecutive patches
    assert bool((groups == groups[:, :1]).all())
    firsts = groups[:, 0].tolist()
    assert firsts == sorted(firsts) and len(set(firsts)) == len(firsts)


def test_checkpoint_configs_are_read_like_transformers(tmp_path):
    """A Qwen2-VL style preprocessor_config.json and a Qwen3-VL style video config."""
    qwen2 = {
        "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
        "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "image_processor_type": "Qwen2VLImageProcessor",
    }  # fmt: skip
    spec = Qwen2VL.default_spec.updated(qwen2)
    assert (spec.min_pixels, spec.max_pixels, spec.patch_size, spec.budget) == (3136, 12845056, 14, "frame")
    qwen3 = {
        "size": {"longest_edge": 25165824, "shortest_edge": 4096}, "patch_size": 16,
        "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "video_processor_type": "Qwen3VLVideoProcessor",
    }  # fmt: skip
    spec3 = Qwen3VL.default_spec.updated(qwen3).with_overrides(max_pixels=1_000_000)
    assert (spec3.min_pixels, spec3.max_pixels, spec3.factor, spec3.budget) == (4096, 1_000_000, 32, "video")
    assert target_size(spec3, 16, 720, 1280) == smart_resize_clip(
        16, 720, 1280, temporal_factor=2, factor=32, min_pixels=4096, max_pixels=1_000_000
    )
    (tmp_path / "preprocessor_config.json").write_text('{"min_pixels": 100}')
    assert load_processor_config(str(tmp_path)) == {"min_pixels": 100}
    (tmp_path / "video_preprocessor_config.json").write_text('{"size": {"shortest_edge": 7}}')
    assert load_processor_config(str(tmp_path)) == {"size": {"shortest_edge": 7}}  # the video one wins


def test_bad_frames_are_refused():
    spec = Qwen2VL.default_spec
    with pytest.raises(ValueError, match="uint8"):
        preprocess_video(np.zeros((2, 32, 32, 3), dtype=np.float32), spec)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        preprocess_video(np.zeros((32, 32, 3), dtype=np.uint8), spec)


def test_reference_source_is_really_used():
    """Guard: the extracted reference is the installed transformers code, not a copy of ours."""
    processor, smart_resize, _ = reference_processor("qwen3_vl")
    assert "temporal_factor" in inspect.signature(smart_resize).parameters
    assert type(processor).__name__ == "Qwen3VLVideoProcessor"
