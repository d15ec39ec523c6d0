"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for tests and benches.

It serves ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models`` and
``GET /health`` from a thread (stdlib ``ThreadingHTTPServer``, free port). Responses come from a queue of
scripted items (a completion text or a :class:`Fault`); when the queue is empty, from ``responder(body)``.

Example::

    with ScriptedLLMServer(latency=0.1) as server:
        server.enqueue(Fault(status=429, retry_after=1.0), "hello")
        client = OpenAI(base_url=server.base_url, api_key="x")
        ...
        assert server.request_count == 2
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_ID = "scripted-model"


@dataclass(frozen=True)
class Fault:
    """A scripted failure.

    Args:
        status: HTTP error status to answer with (kind "http", the default), e.g. 429 or 500.
        retry_after: seconds for a ``Retry-After`` header (only sent when set).
        kind: "http", "timeout" (sleep ``delay`` then answer normally; set it above the client timeout),
            "drop" (close the connection without a response), "malformed" (200 with invalid JSON),
            "empty" (200 with an empty completion text).
        delay: seconds to sleep for kind "timeout".
    """

    status: int = 500
    retry_after: float | None = None
    kind: str = "http"
    delay: float = 5.0


def default_responder(body: dict) -> str:
    """A deterministic text derived from the prompt: ``OUT(<last 20 chars>)``."""
    return "OUT(" + prompt_text(body)[-20:] + ")"


def prompt_text(body: dict) -> str:
    """The prompt of a completions body, or the concatenated message contents of a chat body."""
    if "messages" in body:
        parts = []
        for m in body.get("messages") or []:
            content = m.get("content")
            if isinstance(content, list):
                content = "".join(c.get("text", "") for c in content if isinstance(c, dict))
            parts.append(str(content or ""))
        return "\n".join(parts)
    prompt = body.get("prompt", "")
    if isinstance(prompt, list):
        prompt = "".join(map(str, prompt))
    return str(prompt)


def _count_tokens(text: str) -> int:
    # Roughly what a BPE tokenizer gives for English: about one token per 4 characters, at least 1.
    return max(1, (len(text) + 3) // 4)


class ScriptedLLMServer:
    """An OpenAI-compatible server whose answers the test scripts (context manager)."""

    def __init__(self, responder: Callable[[dict], str] | None = None, latency: float = 0.0) -> None:
        self.responder = responder or default_responder
        self.latency = latency
        self._queue: deque = deque()
        self._lock = threading.Lock()
        self._requests: list[dict] = []
        self._auth: list[str] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- public interface -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def requests(self) -> list[dict]:
        """A copy of the JSON bodies received by the completion endpoints, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """How many completion requests arrived (faults included; GET /models and /health excluded)."""
        with self._lock:
            return len(self._requests)

    @property
    def authorizations(self) -> list[str]:
        """Every ``Authorization`` header received (any path, GET or POST; '' when absent), in order."""
        with self._lock:
            return list(self._auth)

    def enqueue(self, *items: str | Fault) -> None:
        """Script the next answers, in order (a str is a completion text)."""
        with self._lock:
            self._queue.extend(items)

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def start(self) -> ScriptedLLMServer:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="scripted-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------------------
    def _record(self, body: dict) -> str | Fault:
        with self._lock:
            self._requests.append(body)
            item = self._queue.popleft() if self._queue else None
        if item is None:
            item = self.responder(body)
        return item


def _make_handler(server: ScriptedLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logs
            return

        def _send_json(self, status: int, payload: Any, headers: dict | None = None) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _note_auth(self) -> None:
            with server._lock:
                server._auth.append(self.headers.get("Authorization") or "")

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            self._note_auth()
            if self.path.rstrip("/") in ("/health", "/v1/health"):
                self._send_json(200, {"status": "ok"})
            elif self.path.rstrip("/") == "/v1/models":
                self._send_json(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]})
            else:
                self._send_json(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:  # noqa: N802
            self._note_auth()
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.rstrip("/")
            if path not in ("/v1/chat/completions", "/v1/completions"):
                self._send_json(404, {"error": {"message": "not found"}})
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send_json(400, {"error": {"message": "invalid JSON"}})
                return
            item = server._record(body)
            if server.latency:
                time.sleep(server.latency)
            self._answer(path, body, item)

        def _answer(self, path: str, body: dict, item: str | Fault) -> None:
            if isinstance(item, Fault):
                if item.kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)  # socket.SHUT_RDWR: the client sees a dropped connection
                    return
                if item.kind == "malformed":
                    self._send_json(200, b'{"id": "x", "choices": [ {"text": "unterminated')
                    return
                if item.kind == "empty":
                    self._send_json(200, _completion(path, body, ""))
                    return
                if item.kind == "timeout":
                    time.sleep(item.delay)
                    self._send_json(200, _completion(path, body, "too late"))
                    return
                headers = {"Retry-After": f"{item.retry_after:g}"} if item.retry_after is not None else {}
                message = {429: "rate limited", 500: "internal error"}.get(item.status, "error")
                self._send_json(
                    item.status,
                    {"error": {"message": message, "type": "scripted", "code": item.status}},
                    headers,
                )
                return
            self._send_json(200, _completion(path, body, str(item)))

    return Handler


def _completion(path: str, body: dict, text: str) -> dict:
    prompt_tokens = _count_tokens(prompt_text(body))
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": _count_tokens(text) if text else 0,
        "total_tokens": prompt_tokens + (_count_tokens(text) if text else 0),
    }
    common = {
        "id": "cmpl-" + uuid.uuid4().hex[:12],
        "created": int(time.time()),
        "model": body.get("model", MODEL_ID),
    }
    if path.endswith("/chat/completions"):
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        return {**common, "object": "chat.completion", "choices": [choice], "usage": usage}
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
    return {**common, "object": "text_completion", "choices": [choice], "usage": usage}


def scripted_client(server: ScriptedLLMServer, db_path, *, model: str = MODEL_ID, **config):
    """The real LLMClient against ``server``: no backoff sleeps, seeded jitter."""
    import random

    from pipeline.llm import LLMClient, LLMConfig

    cfg = LLMConfig(base_url=server.base_url, model=model, **config)
    return LLMClient(cfg, db_path, sleep=lambda s: None, rng=random.Random(0))
