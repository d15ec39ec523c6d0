"""API keys never reach a file: the database (with its WAL and SHM), job configs, logs, reports, exports, adapters.

One run uses two unique keys: ``OPENAI_API_KEY`` in the environment (``coi generate`` in this process) and a
key typed on the Settings page (the Generate page's background job gets it through its environment). Then a
tiny model trains and is evaluated as background jobs (they inherit the environment key), and the chains
are exported every way. Every file under the test's directory (the database's folder, where logs, runs,
eval reports, exports and even the Hugging Face cache go) is read as bytes and must not hold either key.
The scripted LLM server must have received both keys, so the test fails if no key was used at all.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import tests.support.llm_server as fake
from cli import main as coi
from eval.config import EvalConfig
from eval.run import submit_eval
from store.export import EXPORT_FORMATS
from store.jobs import get_job, list_jobs
from tests.support.tasks import insert_test_tasks, pipeline_responder
from tests.support.training import make_version, tiny_config, wait_for
from training.queue import submit

ENV_KEY = f"sk-test-env-{uuid.uuid4().hex}"
PAGE_KEY = f"sk-test-page-{uuid.uuid4().hex}"


@pytest.fixture
def auth_headers(monkeypatch) -> list[str]:
    """The scripted server, recording each completion request's Authorization header."""
    seen: list[str] = []
    make_handler = fake._make_handler

    def recording(server):
        base = make_handler(server)

        class Handler(base):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                seen.append(self.headers.get("Authorization", ""))
                super().do_POST()

        return Handler

    monkeypatch.setattr(fake, "_make_handler", recording)
    return seen


@pytest.fixture
def contained(tmp_path, monkeypatch):
    """Everything the run writes lands under tmp_path, so the grep sees every file."""
    for var, sub in (("HF_HOME", "hf"), ("HF_DATASETS_CACHE", "hf/datasets"), ("TMPDIR", "tmp")):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.delenv("COI_LOG_DIR", raising=False)  # logs beside the database
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    for var in ("OPENAI_BASE_URL", "COI_LLM_MODEL", "COI_PASSWORD", "COI_TOKEN"):
        monkeypatch.delenv(var, raising=False)


def generate_with_env_key(db_path: Path, server) -> None:
    args = ["generate", "--db", str(db_path), "--base-url", server.base_url, "--model", "scripted-model"]
    assert coi([*args, "-n", "3", "--lengths", "2", "--concurrency", "2"]) == 0


def generate_from_the_pages_with_a_typed_key(db, server) -> int:
    """Settings: endpoint + typed key; Generate: start a background batch. Returns the job id."""
    at = AppTest.from_file("../app/main.py", default_timeout=60)
    at.run()
    at.switch_page("app_pages/settings.py").run()
    at.text_input(key="set_llm_url").input(server.base_url)
    at.text_input(key="set_llm_model").input("scripted-model")
    at.text_input(key="set_llm_key").input(PAGE_KEY)
    at.button(key="set_llm_save").click().run()
    assert not at.exception, at.exception
    at.switch_page("app_pages/generate.py").run()
    at.number_input(key="gen_n").set_value(3)
    at.multiselect(key="gen_lengths").set_value([3])
    next(b for b in at.button if b.label == "Start batch").click()  # the form's submit button
    at.run()
    assert not at.exception, at.exception
    job_id = at.session_state["gen_job"]
    job = wait_for(db, job_id, lambda j: not j.active, timeout=120)
    assert job.status == "succeeded", job.error
    return job_id


def train_and_evaluate(db, model_dir: Path) -> tuple[int, int, Path]:
    vid = make_version(db, n_chains=8)
    train_id = submit(db, tiny_config(model_dir, vid, max_steps=2, save_steps=2, eval_fraction=0.0))
    train = wait_for(db, train_id, lambda j: not j.active)
    assert train.status == "succeeded", train.error
    run = submit_eval(db, EvalConfig(adapter_job=train_id, batch_size=4, max_new_tokens=4, modes=("chain",)))
    job = wait_for(db, run, lambda j: not j.active)
    assert job.status == "succeeded", job.error
    return vid, train_id, Path(job.result["report_dir"])


def export_everything(db_path: Path, vid: int, out: Path) -> None:
    base = ["--db", str(db_path)]
    for fmt in EXPORT_FORMATS:
        target = out / f"all-{fmt}" if fmt == "hf" else out / f"all.{fmt}"
        assert coi(["export", str(target), "--format", fmt, "--status", "all", "--with-meta", *base]) == 0
    assert coi(["version", "export", str(vid), str(out / "v.jsonl"), *base]) == 0
    assert coi(["version", "export", str(vid), str(out / "v-hf"), "--format", "hf", *base]) == 0


