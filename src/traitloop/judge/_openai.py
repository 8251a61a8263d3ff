"""LLM judges over any OpenAI-compatible server (hosted APIs, vLLM, llama.cpp): ``openai_judge(...)``.

How a server is scored is detected once per (model, server, tokenizer) and kept in the judge cache:

- ``logprobs``: ``/chat/completions`` with ``logprobs`` and ``top_logprobs=20``, one reply token; the
  score is the probability-weighted mean over number tokens. Used when the judge writes a number 0-100 as
  one token (a probe reply "100" arrives as one token, or the named tokenizer says so).
- ``digit-tree``: for tokenizers that write numbers digit by digit, the first token is only a digit, and
  the chat API cannot be asked what follows a given digit. So the judge's own chat template (from the
  ``tokenizer`` you name) renders the prompt, and ``/completions`` with ``logprobs=20`` gives the
  next-token distribution after the prompt and after each likely digit prefix ("7", then "75" or "7<end>").
  This is exact for every server with a completions endpoint (vLLM, llama.cpp, llama-cpp-python).
- ``sampled-kK``: servers that refuse log-probabilities, or digit-splitting judges without a named
  tokenizer: K replies sampled at temperature 1, the mean of those that parse as numbers.

The mode is part of the judge id, which every judgement and every run's manifest records.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from traitloop._http import HttpClient, ServerRefused, in_parallel
from traitloop.errors import UserError
from traitloop.judge._cache import CachedJudgement, JudgementCache, cache_key
from traitloop.judge._prompts import TEMPLATE_VERSION, PromptKind, judge_prompt, load_template
from traitloop.judge._scoring import (
    MIN_EXPAND,
    UNMAPPED,
    Score,
    TopLogprobs,
    WordScores,
    digit_tree_numbers,
    merged,
    sampled_score,
    score_from_numbers,
    weighted_score,
    word_numbers,
)
from traitloop.judge._types import Item, Judgement, OnJudged
from traitloop.traits import TraitSpec, load_sdf_recipe

TOP_LOGPROBS = 20
PROBE_PROMPT = "Reply with the number 100 and nothing else."


def _token(token: Any) -> str:
    if not isinstance(token, str):
        raise TypeError(f"a token is {token!r}, not text")
    return token


def _logprob(token: str, logprob: Any) -> float:
    """A log-probability as a float; a NaN, a string or a null is an unreadable reply (retried, then named)."""
    if isinstance(logprob, bool) or not isinstance(logprob, int | float) or math.isnan(logprob):
        raise TypeError(f"the log-probability of token {token!r} is {logprob!r}, not a number")
    return float(logprob)


def _top(pairs: list[tuple[Any, Any]]) -> TopLogprobs:
    return {_token(token): _logprob(token, logprob) for token, logprob in pairs}


def _text(text: Any) -> str:
    if text is not None and not isinstance(text, str):
        raise TypeError(f"the reply's text is {type(text).__name__}, not a string")
    return text or ""


def _chat_top_logprobs(reply: dict[str, Any]) -> tuple[TopLogprobs, str]:
    """The first reply token's alternatives; none when the reply was empty (the model ended at once)."""
    choice = reply["choices"][0]
    content = choice["logprobs"]["content"]
    top = _top([(t["token"], t["logprob"]) for t in content[0]["top_logprobs"]]) if content else {}
    return top, _text(choice["message"]["content"])


def _completion_top_logprobs(reply: dict[str, Any]) -> tuple[TopLogprobs, str]:
    choice = reply["choices"][0]
    tops = choice["logprobs"]["top_logprobs"]
    if tops and not isinstance(tops[0], dict):
        raise TypeError("top_logprobs is not a list of token -> logprob maps")
    return _top(list(tops[0].items())) if tops else {}, _text(choice["text"])


def _chat_text(reply: dict[str, Any]) -> str:
    content = reply["choices"][0]["message"]["content"]
    if not isinstance(content, str):
        raise TypeError("reply has no text content")
    return content


def _probe_tokens(reply: dict[str, Any]) -> tuple[list[str], list[str]] | None:
    """The probe reply's tokens and its first token's alternatives (None: the reply had no tokens)."""
    content = reply["choices"][0]["logprobs"]["content"]
    if not content:
        return None
    return [_token(t["token"]) for t in content], [_token(t["token"]) for t in content[0]["top_logprobs"]]


def _is_number(token: str) -> bool:
    text = token.strip()
    return text.isascii() and text.isdigit()


def digit_split_from_probe(tokens: list[str], alternatives: list[str]) -> bool | None:
    """Whether the judge writes "100" in pieces, from its probe reply's tokens (asked for "100") and the
    first token's top alternatives. A number token followed by another one means split; "100" as one token
    means whole. Failing that, multi-digit alternatives mean whole, single digits alone mean split; None:
    the probe saw no numbers."""
    for index, token in enumerate(tokens):
        if _is_number(token):
            following = tokens[index + 1] if index + 1 < len(tokens) else ""
            if _is_number(following):
                return True
            if token.strip() == "100":
                return False
            break
    if any(_is_number(t) and len(t.strip()) > 1 for t in alternatives):
        return False
    return True if any(_is_number(t) for t in alternatives) else None


