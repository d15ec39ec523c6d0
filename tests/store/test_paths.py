"""The path policy: user-typed model, output and import paths stay inside the data and model roots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from eval.config import EvalConfig
from eval.run import run_eval, submit_eval
from store.errors import CoiError
from store.jobs import create_job, list_jobs
from store.paths import PROJECT_ROOT, PathPolicy, confine_data_path, confine_model_path, is_hub_id
from store.tasks import count_tasks
from tests.support.pages import page_text
from tests.support.training import make_version, tiny_config
from training import queue
from training.run import train


@pytest.fixture
def roots(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(data root, model root, a folder outside both); none inside the DB's directory (always a root)."""
    made = [tmp_path_factory.mktemp(name) for name in ("data", "models", "outside")]
    return made[0], made[1], made[2]


@pytest.fixture
def policy(roots) -> PathPolicy:
    data, models, _ = roots
    return PathPolicy(data_roots=(data.resolve(),), model_roots=(models.resolve(),))


@pytest.fixture
def confined_env(roots, monkeypatch) -> tuple[Path, Path, Path]:
    """The environment's roots are this test's data/ and models/ (the DB directory stays allowed)."""
    data, models, outside = roots
    monkeypatch.setenv("COI_DATA_ROOT", str(data))
    monkeypatch.setenv("COI_MODEL_ROOT", str(models))
    monkeypatch.setenv("COI_IMPORT_ROOT", str(data))
    return data, models, outside


# ---- the policy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["google/gemma-3-270m", "gemma-3-270m", "default", "org/name.v2-x_y"])
def test_hub_ids_and_registry_names_pass_unchanged(name, policy):
    assert is_hub_id(name)
    assert confine_model_path(name, policy) == name


@pytest.mark.parametrize("name", ["./gemma", "../x", "/abs/model", "~/model", "a/../../b", "a/b/c", r"a\b"])
def test_path_like_names_are_not_hub_ids(name):
    assert not is_hub_id(name)


def test_none_and_empty_model_mean_the_registry_default(policy):
    assert confine_model_path(None, policy) is None
    assert confine_model_path("", policy) == ""


def test_paths_inside_a_root_resolve(roots, policy):
    data, models, _ = roots
    assert confine_data_path(data / "in" / "file.jsonl", policy) == (data / "in" / "file.jsonl").resolve()
    (models / "m").mkdir()
    assert confine_model_path(str(models / "m"), policy) == str((models / "m").resolve())
    # A trained adapter lives in a data root: a model path may point there too.
    assert confine_model_path(str(data), policy) == str(data.resolve())


def test_dotdot_escape_is_refused_with_roots_and_env_var_named(roots, policy):
    data, _, outside = roots
    sneaky = data / ".." / outside.name / "secrets.jsonl"
    with pytest.raises(CoiError) as err:
        confine_data_path(sneaky, policy)
    message = str(err.value)
    assert str(sneaky) in message and str(outside.resolve() / "secrets.jsonl") in message
    assert str(data.resolve()) in message
    assert "$COI_DATA_ROOT" in err.value.hint and "COI_ALLOW_ANY_PATH=1" in err.value.hint


