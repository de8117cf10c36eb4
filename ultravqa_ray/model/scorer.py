"""The scorer: a Hugging Face multimodal LLM read out as K-level score distributions (DESIGN.md §3).

``ScorerModel(config)`` is cheap to build and to pickle (only the config travels); ``setup()`` loads
tokenizer and weights (safetensors only, ``trust_remote_code`` off unless configured) on the
configured device and dtype, and looks up the K score tokens once.

One pass for all dimensions. The prompt of (video v, dimension d) is ``prefix(v) + suffix(d)``
(:mod:`ultravqa_ray.model.prompts`); the prefix (system turn and the video tokens) is the same for
every dimension. ``score_clips`` therefore runs

1. the prefixes of the V videos of a chunk, left-padded, through the model once, vision tower
   included, keeping the KV cache; positions come from the family's own ``get_rope_index``;
2. the cache repeated D times per video, and the D suffixes (left-padded among themselves, so a
   suffix's padding sits between its prefix and its text, masked out) as one batch of V * D rows
   continuing from it. Positions are explicit: the suffix is plain text after the prefix's last
   (text) token, so its positions in all three mrope axes are that token's position + 1, + 2, ...
   (in transformers 5 this is not "max prefix position + 1": the temporal axis of a long or
   time-scaled Qwen2.5-VL video runs past it; the full-forward test checks this);
3. each row's next-token logits at its last token, restricted to the score tokens and
   softmaxed (:func:`ultravqa_ray.score_ops.score_log_probs`).

The result equals the plain full forward of each (video, dimension) prompt and does not depend on
batch size or padding beyond float noise (tests/model/test_scorer.py).

With ``want_rationale`` the suffix stops after the assistant header; the model writes greedily from
the same cache until it writes the answer prefix itself (its next-token logits are then the score)
or ends its turn / reaches the token limit (the answer prefix is then appended and read).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from connectors.wire.dimensions import DIMENSIONS, Dimension
from connectors.wire.errors import ErrorKind, ProcessingError
from connectors.wire.messages import DimensionScore, ModelRef
from ultravqa_ray.model.collate import left_pad
from ultravqa_ray.model.config import ModelConfig
from ultravqa_ray.model.families import Family, VideoTokens, family_for
from ultravqa_ray.model.folder import apply_folder_settings, model_folder
from ultravqa_ray.model.hf_utils import quiet_progress_bars
from ultravqa_ray.model.preprocess import VideoPatches, VisionSpec, load_processor_config, preprocess_video
from ultravqa_ray.model.prompts import PromptBuilder
from ultravqa_ray.model.store import is_remote
from ultravqa_ray.score_ops import argmax_label, expected_score, score_log_probs
from ultravqa_ray.video.clip import VideoClip

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class VideoScores(Mapping[Dimension, DimensionScore]):
    """The scores of one video: ``Dimension -> DimensionScore``, plus the rationales when asked for."""

    def __init__(
        self, scores: Mapping[Dimension, DimensionScore], rationale: Mapping[Dimension, str] | None = None
    ):
        self.scores = dict(scores)
        self.rationale = dict(rationale) if rationale is not None else None

    def __getitem__(self, dimension: Dimension | str) -> DimensionScore:
        return self.scores[Dimension(dimension)]

    def __iter__(self) -> Iterator[Dimension]:
        return iter(self.scores)

    def __len__(self) -> int:
        return len(self.scores)

    def __repr__(self) -> str:
        body = ", ".join(f"{d.value}={s.score:.3f}" for d, s in self.scores.items())
        return f"VideoScores({body}{', with rationale' if self.rationale else ''})"


@dataclass(frozen=True)
class PreparedVideo:
    """A clip turned into vision-tower input and prompt tokens."""

    patches: VideoPatches
    tokens: VideoTokens
    second_per_grid_ts: float  # temporal_patch_size / sampled fps (used by Qwen2.5-VL positions)


def resolve_device_dtype(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    """'auto' picks cuda + bfloat16 when a GPU is visible, else cpu + float32."""
    if device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but no CUDA device is visible")
    if dtype == "auto":
        return dev, torch.bfloat16 if dev.type == "cuda" else torch.float32
    return dev, _DTYPES[dtype]


def weights_digest(folder: str | Path) -> str:
    """``sha256:<hex>`` over the names and bytes of a folder's ``*.safetensors`` files."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors files in {folder}")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return f"sha256:{digest.hexdigest()[:32]}"


