"""The whole loop as a new user walks it, in a real browser, from ``./run_app.sh``'s own server process.

import a JSONL file (Data) -> point the app at the scripted LLM server (Settings) -> generate chains
(Generate) -> edit a step, regenerate the stale one, accept (Review) -> freeze a version (Datasets) ->
train the tiny model for a few steps (Train) -> evaluate the adapter (Evaluate) -> see the charts.

Every step goes through the UI; the database is only read, to check what each step really did.
Screenshots: tests/e2e/artifacts/01_import.png ... 09_charts.png.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.browser import (
    ROOT,
    app_env,
    chromium_page,
    click_until,
    expand,
    free_port,
    serve,
    shot,
    shows,
)
from tests.support.llm_server import MODEL_ID, ScriptedLLMServer
from tests.support.probes import query, scalar
from tests.support.tasks import make_tasks, pipeline_responder

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
EDITED = "Edited in the browser: the committee approved the library budget."
WAIT = 60_000  # ms for a page to show a result of a click (generous: a loaded 2-core machine is slow)
JOB_WAIT = 150_000  # ms for a background job (generate / train / eval) to finish


@pytest.fixture
def llm_server():
    with ScriptedLLMServer(responder=pipeline_responder) as server:
        yield server


@pytest.fixture
def app(tmp_path, db_path, tiny_model_dir):
    """``./run_app.sh`` on a free port with a fresh database; the data and model roots allow tmp dirs."""
    port = free_port()
    env = app_env(
        db_path,
        port,
        COI_DATA_ROOT=str(tmp_path),
        COI_MODEL_ROOT=str(Path(tiny_model_dir).parent),
        COI_REVIEWER="e2e-user",
        COI_LOG_DIR=str(tmp_path / "logs"),
    )
    # The endpoint comes from the Settings page only; loopback without a login, as a new user starts.
    for name in (
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        "COI_LLM_MODEL",
        "COI_HOST",
        "COI_PASSWORD",
        "COI_TOKEN",
        "COI_ALLOW_ANY_PATH",  # the path policy stays on: the roots above are what allows the tmp dirs
    ):
        env.pop(name, None)
    try:
        with serve([str(ROOT / "run_app.sh")], env, tmp_path / "run_app.log", timeout=180) as url:
            yield url
    finally:
        kill_job_groups(db_path)


def kill_job_groups(db_path: Path) -> None:
    """Jobs run in their own sessions: kill any still alive, so a failing test leaves no process behind."""
    from jobs.process import group_alive

    if not db_path.exists():
        return
    for (pid,) in query(db_path, "SELECT pid FROM jobs WHERE pid IS NOT NULL"):
        if group_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


# ---- page helpers ---------------------------------------------------------------------------------


def open_page(page, url: str, path: str, title: str) -> None:
    page.goto(f"{url}/{path}")
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=WAIT)


def see(page, text: str, timeout: int = WAIT) -> None:
    page.get_by_text(text).first.wait_for(timeout=timeout)


def by_key(page, key: str):
    """The element container Streamlit tags with a widget's key (class ``st-key-<key>``)."""
    return page.locator(f".st-key-{key}")


def set_field(page, label: str, value: str, *, within=None) -> None:
    """Type into a text/number input and commit it by leaving the field (Enter would submit a form)."""
    box = (within or page).get_by_label(label, exact=True).first
    box.fill(value)
    box.press("Tab")