def files_holding(root: Path, secrets: list[str]) -> list[str]:
    """Every regular file under ``root`` whose bytes contain one of ``secrets``."""
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        hits += [f"{path.relative_to(root)}: {s[:12]}..." for s in secrets if s.encode() in data]
    return hits


@pytest.mark.slow
def test_no_api_key_in_any_file_after_generate_train_eval_export(
    db, db_path, tmp_path, tiny_model_dir, contained, auth_headers
):
    insert_test_tasks(db)
    with fake.ScriptedLLMServer(responder=pipeline_responder) as server:
        generate_with_env_key(db_path, server)
        page_job = generate_from_the_pages_with_a_typed_key(db, server)
    # The keys were really used: every request carried one, and both kinds reached the server.
    assert auth_headers and set(auth_headers) == {f"Bearer {ENV_KEY}", f"Bearer {PAGE_KEY}"}
    vid, train_id, report_dir = train_and_evaluate(db, tiny_model_dir)
    export_everything(db_path, vid, tmp_path / "exports")

    kinds = {j.kind for j in list_jobs(db)}
    assert {"generate", "train", "eval"} <= kinds
    assert (tmp_path / "logs" / f"job-{page_job}.log").is_file()
    assert Path(get_job(db, train_id).result["adapter_dir"]).is_relative_to(tmp_path)
    assert report_dir.is_relative_to(tmp_path) and any(report_dir.iterdir())
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "coi.db-wal" for p in written)  # the WAL is grepped while it still holds pages
    assert files_holding(tmp_path, [ENV_KEY, PAGE_KEY]) == []
    db.conn.close()
    assert files_holding(tmp_path, [ENV_KEY, PAGE_KEY]) == []


def test_the_grep_finds_a_key_that_was_written(tmp_path):
    """The check above can fail: a key in a SQLite WAL page or a log line is found."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "job-1.log").write_text(f"Authorization: Bearer {ENV_KEY}\n")
    assert files_holding(tmp_path, [ENV_KEY, PAGE_KEY]) == [f"logs/job-1.log: {ENV_KEY[:12]}..."]


def test_a_key_in_streamlit_secrets_reaches_the_endpoint_and_no_file(db, tmp_path, monkeypatch, auth_headers):
    """``OPENAI_API_KEY`` in secrets.toml works like the environment variable (Streamlit exports root keys)."""
    key = f"sk-test-secrets-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", "placeholder")
    monkeypatch.delenv("OPENAI_API_KEY")  # recorded, so Streamlit's export of the secret is undone after
    with fake.ScriptedLLMServer(responder=lambda body: "OK") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        at = AppTest.from_file("../app/main.py", default_timeout=60)
        at.secrets["OPENAI_API_KEY"] = key
        at.run()
        at.switch_page("app_pages/generate.py").run()
        at.button(key="gen_test_connection").click().run()
        assert not at.exception, at.exception
    assert any("It answered: 'OK'" in m.value for m in at.success)
    assert auth_headers == [f"Bearer {key}"]
    assert files_holding(tmp_path, [key]) == []


@pytest.fixture
def echoing_server(monkeypatch):
    """A server that refuses every completion with a 401 whose message echoes the key it got (some proxies do)."""
    make_handler = fake._make_handler

    def echoing(server):
        class Handler(make_handler(server)):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                got = self.headers.get("Authorization", "")
                self._send_json(401, {"error": {"message": f"Incorrect API key provided: {got}"}})

        return Handler

    monkeypatch.setattr(fake, "_make_handler", echoing)


def test_a_key_echoed_in_an_error_is_redacted(db, db_path, tmp_path, contained, echoing_server, capsys):
    insert_test_tasks(db)
    with fake.ScriptedLLMServer() as server:
        args = ["generate", "--db", str(db_path), "--base-url", server.base_url, "--model", "m", "-n", "2"]
        assert coi(args) != 0  # the preflight request is refused: the job fails before the batch
    out = capsys.readouterr()
    errors = [r[0] for r in db.execute("SELECT error FROM jobs WHERE error IS NOT NULL")]
    errors += [r[0] for r in db.execute("SELECT error FROM llm_calls WHERE error IS NOT NULL")]
    assert errors and all("Incorrect API key provided" in e for e in errors)
    assert "[API key]" in errors[0]  # the echoed key was there, and was replaced
    assert ENV_KEY not in out.out + out.err
    assert files_holding(tmp_path, [ENV_KEY]) == []