class ScorerModel:
    """A multimodal LLM scoring videos on the quality dimensions; see the module docstring."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._model: Any = None
        self._tokenizer: Any = None
        self._family: Family | None = None
        self._builder: PromptBuilder | None = None
        self._spec: VisionSpec | None = None
        self._score_ids: torch.Tensor | None = None
        self._device = torch.device("cpu")
        self._dtype = torch.float32
        self._model_ref: ModelRef | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "model_ref": self._model_ref}

    def __setstate__(self, state: dict[str, Any]) -> None:
        ScorerModel.__init__(self, state["config"])
        self._model_ref = state.get("model_ref")

    @property
    def is_setup(self) -> bool:
        return self._model is not None

    def setup(self) -> ScorerModel:
        """Load tokenizer, weights and preprocessing parameters; check the score tokens. Idempotent."""
        if self.is_setup:
            return self
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoTokenizer

        # The folder's own scoring settings (K, score strings, prompt) unless set explicitly.
        source = self.config.name_or_path  # an s3:// or gs:// name stays the model's name in its ref
        cfg = self.config = apply_folder_settings(self.config)
        device, dtype = resolve_device_dtype(cfg.device, cfg.dtype)
        common = {
            "revision": cfg.revision,
            "trust_remote_code": cfg.trust_remote_code,
            "local_files_only": cfg.local_files_only,
        }
        hf_config = AutoConfig.from_pretrained(cfg.name_or_path, **common)
        family_cls = family_for(hf_config.model_type)
        tokenizer = AutoTokenizer.from_pretrained(cfg.name_or_path, **common)
        family = family_cls(tokenizer)
        builder = PromptBuilder(tokenizer, family, cfg.prompt, cfg.levels, cfg.k)  # checks score tokens
        extra = {"attn_implementation": cfg.attn_implementation} if cfg.attn_implementation else {}
        with quiet_progress_bars():
            model = AutoModelForImageTextToText.from_pretrained(
                cfg.name_or_path, config=hf_config, dtype=dtype, use_safetensors=True, **common, **extra
            )
        model.to(device).eval()  # type: ignore[arg-type]  # transformers' typing of .to wraps the model
        processor = load_processor_config(
            cfg.name_or_path, revision=cfg.revision, local_files_only=cfg.local_files_only
        )
        spec = family_cls.default_spec.updated(processor).with_overrides(
            min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels
        )
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer, self._family, self._builder, self._spec = tokenizer, family, builder, spec
        self._score_ids = torch.tensor(builder.score_ids, device=device)
        self._device, self._dtype = device, dtype
        self._model = model
        if self._model_ref is None:
            self._model_ref = self._compute_model_ref(source)
        log.info(
            "scorer %s (%s) on %s/%s, K=%d, %s pixels %d..%d, patch %d, merge %d",
            cfg.name_or_path, family_cls.name, device, str(dtype).removeprefix("torch."), cfg.k,
            spec.budget, spec.min_pixels, spec.max_pixels, spec.patch_size, spec.merge_size,
        )  # fmt: skip
        return self

    def _require(self) -> None:
        if not self.is_setup:
            raise RuntimeError("ScorerModel.setup() has not been called")

    # -- properties -----------------------------------------------------------------------------

    @property
    def model(self) -> Any:
        self._require()
        return self._model

    @property
    def tokenizer(self) -> Any:
        self._require()
        return self._tokenizer

    @property
    def prompts(self) -> PromptBuilder:
        self._require()
        assert self._builder is not None
        return self._builder

    @property
    def family(self) -> Family:
        self._require()
        assert self._family is not None
        return self._family

    @property
    def vision_spec(self) -> VisionSpec:
        self._require()
        assert self._spec is not None
        return self._spec

    @property
    def score_token_ids(self) -> torch.Tensor:
        self._require()
        assert self._score_ids is not None
        return self._score_ids

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def k(self) -> int:
        return self.config.k

    @property
    def model_ref(self) -> ModelRef:
        """Name and revision: a content hash of the safetensors for folders, the commit for hub models."""
        if self._model_ref is None:
            self._model_ref = self._compute_model_ref()
        return self._model_ref

    def _compute_model_ref(self, source: str | None = None) -> ModelRef:
        source = source or self.config.name_or_path
        name = model_folder(self.config.name_or_path)
        if Path(name).is_dir():
            shown = source.rstrip("/") if source is not None and is_remote(source) else name
            return ModelRef(name=shown, revision=weights_digest(name))
        commit = getattr(getattr(self._model, "config", None), "_commit_hash", None)
        return ModelRef(name=name, revision=commit or self.config.revision or "unknown")

    # -- inputs ---------------------------------------------------------------------------------

    def prepare_video(self, clip: VideoClip) -> PreparedVideo:
        """Preprocess a clip and lay out its prompt tokens, at the clip's own frame times."""
        self._require()
        if not isinstance(clip, VideoClip):
            raise TypeError(
                f"the scorer takes VideoClip records (ultravqa_ray.video), got {type(clip).__name__}"
            )
        patches = preprocess_video(clip.frames, self.vision_spec)
        fps = clip.sampled_fps(self.config.default_fps)
        return PreparedVideo(
            patches=patches,
            tokens=self.family.video_tokens(patches, self.vision_spec, [float(t) for t in clip.timestamps_s]),
            second_per_grid_ts=self.vision_spec.temporal_patch_size / fps,
        )

    def vision_inputs(self, prepared: Sequence[PreparedVideo]) -> dict[str, torch.Tensor]:
        return {
            "pixel_values_videos": torch.cat([p.patches.pixel_values for p in prepared]).to(
                self._device, self._dtype
            ),
            "video_grid_thw": torch.tensor([list(p.patches.grid_thw) for p in prepared], device=self._device),
        }

    def second_per_grid_ts(self, prepared: Sequence[PreparedVideo]) -> torch.Tensor:
        return torch.tensor([p.second_per_grid_ts for p in prepared], device=self._device)

    def rope_positions(self, input_ids, types, attention_mask, grids, spg) -> torch.Tensor:
        """The family's own 3-axis positions of padded prompts (``get_rope_index``)."""
        return self.family.rope_index(self._model, input_ids, types, grids, attention_mask, spg)

    # -- one-pass scoring -----------------------------------------------------------------------

    def score_clips(
        self,
        clips: Sequence[VideoClip],
        dimensions: Sequence[Dimension] = DIMENSIONS,
        rationale: bool = False,
    ) -> list[VideoScores | ProcessingError]:
        """Score each clip on each dimension: probs, expected score and argmax label (section 3).

        The one entry point of every scoring path (serving, batch scoring, ``score``, evaluation
        and the reference pass). Clips go through the model ``config.max_videos_per_forward`` at a
        time, each chunk in one prefix pass and one batched suffix pass for all dimensions. One
        result per clip, in order: the scores, or, when the model failed on the clip's chunk, an
        ``internal`` :class:`ProcessingError` for each clip of that chunk (the others are scored).
        """
        self._require()
        dims = tuple(Dimension(d) for d in dimensions)
        if not dims:
            raise ValueError("at least one dimension is needed")
        out: list[VideoScores | ProcessingError] = []
        step = self.config.max_videos_per_forward
        for start in range(0, len(clips), step):
            part = clips[start : start + step]
            try:
                chunk = [self.prepare_video(c) for c in part]
                with torch.inference_mode():
                    if rationale:
                        log_probs, written = self._rationale_pass(chunk, dims)
                        texts = [[self._decode(ids) for ids in per_video] for per_video in written]
                    else:
                        log_probs, texts = self._score_pass(chunk, dims), None
                out += self._to_scores(log_probs, dims, texts)
            except TypeError:
                raise  # not a clip: the caller's bug, not the input's
            except Exception as exc:  # a fault of ours: this chunk fails as internal, the rest go on
                log.exception("scoring %d clips failed", len(part))
                error = ProcessingError(ErrorKind.INTERNAL, f"scoring failed: {type(exc).__name__}: {exc}")
                out += [error] * len(part)
        return out

    def score_log_probs(
        self, videos: Sequence[VideoClip], dimensions: Sequence[Dimension] = DIMENSIONS
    ) -> torch.Tensor:
        """``(V, D, K)`` log pi(s | clip, dimension) by the one-pass path of :meth:`score_clips` (no
        grad), float32 on CPU; failures raise. The tensor view tests and benchmarks compare."""
        self._require()
        dims = tuple(Dimension(d) for d in dimensions)
        parts = []
        step = self.config.max_videos_per_forward
        for start in range(0, len(videos), step):
            chunk = [self.prepare_video(v) for v in videos[start : start + step]]
            with torch.inference_mode():
                parts.append(self._score_pass(chunk, dims).cpu())
        return torch.cat(parts)

    def _to_scores(self, log_probs: torch.Tensor, dims, texts) -> list[VideoScores]:
        probs = log_probs.exp().double()
        probs = probs / probs.sum(-1, keepdim=True)
        scores, labels = expected_score(probs).tolist(), argmax_label(probs).tolist()
        result = []
        for v in range(probs.shape[0]):
            per_dim = {
                d: DimensionScore(score=scores[v][j], label=labels[v][j], probs=probs[v, j].tolist())
                for j, d in enumerate(dims)
            }
            result.append(
                VideoScores(per_dim, None if texts is None else dict(zip(dims, texts[v], strict=True)))
            )
        return result

    def _prefix_pass(self, chunk: Sequence[PreparedVideo]):
        """Run the shared prefixes once; return the cache, prefix mask and last prefix positions."""
        rows = [self.prompts.prefix(p.tokens) for p in chunk]
        pad = self._tokenizer.pad_token_id
        ids, mask = left_pad([r[0] for r in rows], pad)
        types, _ = left_pad([r[1] for r in rows], 0, dtype=torch.int)
        ids, mask, types = ids.to(self._device), mask.to(self._device), types.to(self._device)
        vision = self.vision_inputs(chunk)
        spg = self.second_per_grid_ts(chunk)
        positions = self.rope_positions(ids, types, mask, vision["video_grid_thw"], spg)
        out = self._model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            mm_token_type_ids=types,
            use_cache=True,
            logits_to_keep=1,
            **vision,
        )
        return out.cache, mask, positions[:, :, -1]

    def _continue(self, cache, mask, last_pos, ids, new_mask):
        """Feed ``ids (R, S)`` after the cached tokens; positions continue each row's last one."""
        steps = new_mask.cumsum(-1)
        positions = last_pos[:, :, None] + steps[None]
        mask = torch.cat([mask, new_mask], dim=1)
        out = self._model(
            input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
            logits_to_keep=1,
        )  # fmt: skip
        return out.logits[:, -1], mask, positions[:, :, -1]

    def _expanded_prefix(self, chunk, n_dims: int):
        cache, mask, last_pos = self._prefix_pass(chunk)
        cache.batch_repeat_interleave(n_dims)
        return cache, mask.repeat_interleave(n_dims, dim=0), last_pos.repeat_interleave(n_dims, dim=1)

    def _suffix_batch(self, dims, n_videos: int, *, with_answer_prefix: bool):
        ids, mask = left_pad(
            [self.prompts.suffix(d, with_answer_prefix=with_answer_prefix) for d in dims],
            self._tokenizer.pad_token_id,
        )
        return ids.repeat(n_videos, 1).to(self._device), mask.repeat(n_videos, 1).to(self._device)

    def _score_pass(self, chunk: Sequence[PreparedVideo], dims) -> torch.Tensor:
        cache, mask, last_pos = self._expanded_prefix(chunk, len(dims))
        ids, new_mask = self._suffix_batch(dims, len(chunk), with_answer_prefix=True)
        logits, _, _ = self._continue(cache, mask, last_pos, ids, new_mask)
        return score_log_probs(logits, self.score_token_ids).view(len(chunk), len(dims), -1)

    def _rationale_pass(self, chunk: Sequence[PreparedVideo], dims):
        """Greedy rationale per (video, dimension) from the shared cache, then the score read-out."""
        cache, mask, last_pos = self._expanded_prefix(chunk, len(dims))
        ids, new_mask = self._suffix_batch(dims, len(chunk), with_answer_prefix=False)
        logits, mask, last_pos = self._continue(cache, mask, last_pos, ids, new_mask)
        rows = logits.shape[0]
        tail = self.prompts.rationale_tail_ids
        # The model may not write vision placeholders; any other special token ends its turn.
        banned = torch.tensor(sorted(set(self.family.ids.values())), device=logits.device)
        stop = {self.prompts.end_id, self._tokenizer.eos_token_id, self._tokenizer.pad_token_id}
        stop |= {i for i, t in self._tokenizer.added_tokens_decoder.items() if t.special}
        stop -= set(banned.tolist()) | {None}
        generated: list[list[int]] = [[] for _ in range(rows)]
        forced: list[list[int] | None] = [None] * rows  # tail still to feed once generation stopped
        score_logits = torch.empty((rows, logits.shape[-1]), device=logits.device, dtype=logits.dtype)
        done = [False] * rows
        pad = self._tokenizer.pad_token_id
        while not all(done):
            feed = [pad] * rows
            finishing = [False] * rows
            for r in range(rows):
                if done[r]:
                    continue
                if forced[r] is None:
                    token = int(logits[r].index_fill(0, banned, float("-inf")).argmax())
                    if token in stop or len(generated[r]) >= self.config.rationale_max_new_tokens:
                        forced[r] = list(tail if generated[r] else self.prompts.answer_prefix_ids)
                    else:
                        generated[r].append(token)
                        feed[r] = token
                        finishing[r] = len(generated[r]) >= len(tail) and generated[r][-len(tail) :] == tail
                tail_left = forced[r]
                if tail_left is not None:
                    feed[r] = tail_left.pop(0)
                    finishing[r] = not tail_left
            step_mask = torch.tensor([[0 if done[r] else 1] for r in range(rows)], device=self._device)
            step_ids = torch.tensor([[t] for t in feed], device=self._device)
            logits, mask, last_pos = self._continue(cache, mask, last_pos, step_ids, step_mask)
            for r in range(rows):
                if finishing[r]:
                    score_logits[r] = logits[r]
                    done[r] = True
        log_probs = score_log_probs(score_logits, self.score_token_ids).view(len(chunk), len(dims), -1)
        written = [generated[r][: -len(tail)] if forced[r] is None else generated[r] for r in range(rows)]
        return log_probs, [written[v * len(dims) : (v + 1) * len(dims)] for v in range(len(chunk))]

    def _decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=True).strip()