def choose(page, label: str, option: str, attempts: int = 4) -> None:
    """Pick an option of the selectbox with this label, and check the box shows it.

    A click that lands while the page is still rendering can leave the menu closed, so the menu is
    reopened a few times before the test gives up, naming the options it did see.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    value = box.get_by_role("combobox")
    item = page.get_by_role("option", name=option).first
    for _ in range(attempts):
        box.click()
        try:
            item.wait_for(timeout=WAIT // attempts)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            continue
        item.click()
        try:  # the choice shows as the combobox input's value, not as text
            expect(value).to_have_value(re.compile(re.escape(option), re.I), timeout=5_000)
            return
        except AssertionError:
            continue
    shown = page.get_by_role("option").all_inner_texts()
    raise AssertionError(
        f"could not choose {option!r} in {label!r}: it holds {value.input_value()!r}, the menu {shown}"
    )


def timed(stage: str, fn, *args):
    """Run one stage and print how long it took (shown with ``pytest -s``)."""
    t0 = time.monotonic()
    result = fn(*args)
    print(f"stage {stage}: {time.monotonic() - t0:.1f}s")
    return result


@contextlib.contextmanager
def screenshot_on_failure(page):
    try:
        yield
    except BaseException:
        shot(page, "failure")
        raise


# ---- the stages -----------------------------------------------------------------------------------


def import_file(page, url: str, tmp_path: Path, db_path: Path) -> list[int]:
    """Upload a JSONL of tasks on the Data page; returns the new task ids."""
    before = scalar(db_path, "SELECT COALESCE(MAX(id), 0) FROM tasks")
    tasks = make_tasks(6)
    upload = tmp_path / "my_tasks.jsonl"
    fields = ("instruction", "input", "output", "category", "name")
    upload.write_text("\n".join(json.dumps({k: getattr(t, k) for k in fields}) for t in tasks) + "\n")
    open_page(page, url, "", "Data")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(upload))
    see(page, "Detected format: jsonl")
    click_until(
        by_key(page, "import_button").get_by_role("button"),
        lambda: scalar(db_path, "SELECT COUNT(*) FROM tasks WHERE id > ?", [before]),
        what="Import",
    )
    see(page, f"Imported {len(tasks)} tasks in")
    see(page, "from my_tasks.jsonl [jsonl]")
    shot(page, "01_import")
    rows = query(db_path, "SELECT id, source FROM tasks WHERE id > ? ORDER BY id", [before])
    assert len(rows) == len(tasks) and {r[1] for r in rows} == {"import:my_tasks.jsonl"}
    return [r[0] for r in rows]


def set_endpoint(page, url: str, db_path: Path, base_url: str) -> None:
    open_page(page, url, "settings", "Settings")
    set_field(page, "Base URL", base_url)
    set_field(page, "Model", MODEL_ID)
    click_until(
        page.get_by_role("button", name="Save LLM endpoint"),
        lambda: base_url in dict(query(db_path, "SELECT key, value FROM settings")).values(),
        what="Save LLM endpoint",
    )
    see(page, "Saved (the key stays in this session).")
    shot(page, "02_settings")
    settings = dict(query(db_path, "SELECT key, value FROM settings"))
    assert base_url in settings.values() and MODEL_ID in settings.values()


def generate(page, url: str, db_path: Path, task_ids: list[int], server: ScriptedLLMServer) -> int:
    """Start a 2-chain batch on the imported tasks; returns the id of a new chain."""
    before = scalar(db_path, "SELECT COALESCE(MAX(id), 0) FROM chains")
    open_page(page, url, "generate", "Generate")
    see(page, f"In use: {server.base_url}")
    form = page.locator('[data-testid="stForm"]')
    set_field(page, "Task ids (optional, e.g. 1, 2, 5-9)", f"{task_ids[0]}-{task_ids[-1]}", within=form)
    set_field(page, "Chains", "2", within=form)
    click_until(
        form.get_by_role("button", name="Start batch"),
        lambda: jobs_of(db_path, "generate"),
        what="Start batch",
    )
    done = page.get_by_text("Review the proposed chains").or_(page.get_by_text("The job failed"))
    done.first.wait_for(timeout=JOB_WAIT)
    shot(page, "03_generate")
    job = query(db_path, "SELECT id, status FROM jobs WHERE kind = 'generate' ORDER BY id DESC")[0]
    assert job[1] == "succeeded"
    new = query(db_path, "SELECT id, length, status FROM chains WHERE id > ? ORDER BY id", [before])
    assert len(new) == 2 and all(r[1] == 2 and r[2] == "proposed" for r in new), new
    assert server.request_count > 0
    steps = query(db_path, "SELECT origin FROM steps WHERE chain_id = ?", [new[0][0]])
    assert [s[0] for s in steps] == ["gold", "llm"]  # step 1 is the task's own output
    return new[0][0]


def jobs_of(db_path: Path, kind: str) -> int:
    return scalar(db_path, "SELECT COUNT(*) FROM jobs WHERE kind = ?", [kind])


def step_rows(db_path: Path, chain_id: int) -> list[tuple]:
    return query(
        db_path, "SELECT output, stale, origin FROM steps WHERE chain_id = ? ORDER BY position", [chain_id]
    )


def review(page, url: str, db_path: Path, chain_id: int) -> None:
    """Edit step 1, regenerate the stale step 2 through the LLM, apply, accept."""
    open_page(page, url, "review", "Review")
    search = page.get_by_label("Search text (or #id)")
    search.fill(f"#{chain_id}")
    search.press("Enter")
    see(page, f"Chain #{chain_id} · 2 steps · proposed")
    box = page.get_by_label("New output").first
    expand(page, "Edit step 1 output", box)
    box.fill(EDITED)
    click_until(
        page.get_by_role("button", name="Save step 1").first,
        lambda: scalar(db_path, "SELECT COUNT(*) FROM edits WHERE chain_id = ?", [chain_id]),
        what="Save step 1",
    )
    see(page, "Saved step 1. The later steps are stale until regenerated or confirmed.")
    assert [(r[0], r[1]) for r in step_rows(db_path, chain_id)][0] == (EDITED, 0)
    assert step_rows(db_path, chain_id)[1][1] == 1, "step 2 is stale after the edit"
    click_until(
        page.get_by_role("button", name="Regenerate stale steps"),
        shows(page, "Regenerated outputs: keep or discard each"),
        what="Regenerate stale steps",
    )
    shot(page, "04_review_regenerate")
    click_until(
        page.get_by_role("button", name="Apply", exact=True),
        lambda: step_rows(db_path, chain_id)[1][1] == 0,
        what="Apply",
    )
    see(page, "Saved the kept outputs.")
    out2, stale2, origin2 = step_rows(db_path, chain_id)[1]
    # The scripted LLM rewrites its input: step 2 now runs on the edited output of step 1.
    assert stale2 == 0 and "Edited in the browser" in out2 and origin2 == "llm", (out2, stale2, origin2)
    click_until(
        page.get_by_role("button", name="Accept").first,
        lambda: scalar(db_path, "SELECT status FROM chains WHERE id = ?", [chain_id]) == "accepted",
        what="Accept",
    )
    see(page, f"Chain #{chain_id}: accept.")
    shot(page, "05_review_accept")
    assert scalar(db_path, "SELECT status FROM chains WHERE id = ?", [chain_id]) == "accepted"
    authors = {r[0] for r in query(db_path, "SELECT author FROM edits WHERE chain_id = ?", [chain_id])}
    assert authors == {"e2e-user"}, authors  # the reviewer's name is on every edit of the audit trail


def freeze_version(page, url: str, db_path: Path) -> int:
    open_page(page, url, "datasets", "Dataset versions")
    accepted = scalar(db_path, "SELECT COUNT(*) FROM chains WHERE status = 'accepted'")
    see(page, f"Accepted chains now: {accepted} (0 with stale steps")
    click_until(
        page.get_by_role("button", name="Freeze a new version"),
        lambda: scalar(db_path, "SELECT COUNT(*) FROM dataset_versions"),
        what="Freeze a new version",
    )
    see(page, "Version #1 created.")
    shot(page, "06_dataset")
    vid, sizes = query(db_path, "SELECT id, split_sizes FROM dataset_versions")[0]
    sizes = json.loads(sizes)
    assert sizes.get("train", 0) > 0 and sizes.get("test", 0) > 0, sizes
    return vid


def train(page, url: str, db_path: Path, model_dir: Path) -> int:
    """The quick preset, on the tiny model, for 3 steps; waits until the page says it succeeded."""
    open_page(page, url, "train", "Train")
    choose(page, "Preset", "quick")
    # The fields are keyed by preset: wait for the quick preset's own widgets before typing.
    by_key(page, "train_quick_max_steps").wait_for(state="attached", timeout=WAIT)
    expand(page, "Adjust the config", by_key(page, "train_quick_base_model"))
    for name, value in (("base_model", str(model_dir)), ("max_steps", "3"), ("batch_size", "2")):
        field = by_key(page, f"train_quick_{name}")
        field.wait_for(timeout=WAIT)
        set_field(page, name.replace("_", " ").capitalize(), value, within=field)
    set_field(page, "Max seq len", "128", within=by_key(page, "train_quick_max_seq_len"))
    click_until(
        page.get_by_role("button", name="Start training"),
        lambda: jobs_of(db_path, "train"),
        what="Start training",
    )
    heading = page.get_by_role("heading", name="succeeded")
    heading.or_(page.get_by_role("heading", name="failed")).first.wait_for(timeout=JOB_WAIT)
    job_id, status, config, error = query(
        db_path, "SELECT id, status, config, error FROM jobs WHERE kind = 'train' ORDER BY id DESC"
    )[0]
    assert status == "succeeded", error
    config = json.loads(config)
    assert config["base_model"] == str(model_dir) and config["max_steps"] == 3, config
    see(page, f"train #{job_id}: succeeded")
    see(page, "Done. The adapter is saved.")
    assert scalar(db_path, "SELECT COUNT(*) FROM metrics WHERE job_id = ? AND name = 'loss'", [job_id]) > 0
    # The chart arrives a moment after the status heading (the fragment streams its elements): wait for it.
    page.locator('[data-testid="stPlotlyChart"]').first.locator(".main-svg").first.wait_for(timeout=WAIT)
    shot(page, "07_train")
    return job_id


def evaluate(page, url: str, db_path: Path, train_job: int) -> int:
    """An eval run of the trained adapter on 3 test chains; waits for its report on the page."""
    open_page(page, url, "evaluate", "Evaluate")
    see(page, "No finished eval run yet")
    form = page.locator('[data-testid="stForm"]')
    expand(page, "Start a new eval run", form)
    choose(page, "Adapter", f"train #{train_job}")
    set_field(page, "Max new tokens", "8", within=form)
    set_field(page, "Chains (empty: all)", "3", within=form)
    click_until(
        form.get_by_role("button", name="Start"), lambda: jobs_of(db_path, "eval"), what="Start (eval)"
    )
    see(page, "Eval run #")
    job_id = scalar(db_path, "SELECT id FROM jobs WHERE kind = 'eval' ORDER BY id DESC")
    shot(page, "08_evaluate")
    # The page refreshes itself when the run ends (no reload): the report text replaces the progress bar.
    see(page, "final-output ROUGE-L", timeout=JOB_WAIT)
    status, config, error = query(db_path, "SELECT status, config, error FROM jobs WHERE id = ?", [job_id])[0]
    assert status == "succeeded", error
    assert json.loads(config)["adapter_job"] == train_job
    n_preds = scalar(db_path, "SELECT COUNT(*) FROM predictions WHERE eval_run_id = ?", [job_id])
    assert n_preds > 0
    return job_id


def charts(page) -> None:
    from app.eval_charts import ALL_FIGURES

    plots = page.locator('[data-testid="stPlotlyChart"]')
    plots.nth(len(ALL_FIGURES) - 1).locator(".main-svg").first.wait_for(timeout=WAIT)
    assert plots.count() == len(ALL_FIGURES)
    body = page.locator("body").inner_text()
    assert "ROUGE-L by chain length" in body and "First failing step" in body
    shot(page, "09_charts")


def test_full_loop_in_the_browser(app, llm_server, tmp_path, db_path, tiny_model_dir):
    started, url = time.monotonic(), app
    with chromium_page() as page, screenshot_on_failure(page):
        task_ids = timed("import", import_file, page, url, tmp_path, db_path)
        timed("settings", set_endpoint, page, url, db_path, llm_server.base_url)
        chain_id = timed("generate", generate, page, url, db_path, task_ids, llm_server)
        timed("review", review, page, url, db_path, chain_id)
        timed("freeze", freeze_version, page, url, db_path)
        train_job = timed("train", train, page, url, db_path, tiny_model_dir)
        timed("evaluate", evaluate, page, url, db_path, train_job)
        timed("charts", charts, page)
        dialogs = page.dialogs
    assert dialogs == []
    print(f"full loop: {time.monotonic() - started:.0f}s in the browser")
