"""Prompt token layout for every dimension, and the score-token lookup (DESIGN.md sections 3 and 4).

One prompt per (video, dimension), built from ONE :class:`~ultravqa_ray.model.config.PromptConfig`::

    prefix (shared by the five dimensions of a video):
        <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n  <video tokens>
    suffix (one per dimension):
        {question(d)}<|im_end|>\\n<|im_start|>assistant\\n  [rationale + separator]  {answer_prefix}
    score:
        N                      (the score string: one token, the last answer token before <|im_end|>)

Segments are tokenized separately and concatenated, so the token ids are the same at training
(``"<rationale> Score: N"`` or ``"Score: N"``), at one-pass scoring and at rationale generation,
whatever the tokenizer's merge rules at the segment borders. The next-token logits at the last
token of ``answer_prefix`` are the score logits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from connectors.wire.dimensions import Dimension
from ultravqa_ray.model.config import PromptConfig
from ultravqa_ray.model.families import TEXT, Family, VideoTokens

IGNORE_INDEX = -100
log = logging.getLogger(__name__)


class ScoreTokenError(ValueError):
    """A score string that is not exactly one token of the model's tokenizer."""


def score_token_ids(tokenizer: Any, levels: Sequence[str]) -> list[int]:
    """The token id of each score string; raises :class:`ScoreTokenError` unless each is one token."""
    ids: list[int] = []
    for level in levels:
        encoded = tokenizer.encode(level, add_special_tokens=False)
        if len(encoded) != 1:
            pieces = tokenizer.convert_ids_to_tokens(encoded)
            raise ScoreTokenError(
                f"score string {level!r} is {len(encoded)} tokens {pieces} (ids {encoded}) for this "
                "tokenizer; every score string must be exactly one token: choose other score_strings "
                "or another K"
            )
        ids.append(encoded[0])
    if len(set(ids)) != len(ids):
        raise ScoreTokenError(f"score strings {list(levels)} do not map to distinct tokens: {ids}")
    return ids


@dataclass(frozen=True)
class TokenSequence:
    """One tokenized (video, dimension) training example, before padding.

    ``labels`` is aligned with ``ids`` (the token at t, or -100); ``score_index`` is the position
    whose next-token logits give the score (``labels[score_index + 1]`` is the score token);
    ``rationale_mask`` is True at the rationale tokens themselves.
    """

    ids: list[int]
    types: list[int]
    labels: list[int]
    score_index: int
    rationale_mask: list[bool]


class PromptBuilder:
    """Token ids of prompts and answers for one tokenizer, chat format and prompt config."""

    def __init__(
        self, tokenizer: Any, family: Family, prompt: PromptConfig, levels: Sequence[str], k: int
    ) -> None:
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.k = k
        self.levels = list(levels)
        self.score_ids = score_token_ids(tokenizer, self.levels)
        chat = family.chat
        self.head_ids = self._encode(
            chat.system_start + prompt.system + chat.turn_end + chat.turn_sep + chat.user_start
        )
        self.turn_close_ids = self._encode(chat.turn_end + chat.turn_sep + chat.assistant_start)
        self.answer_prefix_ids = self._encode(prompt.answer_prefix)
        self.rationale_tail_ids = self._encode(prompt.rationale_separator + prompt.answer_prefix)
        self.end_ids = self._encode(chat.turn_end)
        self.end_id = self.end_ids[-1]
        self._question_ids: dict[Dimension, list[int]] = {}
        self._warn_if_unnatural()

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    def _warn_if_unnatural(self) -> None:
        natural = self._encode(self.prompt.answer_prefix + self.levels[0])
        if natural[-1:] != self.score_ids[:1]:
            log.warning(
                "this tokenizer merges the answer prefix %r with the score %r when written together; "
                "the scorer tokenizes them apart (as it trains them), which a model not trained with "
                "this project may find unusual",
                self.prompt.answer_prefix,
                self.levels[0],
            )

    def question_text(self, dimension: Dimension) -> str:
        return self.prompt.question.format(
            label=dimension.label, description=dimension.description, name=dimension.value, k=self.k
        )

    def question_ids(self, dimension: Dimension) -> list[int]:
        if dimension not in self._question_ids:
            self._question_ids[dimension] = self._encode(self.question_text(dimension))
        return self._question_ids[dimension]

    # -- inference --------------------------------------------------------------------------------

    def prefix(self, video: VideoTokens) -> tuple[list[int], list[int]]:
        """Ids and modality types of the part shared by every dimension of one video."""
        return self.head_ids + video.ids, [TEXT] * len(self.head_ids) + video.types

    def suffix(self, dimension: Dimension, *, with_answer_prefix: bool = True) -> list[int]:
        """Ids of the per-dimension part; its last token's next-token logits give the score."""
        ids = self.question_ids(dimension) + self.turn_close_ids
        return ids + self.answer_prefix_ids if with_answer_prefix else ids

    # -- training ---------------------------------------------------------------------------------

    def training_sequence(
        self, video: VideoTokens, dimension: Dimension, score: int, rationale: str | None = None
    ) -> TokenSequence:
        """Prompt + answer ``"<rationale> Score: N<|im_end|>"`` (or ``"Score: N<|im_end|>"``)."""
        if not 1 <= score <= self.k:
            raise ValueError(f"score {score} outside 1..{self.k}")
        prompt_ids, prompt_types = self.prefix(video)
        prompt_ids = prompt_ids + self.suffix(dimension, with_answer_prefix=False)
        rationale_ids = self._encode(rationale.strip()) if rationale else []
        tail = self.rationale_tail_ids if rationale_ids else self.answer_prefix_ids
        answer = rationale_ids + tail + [self.score_ids[score - 1]] + self.end_ids
        ids = prompt_ids + answer
        n_prompt = len(prompt_ids)
        return TokenSequence(
            ids=ids,
            types=prompt_types + [TEXT] * (len(ids) - len(prompt_types)),
            labels=[IGNORE_INDEX] * n_prompt + answer,
            score_index=n_prompt + len(rationale_ids) + len(tail) - 1,
            rationale_mask=[False] * n_prompt
            + [True] * len(rationale_ids)
            + [False] * (len(answer) - len(rationale_ids)),
        )
