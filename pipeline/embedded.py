"""The embedded default LLM: ``transformers serve`` on 127.0.0.1 with the local model, started and stopped here.

``transformers serve`` (transformers 5.x) serves a local model directory pinned with its positional
``FORCE_MODEL`` argument and answers ``/v1/completions`` (raw prompts, what a base model needs),
``/v1/chat/completions``, ``/v1/models`` and ``/health``. Requests must name the same model string.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from pipeline.llm import LLMConfig
from store.errors import CoiError

HEALTH_TIMEOUT_S = 300.0
EMBEDDED_CONCURRENCY = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_argv(model_path: str, port: int, device: str = "auto") -> list[str]:
    """The ``transformers serve`` command line (a list: never a shell string)."""
    exe = Path(sys.executable).with_name("transformers")
    prefix = [str(exe)] if exe.exists() else [shutil.which("transformers") or "transformers"]
    return [*prefix, "serve", model_path, "--host", "127.0.0.1", "--port", str(port), "--device", device]


class EmbeddedServer:
    """``transformers serve`` as a child process group; a context manager that waits for /health."""

    def __init__(
        self, model_path: str, *, port: int | None = None, device: str = "auto", log_path: str = ""
    ) -> None:
        self.model_path = model_path
        self.port = port or free_port()
        self.device = device
        self.log_path = log_path or os.path.join(tempfile.gettempdir(), f"coi-llm-{self.port}.log")
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = HEALTH_TIMEOUT_S) -> EmbeddedServer:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                serve_argv(self.model_path, self.port, self.device),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        self._wait_healthy(timeout_s)
        return self

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = Path(self.log_path).read_text(errors="replace")[-2000:]
                self.stop()
                raise CoiError(
                    f"The embedded LLM server exited early:\n{tail}", "See the log: " + self.log_path
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise CoiError(
            "The embedded LLM server did not become healthy in time", "See the log: " + self.log_path
        )

    def stop(self) -> None:
        """Kill the server's whole process group (SIGTERM, then SIGKILL)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def llm_endpoint(config: LLMConfig, *, model_path: str | None = None, log=print) -> Iterator[LLMConfig]:
    """Yield a config with an endpoint: ``config`` itself, or the embedded model served for the duration."""
    if not config.embedded:
        yield config
        return
    if model_path is None:
        from models.registry import resolve_model

        model_path = resolve_model(None, log=log)
    log(f"Starting the embedded LLM ({Path(model_path).name}) with transformers serve...")
    with EmbeddedServer(model_path) as server:
        log(f"Embedded LLM ready at {server.base_url}")
        # A CPU-bound local server gains nothing from many requests in flight.
        concurrency = min(config.concurrency, EMBEDDED_CONCURRENCY)
        yield replace(
            config, base_url=server.base_url, model=model_path, api="completions", concurrency=concurrency
        )
