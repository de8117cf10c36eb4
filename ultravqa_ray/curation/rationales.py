"""Rationales written by a language model from pooled human judgments, checked, cached, with a fallback.

For every rated (video, dimension) of an annotation manifest the writer builds the pooled judgment
(:mod:`ultravqa_ray.data.pooled`) and asks any OpenAI-compatible chat endpoint (vLLM, a hosted API;
the ``openai`` client, extra ``llm``) for one or two sentences:

- **bounded concurrency**: at most ``max_in_flight`` requests at a time (asyncio semaphore);
- **retries with backoff** on 429, 5xx, timeouts and dropped connections: exponential with jitter,
  or the server's ``Retry-After`` when it sends one, at most ``backoff_max_s``;
- **a cache on disk keyed by the input** (model, messages, sampling settings): a rerun, or a run
  that meets the same judgment again, sends nothing twice. Only answers are stored, never keys;
- **a check** (:mod:`.prompt`) that the text agrees with the pooled score: the first verdict word it uses is the band
  of the raters' mean, and it names every sub-attribute most raters marked. A text that fails is
  re-asked once, saying what was wrong; a second failure (or an endpoint that keeps failing)
  falls back to the templated writer (:func:`ultravqa_ray.data.rationale.pooled_rationale`).

Without an endpoint (no ``base_url`` in the config or ``ULTRAVQA_LLM_BASE_URL``) every rationale is
templated. The API key comes from the config, ``ULTRAVQA_LLM_API_KEY`` or ``OPENAI_API_KEY``; it is a
secret string that no log line, summary, cache file or output contains. A refused key (401/403) or
an unknown model (404) stops the run with one line: every request would fail the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr

from ultravqa_ray.config import Config
from ultravqa_ray.curation.prompt import PROMPT_VERSION, check, messages_for, reask
from ultravqa_ray.data.pooled import PooledJudgment
from ultravqa_ray.data.rationale import pooled_rationale

log = logging.getLogger(__name__)

ENV_PREFIX = "ULTRAVQA_LLM_"


class EndpointError(RuntimeError):
    """The endpoint refuses every request (bad key, unknown model or path): stop, do not fall back."""


class RationalesConfig(Config):
    """The chat endpoint and how the writer uses it (``ultravqa-ray rationales --config FILE``)."""

    k: int = Field(5, ge=2, description="Score levels 1..k of the manifest's ratings.")
    base_url: str | None = Field(
        None, description="OpenAI-compatible base URL, e.g. http://vllm:8000/v1; absent: ULTRAVQA_LLM_BASE_URL, else templates only."
    )
    model: str | None = Field(None, description="Model name the endpoint serves; absent: ULTRAVQA_LLM_MODEL.")
    api_key: SecretStr | None = Field(
        None, description="API key; absent: ULTRAVQA_LLM_API_KEY, then OPENAI_API_KEY (a local vLLM needs none)."
    )
    max_in_flight: int = Field(8, ge=1, description="Requests in flight at most.")
    max_retries: int = Field(4, ge=0, description="Retries of one request after a 429, a 5xx or a timeout.")
    backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles each retry (with jitter).")
    backoff_max_s: float = Field(8.0, ge=0, description="Longest retry delay, Retry-After included.")
    timeout_s: float = Field(60.0, gt=0, description="Timeout of one request.")
    temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(160, ge=16, description="Longest answer, in tokens.")
    max_comments: int = Field(5, ge=0, description="Rater comments given to the model per dimension.")
    cache_dir: str | None = Field(
        None, description="Answer cache folder; absent: $XDG_CACHE_HOME (or ~/.cache)/ultravqa-ray/rationales."
    )
    cache: bool = Field(True, description="Read and write the answer cache.")

    def resolved(self, environ: Mapping[str, str] | None = None) -> RationalesConfig:
        """A copy with ``base_url``, ``model`` and ``api_key`` filled from the environment where absent."""
        env = os.environ if environ is None else environ
        key = self.api_key or _secret(env.get(ENV_PREFIX + "API_KEY") or env.get("OPENAI_API_KEY"))
        out = self.model_copy(
            update={
                "base_url": self.base_url or env.get(ENV_PREFIX + "BASE_URL") or None,
                "model": self.model or env.get(ENV_PREFIX + "MODEL") or None,
                "api_key": key,
            }
        )
        if out.base_url and not out.model:
            raise ValueError(f"an endpoint needs a model: set model in the config or {ENV_PREFIX}MODEL")
        return out

    def cache_path(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir)
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "ultravqa-ray" / "rationales"


def _secret(value: str | None) -> SecretStr | None:
    return SecretStr(value) if value else None


@dataclass
class WriterStats:
    """What a run did: the counts the CLI prints (and the benchmark reads)."""

    rationales: int = 0
    llm: int = 0
    template: int = 0
    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    reasked: int = 0
    fallbacks: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rationales": self.rationales,
            "written_by_llm": self.llm,
            "templated": self.template,
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "retries": self.retries,
            "reasked": self.reasked,
            "fallbacks": dict(sorted(self.fallbacks.items())),
        }


# -- the writer --------------------------------------------------------------------------------


class RationaleWriter:
    """Writes the rationale of pooled judgments; an endpoint when configured, else templates."""

    def __init__(self, config: RationalesConfig, environ: Mapping[str, str] | None = None):
        self.config = config.resolved(environ)
        self.stats = WriterStats()
        self._cache = self.config.cache_path() if self.config.cache and self.config.base_url else None

    @property
    def uses_endpoint(self) -> bool:
        return bool(self.config.base_url)

    def write(self, judgments: Sequence[PooledJudgment]) -> list[tuple[str, str]]:
        """``(text, source)`` per judgment, in order; source is ``llm`` or ``template``."""
        if not self.uses_endpoint:
            out = [(pooled_rationale(j), "template") for j in judgments]
        else:
            out = asyncio.run(self._write_all(judgments))
        for _, source in out:
            self.stats.rationales += 1
            if source == "llm":
                self.stats.llm += 1
            else:
                self.stats.template += 1
        return out

    async def _write_all(self, judgments: Sequence[PooledJudgment]) -> list[tuple[str, str]]:
        try:
            from openai import AsyncOpenAI
        except ImportError:
            raise EndpointError("the language-model writer needs the openai client: pip install 'ultravqa-ray[llm]'") from None

        key = self.config.api_key.get_secret_value() if self.config.api_key else "EMPTY"
        client = AsyncOpenAI(
            base_url=self.config.base_url, api_key=key, max_retries=0, timeout=self.config.timeout_s
        )
        gate = asyncio.Semaphore(self.config.max_in_flight)
        try:
            return await asyncio.gather(*(self._write_one(client, gate, j) for j in judgments))
        finally:
            await client.close()

    async def _write_one(self, client, gate, j: PooledJudgment) -> tuple[str, str]:
        messages = messages_for(j, self.config.max_comments)
        for attempt in range(2):
            try:
                text = await self._complete(client, gate, messages)
            except _GaveUp as exc:
                self.stats.fallbacks[exc.reason] += 1
                return pooled_rationale(j), "template"
            problem = check(text, j)
            if problem is None:
                return text, "llm"
            if attempt == 0:
                self.stats.reasked += 1
                log.debug("%s: re-asking: %s", j.dimension.value, problem)
                messages = [
                    *messages,
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": reask(j, problem)},
                ]
        self.stats.fallbacks["disagreed"] += 1
        return pooled_rationale(j), "template"

    async def _complete(self, client, gate, messages: list[dict[str, str]]) -> str:
        """The answer to ``messages``: from the cache, else from the endpoint with retries."""
        import openai

        request = {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }
        key = hashlib.sha256(json.dumps({**request, "v": PROMPT_VERSION}, sort_keys=True).encode()).hexdigest()
        cached = self._cache_get(key)
        if cached is not None:
            self.stats.cache_hits += 1
            return cached
        for attempt in range(self.config.max_retries + 1):
            try:
                async with gate:
                    self.stats.requests += 1
                    response = await client.chat.completions.create(**request)
                text = (response.choices[0].message.content or "").strip() if response.choices else ""
                self._cache_put(key, text)
                return text
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
                raise EndpointError(
                    f"chat endpoint {self.config.base_url} answered {exc.status_code} "
                    f"({type(exc).__name__}): check the key, the model name {self.config.model!r} and the base URL"
                ) from None
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as exc:
                if attempt == self.config.max_retries:
                    log.warning("giving up after %d tries: %s", attempt + 1, _describe(exc))
                    raise _GaveUp("unavailable") from None
                self.stats.retries += 1
                await asyncio.sleep(self._delay(attempt, exc))
            except openai.APIStatusError as exc:  # 400, 422...: this request will not succeed
                log.warning("request refused: %s", _describe(exc))
                raise _GaveUp("refused") from None
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, exc: Exception) -> float:
        response = getattr(exc, "response", None)
        after = response.headers.get("retry-after") if response is not None else None
        try:
            if after is not None:
                return min(self.config.backoff_max_s, max(0.0, float(after)))
        except ValueError:
            pass
        base = min(self.config.backoff_max_s, self.config.backoff_s * 2**attempt)
        return base * (0.5 + random.random() / 2)

    def _cache_get(self, key: str) -> str | None:
        if self._cache is None:
            return None
        path = self._cache / key[:2] / f"{key}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))["text"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _cache_put(self, key: str, text: str) -> None:
        if self._cache is None:
            return
        path = self._cache / key[:2] / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps({"text": text}), encoding="utf-8")
        os.replace(tmp, path)


class _GaveUp(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}" + (f" ({status})" if status else "")
