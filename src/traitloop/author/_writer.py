"""The generator that writes a trait's data or a prompt pool: an OpenAI-compatible chat server, or the
embedded model offline, behind one small interface, with every reply kept in the judge cache.

A reply is cached (SQLite, the judges' cache file) under a hash of the generator, the messages, the sampling
settings and the request's seed the moment it arrives, so a killed ``trait new`` run again asks only for what
it never got, and a server's timeouts, 429s, 5xx and cut-off replies are retried by the judges' HTTP client
without losing a reply already received. A server is reached through ``traitloop.generate``'s server
generator, the same HTTP stack a run generates with. A request is retried with a new seed (a new cache key) when its
reply does not parse, so a retry is a new sample, and a re-run replays the same retries from the cache.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

from traitloop._http import in_parallel, parse_server_option
from traitloop._progress import Progress
from traitloop.errors import UserError
from traitloop.generate import GenerationRefused, ServerGenerator, server_generator
from traitloop.judge import CachedJudgement, JudgementCache, cache_key

LOCAL_MODEL = "smollm2-135m-instruct"
WEAK_NOTE = (
    "the local generator is SmolLM2-135M-Instruct, a 135M-parameter model: it often ignores the format asked "
    "for and writes weak, repetitive text, so expect many retries and filtered items and a trait that is only "
    "roughly what you described. Use --generator openai:MODEL@URL with a capable model for real work."
)


@dataclass(frozen=True)
class Request:
    """One chat request: the conversation so far, how long a reply may be, how to sample, and its seed."""

    messages: tuple[tuple[str, str], ...]  # (role, content) pairs
    max_tokens: int
    seed: int
    temperature: float = 0.9

    @classmethod
    def chat(cls, user: str, max_tokens: int, seed: int, system: str | None = None) -> Request:
        turns = ((("system", system),) if system else ()) + (("user", user),)
        return cls(turns, max_tokens, seed)

    @property
    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


Deliver = Callable[[int, str], None]
"""Called with a request's index and its reply the moment the reply arrives."""


class Backend(Protocol):
    """Who writes: answers each request and delivers every reply as it comes."""

    name: str
    weak: bool

    def write(self, requests: list[Request], deliver: Deliver) -> None: ...

    def attempts(self) -> int:
        """Requests actually sent, retries of failed ones included."""
        ...


class ServerBackend:
    """An OpenAI-compatible server, through the generation backend's server generator (one HTTP stack for
    runs and authoring), ``concurrency`` requests at a time; each reply is delivered the moment it arrives."""

    weak = False

    def __init__(self, generator: ServerGenerator) -> None:
        self.generator = generator
        self.name = f"openai:{generator.model}@{generator.client.base_url}"

    def write(self, requests: list[Request], deliver: Deliver) -> None:
        def one(index: int) -> None:
            request = requests[index]
            try:
                text = self.generator.chat(request.message_dicts, max_tokens=request.max_tokens,
                                           temperature=request.temperature, top_p=0.95, seed=request.seed)  # fmt: skip
            except GenerationRefused as error:
                raise UserError(
                    f"the generator server {self.generator.client.base_url} refused a request (model "
                    f"{self.generator.model!r}) with HTTP {error.status}: {error.reason}. Every reply received so far "
                    "is cached; fix the model name or the server and run the same command again."
                ) from error
            deliver(index, text)

        in_parallel(one, range(len(requests)), self.generator.concurrency)

    def attempts(self) -> int:
        return self.generator.client.requests


class LocalBackend:
    """The embedded model in this process (no network), through the local generation backend, in batches."""

    weak = True

    def __init__(self, model: str = LOCAL_MODEL, batch_size: int = 16) -> None:
        self.model_name, self.batch_size = model, batch_size
        self.name = f"local:{model}"
        self.sent = 0

    @cached_property
    def _generator(self):
        from traitloop.generate import LocalGenerator
        from traitloop.models import load_model, load_tokenizer, resolve_model

        base = resolve_model(self.model_name)
        return LocalGenerator(load_model(base), load_tokenizer(base))

    def write(self, requests: list[Request], deliver: Deliver) -> None:
        from traitloop.generate import SamplingParams

        groups: dict[tuple[int, float], list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault((request.max_tokens, request.temperature), []).append(index)
        for (max_tokens, temperature), indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start : start + self.batch_size]
                params = SamplingParams(temperature, 0.95, max_tokens, self.batch_size, requests[batch[0]].seed)
                texts = self._generator.generate([requests[i].message_dicts for i in batch], params)
                self.sent += len(batch)
                for index, text in zip(batch, texts, strict=True):
                    deliver(index, text)

    def attempts(self) -> int:
        return self.sent


@dataclass
class Writer:
    """A backend whose every reply is cached: ``writer(requests)`` returns one reply per request, in order."""

    backend: Backend
    cache: JudgementCache
    asked: int = 0  # replies not in the cache, asked of the backend
    cached: int = 0  # replies the cache already held
    progress: Progress = field(default_factory=Progress.silent)  # where each call shows its replies arriving
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.backend.name

    def _key(self, request: Request) -> str:
        return cache_key("author", self.backend.name, request.messages, request.max_tokens, request.temperature,
                         request.seed)  # fmt: skip

    def __call__(self, requests: list[Request], what: str = "writing") -> list[str]:
        """One reply per request, in order; while the backend is asked, the replies' arrival is shown as ``what``."""
        keys = [self._key(r) for r in requests]
        replies: dict[int, str] = {}
        for index, key in enumerate(keys):
            hit = self.cache.get(key)
            if hit is not None:
                replies[index] = hit.raw or ""
        missing = [i for i in range(len(requests)) if i not in replies]
        self.cached += len(replies)

        if missing:
            with self.progress.task(what, len(requests)) as step:
                step(len(replies))

                def deliver(position: int, text: str) -> None:
                    index = missing[position]
                    self.cache.put(keys[index], CachedJudgement(None, None, text, None))
                    with self._lock:
                        replies[index] = text
                        self.asked += 1
                    step(1)

                self.backend.write([requests[i] for i in missing], deliver)
        return [replies[i] for i in range(len(requests))]

    def stats(self) -> dict[str, int]:
        return {"asked": self.asked, "from_cache": self.cached, "sent": self.backend.attempts()}


def parse_generator_option(text: str) -> tuple[str, str | None, str | None]:
    """``local`` or ``openai:MODEL@URL``: the kind, the model and the server."""
    if text.strip() == "local":
        return "local", LOCAL_MODEL, None
    model, base_url = parse_server_option(text, "--generator", "local")
    return "openai", model, base_url


def make_writer(
    generator: str,
    *,
    api_key_env: str | None = None,
    cache_path: Path | None = None,
    concurrency: int = 8,
    timeout: float = 300.0,
    max_retries: int = 6,
    backoff_base: float = 0.5,
    progress: Progress | None = None,
) -> Writer:
    """The cached writer a ``--generator`` option names; ``progress`` shows its work and the judging of it."""
    kind, model, base_url = parse_generator_option(generator)
    if kind == "local":
        backend: Backend = LocalBackend(model or LOCAL_MODEL)
    else:
        assert model and base_url
        backend = ServerBackend(
            server_generator(base_url, model, api_key_env=api_key_env, concurrency=concurrency, timeout=timeout,
                             max_retries=max_retries, backoff_base=backoff_base)
        )  # fmt: skip
    return Writer(backend, JudgementCache(cache_path), progress=progress or Progress.silent())