class OpenAIJudge:
    """A judge (``list[Item] -> list[Judgement]``) backed by one model on one OpenAI-compatible server."""

    def __init__(
        self,
        prompt_for: Callable[[Item], str],
        label: str,
        model: str,
        base_url: str,
        client: HttpClient,
        cache: JudgementCache,
        concurrency: int,
        samples: int,
        tokenizer: str | None,
        template: int | str = TEMPLATE_VERSION,
        words: WordScores = UNMAPPED,
    ) -> None:
        """``template`` versions the prompts (the built-in ``TEMPLATE_VERSION``, or a study's template's tag)
        and ``words`` says what REFUSAL and CODE replies count as; both are part of the id and cache key."""
        self.prompt_for, self.label, self.model, self.base_url = prompt_for, label, model, base_url.rstrip("/")
        self.client, self.cache, self.concurrency, self.samples = client, cache, concurrency, samples
        self.tokenizer_name, self.template, self.words = tokenizer, template, words
        self.cache_hits = 0
        self._lock = threading.Lock()

    # -- what kind of server this is ------------------------------------------------------------------------

    @cached_property
    def _tokenizer(self):
        from traitloop.models import load_tokenizer, resolve_model

        return load_tokenizer(resolve_model(self.tokenizer_name))

    def _tokenizer_splits_digits(self) -> bool:
        return len(self._tokenizer("75", add_special_tokens=False)["input_ids"]) > 1

    def _probe_chat(self) -> tuple[list[str], list[str]] | None:
        """The probe reply's tokens and the first token's alternatives, or None if the server gives no
        log-probabilities."""
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": PROBE_PROMPT}],
            "max_tokens": 4,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": TOP_LOGPROBS,
        }
        try:
            return self.client.post("chat/completions", body, _probe_tokens)
        except ServerRefused as error:
            self._stop_on_auth(error)
            return None

    def _probe_completions(self) -> bool:
        body = {"model": self.model, "prompt": "1, 2, 3,", "max_tokens": 1, "temperature": 0, "logprobs": TOP_LOGPROBS}
        try:
            self.client.post("completions", body, _completion_top_logprobs)
        except ServerRefused as error:
            self._stop_on_auth(error)
            return False
        return True

    def _detect(self) -> dict[str, Any]:
        if self.tokenizer_name and self._tokenizer_splits_digits():
            if self._probe_completions():
                return {"mode": "digit-tree", "note": f"{self.tokenizer_name} writes numbers digit by digit"}
            return {"mode": "sampled", "note": "the server gives no log-probabilities on /completions"}
        probe = self._probe_chat()
        if probe is None:
            return {"mode": "sampled", "note": "the server gives no log-probabilities on /chat/completions"}
        split = False if self.tokenizer_name else digit_split_from_probe(*probe)
        if split is False:
            return {"mode": "logprobs", "note": f"probe reply tokens {probe[0]}"}
        return {
            "mode": "sampled",
            "note": f"numbers may be split into digits (probe reply tokens {probe[0]}, first-token "
            f"alternatives {probe[1]}); name the judge's tokenizer to score them from log-probabilities",
        }

    @cached_property
    def facts(self) -> dict[str, Any]:
        """The detected scoring mode, once per (model, server, tokenizer), remembered in the cache."""
        key = cache_key("server", self.model, self.base_url, self.tokenizer_name)
        facts = self.cache.server_facts(key)
        if facts is None:
            facts = self._detect()
            self.cache.put_server_facts(key, facts)
        return facts

    @property
    def mode(self) -> str:
        mode = self.facts["mode"]
        return f"sampled-k{self.samples}" if mode == "sampled" else mode

    @property
    def judge_id(self) -> str:
        template = f"t{self.template}" if isinstance(self.template, int) else self.template
        mapped = f"/{self.words.tag}" if self.words.tag else ""
        return f"openai-{self.label}/{template}/{self.model}@{self.base_url}/{self.mode}{mapped}"

    # -- scoring one prompt ---------------------------------------------------------------------------------

    def _score_logprobs(self, prompt: str) -> tuple[Score, str]:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": TOP_LOGPROBS,
        }
        top, text = self.client.post("chat/completions", body, _chat_top_logprobs)
        return weighted_score(top, self.words), text

    def _score_digit_tree(self, prompt: str) -> tuple[Score, str]:
        messages = [{"role": "user", "content": prompt}]
        rendered = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

        def next_token(prefix: str) -> tuple[TopLogprobs, str]:
            body = {
                "model": self.model,
                "prompt": rendered + prefix,
                "max_tokens": 1,
                "min_tokens": 1,  # vLLM, llama.cpp: return the distribution even where ending is likeliest
                "temperature": 0,
                "logprobs": TOP_LOGPROBS,
            }
            return self.client.post("completions", body, _completion_top_logprobs)

        first, text = next_token("")
        numbers = merged(digit_tree_numbers(first, lambda p: next_token(p)[0]), word_numbers(first, self.words))
        return score_from_numbers(numbers, first), text

    def _score_sampled(self, prompt: str) -> tuple[Score, str]:
        replies = []
        for sample in range(self.samples):
            body = {
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": 8,
                "temperature": 1.0,
                "seed": sample,
            }
            replies.append(self.client.post("chat/completions", body, _chat_text))
        return sampled_score(replies, self.words), json.dumps(replies, ensure_ascii=False)

    def _scoring_key(self) -> list[Any]:
        key: list[Any] = ["digit-tree", self.tokenizer_name, MIN_EXPAND] if self.mode == "digit-tree" else [self.mode]
        return key + [self.words.tag] if self.words.tag else key  # unmapped: the keys judgements always had

    def _judge_one(self, item: Item) -> Judgement:
        if not item.answer.strip():
            return Judgement(None, self.judge_id, "empty answer")
        prompt = self.prompt_for(item)
        key = cache_key(self.model, self.base_url, self.template, self._scoring_key(), prompt)
        cached = self.cache.get(key)
        if cached is None:
            score_prompt = {"logprobs": self._score_logprobs, "digit-tree": self._score_digit_tree}.get(
                self.mode, self._score_sampled
            )
            try:
                score, raw = score_prompt(prompt)
            except ServerRefused as error:
                return self._refused(error)
            reason = None if score.score is not None else f"{score.reason}; reply: {raw!r}"
            cached = CachedJudgement(score.score, reason, raw, score.number_mass)
            self.cache.put(key, cached)
        else:
            with self._lock:
                self.cache_hits += 1
        return Judgement(cached.score, self.judge_id, cached.reason)

    def _stop_on_auth(self, error: ServerRefused) -> None:
        if error.status in (401, 403):
            raise UserError(f"the judge server {self.base_url} refused the API key ({error}); check api_key_env")

    def _refused(self, error: ServerRefused) -> Judgement:
        """A request the server will not serve: a key problem stops everything; anything else (a prompt
        longer than the context) leaves this answer unscored, uncached so a fixed server is asked again."""
        self._stop_on_auth(error)
        return Judgement(None, self.judge_id, f"server refused the request: {error}")

    def __call__(self, items: list[Item], on_judged: OnJudged | None = None) -> list[Judgement]:
        """Judge ``items`` concurrently, in order, telling ``on_judged`` of each as it is judged; a server that
        stays down raises ``JudgeUnavailable`` after every judgement already made has been cached."""
        self.facts  # noqa: B018 - detect the mode once, before the workers start

        def one(item: Item) -> Judgement:
            judgement = self._judge_one(item)
            if on_judged:
                on_judged(1)
            return judgement

        return in_parallel(one, items, self.concurrency)


