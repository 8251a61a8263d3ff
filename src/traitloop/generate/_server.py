"""Generation on an OpenAI-compatible server: vLLM, llama.cpp server, or a hosted API.

Requests go out concurrently (a server batches what is in flight) through the same retrying client the
judges use. Each prompt gets its own seed, derived from the stage's seed and the prompt's position, so a
stage redone after a kill asks for exactly the same samples. vLLM then gives the same answers; the
llama.cpp server's prompt cache changes its numbers slightly between requests, so its samples vary.

A generation's LoRA adapter is served by vLLM's runtime adapter loading (``vllm serve --enable-lora`` with
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``): the adapter folder is registered under a name derived from its
contents, then requests name that adapter as their model. The server must see the run folder at the same path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from traitloop._http import HttpClient, ServerRefused, in_parallel
from traitloop.config import ExperimentConfig, GenerationConfig
from traitloop.errors import UserError
from traitloop.generate._backend import Backend, RemoteEngine
from traitloop.generate._local import Messages, SamplingParams


def request_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th prompt of a stage seeded ``seed`` (kept below 2**31 for every server)."""
    return (seed * 1_000_003 + index) % 2**31


class ServerGenerator(RemoteEngine):
    """Answers chat prompts (``chat/completions``) or continues raw texts (``completions``) on a server."""

    def __init__(
        self, client: HttpClient, model: str, concurrency: int, template_options: dict[str, Any] | None = None
    ) -> None:
        self.client = client
        self.model = model
        self.concurrency = concurrency
        self.template_options = template_options or {}  # sent with chat requests (vLLM, llama.cpp read them)

    def generate(
        self, prompts: list[Messages], params: SamplingParams, on_batch: Callable[[int], None] | None = None
    ) -> list[str]:
        """One answer per conversation, in order."""
        return self._each(prompts, params, on_batch, "chat/completions", "messages", _chat_text)

    def complete(
        self, texts: list[str], params: SamplingParams, on_batch: Callable[[int], None] | None = None
    ) -> list[str]:
        """One continuation per raw text, in order (no chat template)."""
        return self._each(texts, params, on_batch, "completions", "prompt", _completion_text)

    def chat(self, messages: Messages, *, max_tokens: int, temperature: float, top_p: float, seed: int) -> str:
        """One reply to one conversation with these sampling settings, as the server wrote it (not stripped)."""
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "seed": seed,
            **({"chat_template_kwargs": self.template_options} if self.template_options else {}),
        }
        return self._post("chat/completions", body, messages, _chat_text)

    def with_adapter(self, adapter: Path, name: str) -> ServerGenerator:
        """A generator for ``adapter`` (a PEFT folder), loaded into a vLLM server as ``name``; name adapters
        by their contents, so a changed adapter is never served under an old name."""
        try:
            body = {"lora_name": name, "lora_path": str(adapter.resolve())}
            self.client.post("load_lora_adapter", body, lambda reply: reply, reply_json=False)
        except ServerRefused as error:
            if "already" not in error.text.lower():
                raise UserError(
                    f"the generation server {self.client.base_url} would not load the adapter {adapter}: {error}. "
                    "Generation with adapters needs vLLM started with --enable-lora and "
                    "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, seeing the run folder at the same path."
                ) from error
        return ServerGenerator(self.client, name, self.concurrency, self.template_options)

    def _each(
        self,
        prompts: list[Any],
        params: SamplingParams,
        on_batch: Callable[[int], None] | None,
        path: str,
        field: str,
        read: Callable[[dict[str, Any]], str],
    ) -> list[str]:
        def one(index: int) -> str:
            seed = request_seed(params.seed, index)
            if field == "messages":
                text = self.chat(prompts[index], max_tokens=params.max_new_tokens, temperature=params.temperature,
                                 top_p=params.top_p, seed=seed)  # fmt: skip
            else:
                body = {
                    "model": self.model,
                    field: prompts[index],
                    "temperature": params.temperature,
                    "top_p": params.top_p,
                    "max_tokens": params.max_new_tokens,
                    "seed": seed,
                }
                text = self._post(path, body, prompts[index], read)
            if on_batch:
                on_batch(1)
            return text.strip()

        return in_parallel(one, range(len(prompts)), self.concurrency)

    def _post(self, path: str, body: dict[str, Any], prompt: Any, read: Callable[[dict[str, Any]], str]) -> str:
        try:
            return self.client.post(path, body, read)
        except ServerRefused as error:
            raise _refused(self.client.base_url, path, self.model, prompt, error) from error


class GenerationRefused(UserError):
    """The generation server refused a request (4xx, e.g. a prompt longer than its context): retrying cannot
    help, so the run stops naming the request and quoting the server (``status``, ``reason``)."""

    def __init__(self, message: str, status: int, reason: str) -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


def _refused(base_url: str, path: str, model: str, prompt: Any, error: ServerRefused) -> GenerationRefused:
    return GenerationRefused(
        f"the generation server refused POST {base_url}/{path} (model {model!r}, prompt {_prompt_start(prompt)!r}) "
        f"with HTTP {error.status}: {error.message}. Retrying cannot fix a refused request: fix the request or the "
        "server (a prompt too long for its context needs a longer context or a lower max_new_tokens), then run "
        "the same command again; every finished stage is kept in the run folder.",
        error.status,
        error.message,
    )


def _prompt_start(prompt: Any, length: int = 80) -> str:
    """The first ``length`` characters of a raw text, or of a conversation's last message (its question)."""
    text = (prompt[-1].get("content") or "") if isinstance(prompt, list) and prompt else prompt
    text = " ".join(str(text).split())
    return text if len(text) <= length else text[: length - 1] + "…"


def _chat_text(reply: dict[str, Any]) -> str:
    content = reply["choices"][0]["message"]["content"]
    if content is not None and not isinstance(content, str):
        raise TypeError("the reply's content is not text")  # retried as an unreadable reply
    return content or ""


def _completion_text(reply: dict[str, Any]) -> str:
    return reply["choices"][0]["text"]


def server_generator(
    base_url: str,
    model: str,
    *,
    api_key_env: str | None = None,
    concurrency: int = 8,
    timeout: float = 600.0,
    max_retries: int = 6,
    backoff_base: float = 0.5,
) -> ServerGenerator:
    """A generator for ``model`` on the OpenAI-compatible server at ``base_url`` (e.g. ``http://host:8000/v1``);
    ``api_key_env`` names the environment variable holding the API key."""
    client = HttpClient(
        base_url, api_key_env, timeout, max_retries, concurrency, backoff_base=backoff_base, role="generation"
    )
    return ServerGenerator(client, model, concurrency)


class ServerBackend(Backend):
    """An OpenAI-compatible server (``generation.server``); each generation is served as a LoRA adapter."""

    name = "server"
    settings = "server"

    def check(self, config: ExperimentConfig) -> None:
        if config.generation.server is None:
            raise ValueError("generation.server is needed with, and only with, generation.backend: server")

    def inputs(self, generation: GenerationConfig) -> dict[str, Any]:
        server = generation.server
        where = {"server": {"model": server.model, "base_url": server.base_url}} if server else {}
        return {"backend": self.name, **where}

    def open(self, config: ExperimentConfig, base: str, dtype: str) -> ServerGenerator:
        server = config.generation.server
        assert server is not None  # check() refused a server backend without its section
        generator = server_generator(
            server.base_url,
            server.model,
            api_key_env=server.api_key_env,
            concurrency=server.concurrency,
            timeout=server.timeout,
            max_retries=server.max_retries,
        )
        generator.template_options = dict(config.generation.chat_template_kwargs)
        return generator
