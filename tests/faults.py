"""A flaky HTTP proxy for fault tests: forwards to a real server, but injects the faults a judge must survive.

Only the faults are fake: every answer that gets through comes from the real server behind it. With no
upstream, every request gets a fault (for testing how a judge gives up on a server that stays down).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

FAULTS = ("timeout", "500", "429", "truncated", "drop")


class FlakyProxy:
    """Request i gets ``faults[i]`` (``"ok"`` forwards it untouched); later requests are forwarded, or get a
    500 when there is no upstream or ``down_after`` requests have been served."""

    def __init__(self, upstream: str | None, faults: list[str], retry_after: float = 1.0, hang: float = 3.0) -> None:
        self.upstream = upstream.rstrip("/") if upstream else None
        self.retry_after, self.hang = retry_after, hang
        self.down_after: int | None = None  # after this many requests, every request gets a 500
        self.requests = 0
        self.counts: dict[str, int] = {}
        self.retry_waits: list[float] = []  # seconds between a 429 and the next request
        self._faults = iter(faults)
        self._lock = threading.Lock()
        self._last_429: float | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _next_fault(self) -> str:
        with self._lock:
            self.requests += 1
            fault = next(self._faults, "ok")
            if self.upstream is None or (self.down_after is not None and self.requests > self.down_after):
                fault = "500" if fault == "ok" else fault
            self.counts[fault] = self.counts.get(fault, 0) + 1
            now = time.monotonic()
            if self._last_429 is not None:
                self.retry_waits.append(now - self._last_429)
                self._last_429 = None
            if fault == "429":
                self._last_429 = now
            return fault

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None, length=None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body) if length is None else length))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fault = proxy._next_fault()
                if fault == "timeout":
                    time.sleep(proxy.hang)
                    self.close_connection = True
                    return
                if fault == "500":
                    return self._send(500, b'{"error": "injected server error"}')
                if fault == "429":
                    return self._send(429, b'{"error": "slow down"}', {"Retry-After": str(proxy.retry_after)})
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                reply = httpx.post(proxy.upstream + self.path.removeprefix("/v1"), content=body, timeout=120,
                                   headers={"Content-Type": "application/json"})  # fmt: skip
                if fault == "truncated":
                    cut = reply.content[: len(reply.content) // 2]
                    return self._send(200, cut)  # well-framed, but the JSON stops halfway
                self._send(reply.status_code, reply.content)

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