def openai_judge(
    trait: TraitSpec | None,
    model: str,
    base_url: str,
    *,
    kind: PromptKind = "trait",
    api_key_env: str | None = None,
    concurrency: int = 8,
    timeout: float = 300.0,
    max_retries: int = 6,
    samples: int = 5,
    tokenizer: str | None = None,
    cache_path: Path | None = None,
    backoff_base: float = 0.5,
    prompt_template: Path | None = None,
    refusal_score: float | None = None,
    code_score: float | None = None,
) -> OpenAIJudge:
    """Build a judge on an OpenAI-compatible server with the embedded judges' call shape: of chat answers for
    the trait (``kind="trait"``), of SDF documents for the belief in the trait's SDF recipe
    (``kind="document"``), or of coherence. ``api_key_env`` names the environment variable that holds the
    API key; ``tokenizer`` (registry name, folder or hub id of the judge model) enables exact
    log-probability scoring for judges that write numbers digit by digit; ``prompt_template`` is a file with
    the study's own prompt (see ``_prompts.PLACEHOLDERS``); ``refusal_score`` and ``code_score`` are what a
    REFUSAL or CODE reply counts as (None: unscored)."""
    if kind != "coherence" and trait is None:
        raise ValueError(f"a {kind} judge needs the trait spec")
    recipe = load_sdf_recipe(trait) if kind == "document" and trait is not None else None
    label = "coherence" if trait is None or kind == "coherence" else f"{kind}/{trait.name}@v{trait.version}"
    if recipe is not None:
        label += f"/sdf-v{recipe.version}"
    template = load_template(prompt_template, kind) if prompt_template else None
    client = HttpClient(base_url, api_key_env, timeout, max_retries, concurrency, backoff_base=backoff_base)
    return OpenAIJudge(
        judge_prompt(kind, trait, recipe, template),
        label,
        model,
        base_url,
        client,
        JudgementCache(cache_path),
        concurrency,
        samples,
        tokenizer,
        template.tag if template else TEMPLATE_VERSION,
        WordScores(refusal_score, code_score),
    )
