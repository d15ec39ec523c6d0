"""`coi init|import|export|stats` through the installed console script, and the built-in sample data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from store.chains import chain_ids, get_chains, get_composition, status_counts
from store.errors import CoiError
from store.sample import SAMPLE_DIR, load_sample_data, read_sample_chains, read_sample_tasks
from store.tasks import category_counts, count_tasks, get_tasks

COI_BIN = Path(sys.executable).parent / "coi"


def coi(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(COI_BIN), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_import_export_round_trip_of_a_paper_file(tmp_path, reference_data):
    db = str(tmp_path / "cli.db")
    source = reference_data / "coi2_test.json"
    first = coi("import", str(source), "--db", db)
    assert first.returncode == 0, first.stderr
    records = json.loads(source.read_text("utf-8"))
    assert first.stdout.startswith(
        f"chains: {len(records)} imported, 0 skipped as duplicates, 0 rejected, 1 unclean"
    )
    again = coi("import", str(source), "--db", db)
    assert f"0 imported, {len(records)} skipped as duplicates" in again.stdout
    out = tmp_path / "out.json"
    done = coi("export", str(out), "--format", "coi", "--db", db, "--status", "all")
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text("utf-8")) == records
    stats = json.loads(coi("stats", "--db", db, "--json").stdout)
    assert stats["chains"] == len(records)
    assert stats["chains_by_length"] == {"2": len(records)}
    assert sum(stats["chains_by_status"].values()) == len(records)
    assert stats["jobs"] == {}


@pytest.mark.slow
def test_cli_import_tasks_with_mapping(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("q,gold\nSay hi.,hi\nSay bye.,bye\n", "utf-8")
    done = coi(
        "import", str(path), "--db", str(tmp_path / "x.db"), "--map", "instruction=q", "--map", "output=gold"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("tasks: 2 imported, 0 skipped as duplicates, 0 rejected")


@pytest.mark.slow
def test_cli_bad_input_exits_2_with_error_and_hint(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\nnot json\n', "utf-8")
    done = coi("import", str(path), "--db", str(tmp_path / "x.db"))
    assert done.returncode == 2
    assert "error: t.jsonl: line 2 is not valid JSON" in done.stderr
    assert "hint: " in done.stderr


@pytest.mark.slow
def test_cli_init_loads_sample_once_and_stats(tmp_path):
    db = str(tmp_path / "init.db")
    first = coi("init", "--db", db)
    assert first.returncode == 0, first.stderr
    assert "loaded" in first.stdout and len(first.stdout.strip().splitlines()) == 1
    second = coi("init", "--db", db)
    assert "already loaded" in second.stdout
    text = coi("stats", "--db", db).stdout
    assert text.startswith("tasks: ") and "by status: " in text and "by length: " in text
    empty = coi("init", "--db", str(tmp_path / "empty.db"), "--no-sample")
    assert "0 tasks, 0 chains" in empty.stdout


def test_sample_data_meets_the_brief():
    tasks = read_sample_tasks()
    chains = read_sample_chains()
    assert len(tasks) >= 80 and len({t.category for t in tasks}) >= 10
    assert len(chains) >= 30 and {len(c["tasks"]) for c in chains} >= {2, 3}
    assert all(t.instruction and t.output for t in tasks)


def test_load_sample_data_builds_chains_from_tasks_once(db):
    report = load_sample_data(db)
    assert report.tasks == count_tasks(db) >= 80 and len(category_counts(db)) >= 10
    counts = status_counts(db)
    assert counts["accepted"] >= 1 and counts["proposed"] >= 1
    assert report.chains == sum(counts.values())
    for chain in get_chains(db, chain_ids(db)):
        task_ids = [s.task_id for s in chain.steps]
        assert get_composition(db, chain.composition_id)["task_ids"] == task_ids
        tasks = get_tasks(db, task_ids)
        assert [s.instruction for s in chain.steps] == [t.short_instruction for t in tasks]
        assert all(s.origin == "gold" for s in chain.steps)
        assert all(b.input == a.output for a, b in zip(chain.steps, chain.steps[1:]))
    assert load_sample_data(db).skipped
    assert load_sample_data(db, force=True).tasks == 0


def test_inconsistent_sample_chain_is_refused_and_nothing_loads(db, tmp_path):
    (tmp_path / "tasks.jsonl").write_text((SAMPLE_DIR / "tasks.jsonl").read_text("utf-8"), "utf-8")
    bad = read_sample_chains()[:1]
    bad[0]["tasks"] = ["no_such_task", *bad[0]["tasks"][1:]]
    (tmp_path / "chains.json").write_text(json.dumps(bad), "utf-8")
    with pytest.raises(CoiError, match="Sample chain 0 is inconsistent"):
        load_sample_data(db, tmp_path)
    assert count_tasks(db) == 0


def test_task_search_uses_words_and_follows_changes(db):
    from store.models import Task
    from store.tasks import count_search_tasks, insert_tasks, search_tasks

    insert_tasks(
        db, [Task("Translate to French.", "Good morning", "Bonjour"), Task("Count words.", "a b", "2")]
    )
    assert [t.output for t in search_tasks(db, "french")] == ["Bonjour"]
    assert count_search_tasks(db, "morning translate") == (1, False)
    assert count_search_tasks(db, 'bad "query" (syntax') == (0, False)
    assert count_search_tasks(db, "") == (2, False)
    assert count_search_tasks(db, "", cap=1) == (1, True)
    db.execute("UPDATE tasks SET output = 'Salut' WHERE output = 'Bonjour'")
    assert count_search_tasks(db, "bonjour") == (0, False)
    assert [t.output for t in search_tasks(db, "salut")] == ["Salut"]


def test_cli_version_create_list_and_export(tmp_path, capsys):
    from cli import main
    from store.db import connect
    from store.versions import list_versions

    db = str(tmp_path / "v.db")
    assert main(["init", "--db", db]) == 0
    assert (
        main(
            [
                "version",
                "create",
                "--db",
                db,
                "--train-lengths",
                "2",
                "3",
                "--test-lengths",
                "2",
                "3",
                "--test-fraction",
                "0.25",
                "--name",
                "cli",
            ]
        )
        == 0
    )
    versions = list_versions(connect(db))
    assert len(versions) == 1 and versions[0].name == "cli"
    assert versions[0].split_sizes["train"] > 0 and versions[0].split_sizes["test"] > 0
    assert main(["version", "list", "--db", db]) == 0
    assert "\tcli\t" in capsys.readouterr().out
    assert main(["version", "export", str(versions[0].id), str(tmp_path / "out"), "--db", db]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written and all(name.endswith(".jsonl") for name in written)
    lines = (tmp_path / "out" / written[0]).read_text().splitlines()
    assert lines and {"instruction", "input", "output"} <= set(json.loads(lines[0]))
