"""The real embedded path: `transformers serve` with the tiny random model, one generate call, stop."""

from __future__ import annotations

import os

import pytest

from jobs.process import group_alive
from pipeline.embedded import EmbeddedServer, llm_endpoint, serve_argv
from pipeline.generate import generate_output
from pipeline.llm import LLMClient, LLMConfig


def test_serve_argv_is_a_list_on_localhost():
    argv = serve_argv("/models/x", 1234)
    assert argv[1:3] == ["serve", "/models/x"] and argv[argv.index("--host") + 1] == "127.0.0.1"


def test_llm_endpoint_passes_a_configured_endpoint_through():
    cfg = LLMConfig(base_url="http://127.0.0.1:9/v1", model="m")
    with llm_endpoint(cfg) as live:
        assert live is cfg


@pytest.mark.slow
def test_embedded_server_generates_through_client(tiny_model_dir, db_path):
    """Start transformers serve on the tiny model, one generate call through LLMClient, stop the group."""
    with EmbeddedServer(str(tiny_model_dir), device="cpu") as server:
        pid = server.proc.pid
        assert server.base_url.startswith("http://127.0.0.1:")
        live = LLMConfig(base_url=server.base_url, model=str(tiny_model_dir), max_tokens=8, max_retries=1)
        client = LLMClient(live, db_path)
        res = generate_output(client, "Count the words.", "the cat sat on the mat")
        # Random weights give random text, but a real completion came back through the SDK.
        assert res.error is None, res.error
        assert res.llm_call_id is not None and client.totals.requests >= 1 and client.totals.prompt_tokens > 0
        assert group_alive(pid)
    assert not group_alive(pid) and os.path.exists(server.log_path)
