"""Jobs get argument lists only: no shell anywhere in the project's code, and metacharacters stay literal."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from jobs import process
from store.jobs import create_job, get_job
from tests.support import ROOT
from tests.support.training import make_version, tiny_config, wait_for
from training import queue

SKIP_DIRS = {".venv", "venv", ".git", "node_modules", "__pycache__", "build", "dist"}
# Calls that hand a string to /bin/sh.
SHELL_CALLS = {
    ("os", "system"),
    ("os", "popen"),
    ("subprocess", "getoutput"),
    ("subprocess", "getstatusoutput"),
}
NASTY = [
    "; touch {m}/semicolon",
    "$(touch {m}/dollar)",
    "`touch {m}/backtick`",
    "| touch {m}/pipe",
    "&& touch {m}/and",
    "x\ntouch {m}/newline",
    "' \" ; touch {m}/quotes",
]


def shell_uses(source: str, filename: str = "<src>") -> list[str]:
    """Every shell-running call in ``source``: ``shell=`` anything but False, os.system/popen, getoutput."""
    tree = ast.parse(source, filename=filename)
    imported = {
        alias.asname or alias.name: (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "subprocess")
        for alias in node.names
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            target = (func.value.id, func.attr)
        elif isinstance(func, ast.Name):
            target = imported.get(func.id, ("", func.id))
        else:
            target = ("", "")
        if target in SHELL_CALLS:
            found.append(f"{filename}:{node.lineno} {'.'.join(target)}()")
        for kw in node.keywords:
            if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                found.append(f"{filename}:{node.lineno} shell={ast.unparse(kw.value)}")
    return found


def project_files() -> list[Path]:
    return [
        p
        for p in ROOT.rglob("*.py")
        if not SKIP_DIRS.intersection(p.relative_to(ROOT).parts) and not p.name.startswith(".")
    ]


def test_the_checker_finds_every_kind_of_shell_call():
    source = """
import os, subprocess
from os import system as run
from subprocess import getoutput
os.system("ls")
os.popen("ls")
subprocess.run("ls", shell=True)
subprocess.Popen(["ls"], shell=flag)
subprocess.getstatusoutput("ls")
getoutput("ls")
run("ls")
subprocess.run(["ls"], shell=False)
"""
    found = shell_uses(source)
    assert len(found) == 7, found


def test_no_shell_anywhere_in_the_project():
    files = project_files()
    assert any(p.name == "jobs.py" for p in files) and len(files) > 50
    found = [hit for p in files for hit in shell_uses(p.read_text(), str(p.relative_to(ROOT)))]
    assert not found, "\n".join(found)


def _nasty(markers: Path) -> list[str]:
    return [s.format(m=markers) for s in NASTY]


def test_metacharacters_in_argv_and_config_arrive_literally(db, tmp_path, monkeypatch):
    monkeypatch.setenv("COI_PASSWORD", "app-login-secret")  # the app's login secret stays in the app
    monkeypatch.setenv("password", "from-streamlit-secrets")
    markers = tmp_path / "markers"
    markers.mkdir()
    nasty = _nasty(markers)
    config = {"base_model": nasty[0], "output_dir": nasty[1], "name": nasty[2], "list": nasty}
    job_id = create_job(db, "generate", config, name=nasty[3])
    process.launch(db, job_id, "tests.support.argv_probe", extra_args=nasty)
    job = wait_for(db, job_id, lambda j: j.status in ("succeeded", "failed"), timeout=60)
    assert job.status == "succeeded", job.error
    assert job.result["argv"] == ["--job", str(job_id), *nasty]
    assert job.result["config"] == config
    assert job.result["weights_only"] == "1"  # run_as_job forces weights-only torch.load in every job
    assert job.result["login_secrets"] == []
    assert get_job(db, job_id).name == nasty[3]
    assert list(markers.iterdir()) == []


@pytest.mark.slow
def test_training_job_with_metacharacters_in_its_output_dir(db, db_path, tiny_model_dir):
    markers = db_path.parent / "markers"
    markers.mkdir()
    out_dir = db_path.parent / f"run; touch {markers}/a $(touch {markers}/b) `touch {markers}/c`"
    cfg = tiny_config(tiny_model_dir, make_version(db), output_dir=str(out_dir), max_steps=2)
    job_id = queue.submit(db, cfg, name=_nasty(markers)[0])
    job = wait_for(db, job_id, lambda j: j.status in ("succeeded", "failed", "cancelled"))
    assert job.status == "succeeded", job.error
    assert Path(job.result["adapter_dir"]) == out_dir / "adapter"
    assert (out_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert list(markers.iterdir()) == []