def test_symlink_out_of_a_root_is_refused(roots, policy):
    data, models, outside = roots
    (data / "link").symlink_to(outside, target_is_directory=True)
    (models / "model-link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(CoiError, match="outside the allowed folders"):
        confine_data_path(data / "link" / "file.jsonl", policy)
    with pytest.raises(CoiError, match=r"\$COI_MODEL_ROOT"):
        confine_model_path(str(models / "model-link"), policy)


def test_model_paths_outside_are_refused_even_when_missing(roots, policy):
    _, _, outside = roots
    for name in (str(outside), "../../etc", "/etc", "a/../../b"):
        with pytest.raises(CoiError):
            confine_model_path(name, policy)


def test_null_byte_and_empty_data_paths_are_refused(policy):
    for bad in ("", "  ", "data/x\x00y"):
        with pytest.raises(CoiError):
            confine_data_path(bad, policy)


def test_allow_any_turns_the_check_off(roots):
    _, _, outside = roots
    policy = PathPolicy(data_roots=(), model_roots=(), allow_any=True)
    assert confine_data_path(outside, policy) == outside.resolve()


def test_from_env_reads_pathsep_lists_and_opt_out(roots, monkeypatch, db_path):
    data, models, outside = roots
    monkeypatch.setenv("COI_DATA_ROOT", os.pathsep.join([str(data), str(outside)]))
    monkeypatch.setenv("COI_MODEL_ROOT", str(models))
    monkeypatch.setenv("COI_ALLOW_ANY_PATH", "1")
    policy = PathPolicy.from_env()
    assert policy.data_roots == (db_path.parent.resolve(), data.resolve(), outside.resolve())
    assert policy.model_roots == (models.resolve(),)
    assert policy.allow_any


def test_defaults_are_the_db_dir_project_data_and_model_cache(monkeypatch, db_path, tmp_path):
    for var in ("COI_DATA_ROOT", "COI_MODEL_ROOT", "COI_ALLOW_ANY_PATH", "COI_MODEL_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    policy = PathPolicy.from_env()
    assert policy.data_roots == (db_path.parent.resolve(), (PROJECT_ROOT / "data").resolve())
    cache = (tmp_path / ".cache" / "coi-studio" / "models").resolve()
    assert policy.model_roots == (cache, (PROJECT_ROOT / "models").resolve())
    assert not policy.allow_any


# ---- training: at submit and in the job -----------------------------------------------------------


def test_train_submit_refuses_output_dir_and_model_outside(db, confined_env, tiny_model_dir):
    data, _, outside = confined_env
    vid = make_version(db)
    with pytest.raises(CoiError, match="output directory"):
        queue.submit(db, tiny_config(data, vid, output_dir=str(outside / "run")))
    with pytest.raises(CoiError, match="output directory"):
        queue.submit(db, tiny_config(data, vid, output_dir="../../escaped"))  # relative to the DB dir
    with pytest.raises(CoiError, match="base model"):
        queue.submit(db, tiny_config(tiny_model_dir, vid))  # the session's model is outside these roots
    assert list_jobs(db, kind="train") == []


def test_train_job_checks_paths_again_before_loading(db, confined_env):
    _, _, outside = confined_env
    vid = make_version(db)
    # A row written behind submit's back (an old config, or a changed policy).
    cfg = tiny_config("gemma-3-270m", vid, output_dir=str(outside / "run"))
    job_id = create_job(db, "train", cfg.to_dict(), name="sneaky")
    with pytest.raises(CoiError, match="outside the allowed folders"):
        train(job_id, write=False)
    assert not (outside / "run").exists()


def test_coi_train_applies_the_policy_too(db, db_path, confined_env, capsys):
    from cli import main

    _, _, outside = confined_env
    vid = make_version(db)
    argv = ["train", "--db", str(db_path), "--version", str(vid), "--output-dir", str(outside / "run")]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "outside the allowed folders" in err and "COI_DATA_ROOT" in err
    assert list_jobs(db, kind="train") == []


# ---- eval: at submit and in the job ---------------------------------------------------------------


def test_eval_submit_refuses_model_and_adapter_outside(db, confined_env):
    _, _, outside = confined_env
    make_version(db)
    (outside / "adapter").mkdir()
    for cfg, field in (
        (EvalConfig(model=str(outside)), "base model"),
        (EvalConfig(adapter_dir=str(outside / "adapter")), "adapter"),
    ):
        with pytest.raises(CoiError, match=field):
            submit_eval(db, cfg, launch_process=False)
    assert list_jobs(db, kind="eval") == []


def test_eval_job_checks_paths_again(db, confined_env):
    _, _, outside = confined_env
    make_version(db)
    job_id = create_job(db, "eval", EvalConfig(model=str(outside)).to_dict(), name="sneaky")
    with pytest.raises(CoiError, match="base model"):
        run_eval(job_id)


# ---- the Data page's "import from a path" ---------------------------------------------------------


def test_data_page_refuses_a_typed_path_outside_the_roots(db, confined_env):
    data, _, outside = confined_env
    row = {"instruction": "Repeat it.", "input": "a", "output": "a a"}
    for folder in (data, outside):
        (folder / "tasks.jsonl").write_text(json.dumps(row) + "\n")
    at = AppTest.from_file("../../app/main.py", default_timeout=60)
    at.run()
    at.text_input[0].input(str(data / ".." / outside.name / "tasks.jsonl")).run()
    assert not at.exception, at.exception
    assert any("outside the import folder" in e.value for e in at.error)
    assert not any(b.key == "import_button" for b in at.button)
    at.text_input[0].input(str(data / "tasks.jsonl")).run()
    assert not at.error
    at.button(key="import_button").click().run()
    assert count_tasks(db) == 1


# ---- typed import paths: only importable files inside an import folder ----------------------------


@pytest.fixture
def import_folder(tmp_path, monkeypatch) -> Path:
    """An import folder beside a secrets file, a dotfile and a .git folder (what must stay unread)."""
    root = tmp_path / "imports"
    (root / ".streamlit").mkdir(parents=True)
    # Two lines each, so a csv preview of them would show a row.
    (root / ".streamlit" / "secrets.toml").write_text('# secrets\npassword = "SECRET-pw-1"\n')
    (root / ".env").write_text("# env\nOPENAI_API_KEY=SECRET-key-2\n")
    (root / "notes.txt").write_text("notes\nSECRET-notes-3\n")
    (root / "tasks.csv").write_text("instruction,input,output\nRepeat,a,a a\n")
    (tmp_path / "outside.csv").write_text("instruction,input,output\nSECRET-outside-4,a,a\n")
    (root / "link.csv").symlink_to(root / ".streamlit" / "secrets.toml")
    monkeypatch.setenv("COI_IMPORT_ROOT", str(root))
    monkeypatch.setenv("COI_ALLOW_ANY_PATH", "1")  # does not lift the import rules
    return root


def test_import_paths_only_importable_files_inside_the_import_folder(import_folder):
    from store.paths import confine_import_path

    assert confine_import_path(str(import_folder / "tasks.csv")) == (import_folder / "tasks.csv").resolve()
    for bad in (
        ".streamlit/secrets.toml",
        ".env",
        "notes.txt",
        "link.csv",
        "../outside.csv",
        "tasks.csv\x00",
    ):
        with pytest.raises(CoiError):
            confine_import_path(str(import_folder / bad))
    with pytest.raises(CoiError):
        confine_import_path(PROJECT_ROOT / ".streamlit" / "secrets.toml")


def test_default_import_folder_is_data_imports_beside_the_db(tmp_path, monkeypatch):
    from store.paths import import_roots

    monkeypatch.delenv("COI_IMPORT_ROOT")
    monkeypatch.setenv("COI_DB", str(tmp_path / "x" / "coi.db"))
    assert import_roots() == ((tmp_path / "x" / "imports").resolve(),)


@pytest.mark.parametrize(
    "name", [".streamlit/secrets.toml", ".env", "notes.txt", "link.csv", "../outside.csv"]
)
def test_the_data_page_previews_none_of_them(import_folder, name):
    at = AppTest.from_file("../../app/main.py", default_timeout=60)
    at.run()
    at.text_input(key="import_path").input(str(import_folder / name))
    at.run()
    for fmt in [s for s in at.selectbox if s.label == "Format"]:  # only if the path got that far
        fmt.set_value("csv").run()
    assert not at.exception, at.exception
    assert at.error, "the page should refuse the path"
    assert "SECRET" not in page_text(at) + str([d.value for d in at.dataframe])
    ok = AppTest.from_file("../../app/main.py", default_timeout=60)
    ok.run()
    ok.text_input(key="import_path").input(str(import_folder / "tasks.csv")).run()
    assert not ok.error and any("Repeat" in str(d.value) for d in ok.dataframe)  # the check can pass
