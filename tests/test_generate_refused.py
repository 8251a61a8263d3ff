"""A generation server that refuses a request (4xx) stops the run with one clear message naming the request;
it is not retried. A server that fails (5xx, 429) is retried.

The server here is a fake, because what is tested is how traitloop meets a server's faults; it speaks HTTP
on 127.0.0.1 and answers with the error bodies real servers send.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import tiny_config
from test_cli import invoke

from traitloop.errors import UserError
from traitloop.generate import SamplingParams, server_generator

# What vLLM answers a prompt longer than the model's context (llama.cpp and OpenAI nest it under "error").
OVERFLOW = (
    "This model's maximum context length is 2048 tokens. However, you requested 2210 tokens "
    "(2050 in the messages, 160 in the completion). Please reduce the length of the messages or completion."
)
VLLM_400 = {"object": "error", "message": OVERFLOW, "type": "BadRequestError", "param": None, "code": 400}
OPENAI_400 = {"error": {"message": OVERFLOW, "type": "invalid_request_error", "param": "messages", "code": None}}


class ScriptedServer:
    """Answers request i with ``replies[i]`` (status, JSON body); later requests get ``replies[-1]``."""

    def __init__(self, replies: list[tuple[int, dict]]) -> None:
        self.replies = replies
        self.paths: list[str] = []
        self.bodies: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server._lock:
                    server.bodies.append(body)
                    status, reply = server.replies[min(len(server.paths), len(server.replies) - 1)]
                    server.paths.append(self.path)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def scripted():
    servers: list[ScriptedServer] = []

    def start(replies):
        servers.append(ScriptedServer(replies))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


LONG_QUESTION = "Please summarise the following very long document for me, section by section: " + "lorem ipsum " * 300
PARAMS = SamplingParams(max_new_tokens=160)


@pytest.mark.parametrize("body", [VLLM_400, OPENAI_400], ids=["vllm", "openai"])
def test_a_context_overflow_names_the_request_and_quotes_the_server(scripted, body):
    server = scripted([(400, body)])
    generator = server_generator(server.url, "smollm2-135m", max_retries=4, backoff_base=0.01)
    chat = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": LONG_QUESTION}]
    with pytest.raises(UserError) as caught:
        generator.generate([chat], PARAMS)
    message = str(caught.value)
    assert f"POST {server.url}/chat/completions" in message
    assert "model 'smollm2-135m'" in message
    assert LONG_QUESTION[:70] in message and "lorem ipsum " * 20 not in message  # the prompt's start, only
    assert f"HTTP 400: {OVERFLOW}" in message
    assert server.paths == ["/v1/chat/completions"]  # refused once: not retried


def test_a_refused_raw_text_names_the_completions_endpoint(scripted):
    server = scripted([(404, {"error": {"message": "The model `base-7b` does not exist.", "code": 404}})])
    generator = server_generator(server.url, "base-7b", max_retries=4, backoff_base=0.01)
    with pytest.raises(UserError, match=r"POST \S+/v1/completions \(model 'base-7b', prompt 'Once upon a time'\) "
                                         r"with HTTP 404: The model `base-7b` does not exist\."):  # fmt: skip
        generator.complete(["Once upon a time"], PARAMS)
    assert len(server.paths) == 1


def test_server_failures_and_rate_limits_are_retried(scripted):
    answer = {"choices": [{"message": {"role": "assistant", "content": " Paris. "}}]}
    server = scripted([(500, {"error": "overloaded"}), (429, {"error": "slow down"}), (503, {}), (200, answer)])
    generator = server_generator(server.url, "m", max_retries=4, backoff_base=0.01)
    assert generator.generate([[{"role": "user", "content": "Capital of France?"}]], PARAMS) == ["Paris."]
    assert len(server.paths) == 4


def test_a_run_stops_on_a_refused_generation_with_one_clear_message(scripted, tiny_model, tmp_path):
    import yaml

    server = scripted([(400, VLLM_400)])
    config = tiny_config(
        tiny_model,
        cycles=0,
        generation={"backend": "server", "server": {"base_url": server.url, "model": "served", "concurrency": 1}},
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = invoke("run", str(path), "--output", str(tmp_path / "run"))  # asserts there is no traceback
    assert result.exit_code == 2, result.output
    assert "the generation server refused POST" in result.text and "model 'served'" in result.text
    assert "HTTP 400: This model's maximum context length is 2048 tokens." in result.text
    assert server.paths == ["/v1/chat/completions"]  # the base model's first answer, refused once
