"""POSTs to an OpenAI-compatible server that survive a misbehaving one.

Timeouts, connection errors, 429 and 5xx replies, and bodies that are not the JSON asked for (a proxy that
cut the reply short) are retried with exponential backoff and jitter, waiting at least as long as a
``Retry-After`` header asks. Other 4xx replies, and 5xx replies that say the request is "not supported"
(llama-cpp-python answers a logprobs request it cannot serve with a 500), are the server refusing the
request, which retrying cannot fix. When the retries run out the caller gets :class:`ServerUnavailable`
(:class:`JudgeUnavailable` for a judge, :class:`GenerationUnavailable` for a generation server).
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import httpx

from traitloop.errors import UserError

T = TypeVar("T")
Arg = TypeVar("Arg")
MAX_RETRY_AFTER = 300.0


class ServerUnavailable(UserError):
    """A server kept failing after every retry."""


class JudgeUnavailable(ServerUnavailable):
    """The judge server kept failing after every retry."""


class GenerationUnavailable(ServerUnavailable):
    """The generation server kept failing after every retry."""


_AFTERMATH = {
    "judge": "Every judgement made so far is kept in the judge cache; start or fix the server and run the same "
    "command again to resume.",
    "generation": "Every finished stage is kept in the run folder; start or fix the server and run the same "
    "command again to resume.",
}


class ServerRefused(Exception):
    """The server answered 4xx: it will not do what was asked (e.g. log-probabilities)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text[:300]}")
        self.status = status
        self.text = text

    @property
    def message(self) -> str:
        """The server's own words: OpenAI's and llama.cpp's ``{"error": {"message": ...}}``, vLLM's
        ``{"message": ...}``, ``{"error": "..."}`` or ``{"detail": ...}``; else the reply's text."""
        try:
            reply = json.loads(self.text)
        except ValueError:
            return self.text.strip()[:300]
        found = reply.get("error", reply.get("detail", reply)) if isinstance(reply, dict) else reply
        if isinstance(found, dict) and "message" in found:
            found = found["message"]
        return (found if isinstance(found, str) else json.dumps(found)).strip().rstrip(".")[:300]


def server_address(text: str) -> tuple[str, str] | None:
    """The model and base URL of ``MODEL@URL`` (what follows ``openai:`` in a ``--judge`` or ``--generator``
    option), or None when it is not one (no model, or a URL not starting http)."""
    model, _, base_url = text.rpartition("@")
    return (model, base_url) if model and base_url.startswith(("http://", "https://")) else None


def parse_server_option(text: str, option: str, alternative: str) -> tuple[str, str]:
    """The model and base URL of an ``openai:MODEL@URL`` command-line option (``--judge``, ``--generator``), or
    an error naming the option and its other form ``alternative`` (``embedded``, ``local``)."""
    text = text.strip()
    kind, _, rest = text.partition(":")
    address = server_address(rest) if kind == "openai" else None
    if address is None:
        raise UserError(f"bad {option} '{text}': expected '{alternative}' or 'openai:MODEL@URL' (URL starting http)")
    return address


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date); 0 if absent or unreadable."""
    if not value:
        return 0.0
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return min(MAX_RETRY_AFTER, max(0.0, (when - (now or datetime.now(UTC))).total_seconds()))


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with equal jitter: half the doubled delay fixed, half random."""
    delay = min(cap, base * 2**attempt)
    return delay / 2 + rng.uniform(0, delay / 2)


class HttpClient:
    """One server: a pooled httpx client, the retry policy, and a count of requests sent (for tests)."""

    def __init__(
        self,
        base_url: str,
        api_key_env: str | None,
        timeout: float,
        max_retries: int,
        concurrency: int,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        role: Literal["judge", "generation"] = "judge",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.role = role
        self.max_retries = max_retries
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.Client(timeout=timeout, limits=limits)
        self._rng = random.Random()
        self._lock = threading.Lock()
        self.requests = 0

    def _headers(self) -> dict[str, str]:
        """The API key is read from the environment at request time and only ever sent in this header."""
        if not self.api_key_env:
            return {}
        key = os.environ.get(self.api_key_env)
        if not key:
            raise UserError(
                f"the {self.role} server {self.base_url} needs an API key: "
                f"set the environment variable {self.api_key_env}"
            )
        return {"Authorization": f"Bearer {key}"}

    def post(self, path: str, body: dict[str, Any], read: Callable[[Any], T], reply_json: bool = True) -> T:
        """POST ``body`` and return ``read(reply)``, the reply's JSON (or its text with ``reply_json=False``);
        a reply ``read`` cannot use is retried like a 5xx."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        headers = self._headers()
        problem = ""
        for attempt in range(self.max_retries + 1):
            wait = backoff_seconds(attempt, self.backoff_base, self.backoff_cap, self._rng)
            with self._lock:
                self.requests += 1
            try:
                response = self._client.post(url, json=body, headers=headers)
            except httpx.TransportError as error:  # timeouts, refused or dropped connections, cut-off bodies
                problem = f"{type(error).__name__}: {error}"
            else:
                refused = response.status_code >= 500 and "not supported" in response.text.lower()
                if refused or 400 <= response.status_code < 500 and response.status_code != 429:
                    raise ServerRefused(response.status_code, response.text)
                if response.status_code == 429 or response.status_code >= 500:
                    problem = f"HTTP {response.status_code}: {response.text[:200]}"
                    wait = max(wait, retry_after_seconds(response.headers.get("retry-after")))
                else:
                    try:
                        return read(response.json() if reply_json else response.text)
                    except (ValueError, KeyError, IndexError, TypeError) as error:
                        problem = f"unreadable reply ({type(error).__name__}: {error}): {response.text[:200]!r}"
            if attempt < self.max_retries:
                time.sleep(wait)
        error = JudgeUnavailable if self.role == "judge" else GenerationUnavailable
        raise error(
            f"the {self.role} server {self.base_url} failed {self.max_retries + 1} times in a row (last: {problem}). "
            + _AFTERMATH[self.role]
        )

    def close(self) -> None:
        self._client.close()


def in_parallel(work: Callable[[Arg], T], items: Sequence[Arg], concurrency: int) -> list[T]:
    """``work`` on every item, ``concurrency`` requests at a time, results in the items' order; the first
    error stops the requests not yet started and is raised."""
    errors: list[BaseException] = []

    def guarded(item: Arg) -> T | None:
        if errors:  # a worker that picks up an item after another failed must not send it
            return None
        try:
            return work(item)
        except BaseException as error:
            errors.append(error)
            raise

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(guarded, item) for item in items]
        try:
            return [future.result() for future in futures]  # None only after an error, which this raises
        except BaseException as error:
            pool.shutdown(cancel_futures=True)
            if errors and errors[0] is not error:
                raise errors[0]  # noqa: B904 - the first to fail (not the first in order), its own cause kept
            raise
