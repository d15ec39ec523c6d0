"""The built-in sample data: hand-written tasks and chains built from them, loaded once on first start."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from store.chains import composition_key_for_tasks, insert_chain, upsert_composition
from store.coi_format import parse_record
from store.errors import CoiError
from store.models import Chain, Step, Task
from store.settings import get_setting, set_setting
from store.tasks import insert_tasks, task_hash, task_ids_by_hash

SAMPLE_DIR = Path(__file__).parent / "sample_data"
SOURCE = "sample"
LOADED_KEY = "sample_loaded"


@dataclass
class SampleReport:
    """What loading the sample data added."""

    tasks: int = 0
    chains: int = 0
    skipped: bool = False


def read_sample_tasks(data_dir: Path = SAMPLE_DIR) -> list[Task]:
    """The sample tasks (tasks.jsonl), as Task objects with source "sample"."""
    tasks = []
    for number, line in enumerate((data_dir / "tasks.jsonl").read_text("utf-8").split("\n"), 1):
        if line.strip():
            rec = json.loads(line)
            tasks.append(
                Task(
                    name=rec["name"],
                    category=rec["category"],
                    instruction=rec["instruction"],
                    short_instruction=rec.get("short_instruction"),
                    input=rec.get("input", ""),
                    output=rec["output"],
                    source=SOURCE,
                    meta={"sample_line": number},
                )
            )
    return tasks


def read_sample_chains(data_dir: Path = SAMPLE_DIR) -> list[dict]:
    """The sample chain records (chains.json): paper records plus their ordered task names."""
    return json.loads((data_dir / "chains.json").read_text("utf-8"))


def build_sample_chain(record: dict, index: int, tasks_by_name: dict[str, Task]) -> Chain:
    """A sample record -> a chain whose steps point at their tasks; even index accepted, odd proposed."""
    parsed = parse_record(record)
    names = record["tasks"]
    missing = [n for n in names if n not in tasks_by_name]
    if parsed.issues or missing or len(names) != parsed.length:
        raise CoiError(
            f"Sample chain {index} is inconsistent: {parsed.issues or missing or 'task count'}",
            "Fix store/sample_data/chains.json.",
        )
    steps, prev = [], parsed.input
    for k, (instruction, output, name) in enumerate(zip(parsed.instructions, parsed.outputs, names), 1):
        steps.append(Step(k, instruction, prev, output, origin="gold", task_id=tasks_by_name[name].id))
        prev = output
    category = "+".join(tasks_by_name[n].category for n in names)
    status = "accepted" if index % 2 == 0 else "proposed"
    return Chain(steps=steps, status=status, source=SOURCE, category=category, meta={"format": parsed.format})


def load_sample_data(
    db: sqlite_utils.Database, data_dir: Path = SAMPLE_DIR, *, force: bool = False
) -> SampleReport:
    """Load the sample tasks and chains once (a setting remembers it); ``force`` loads again (deduped)."""
    if not force and get_setting(db, LOADED_KEY):
        return SampleReport(skipped=True)
    if not (data_dir / "tasks.jsonl").exists() or not (data_dir / "chains.json").exists():
        raise CoiError(
            f"The sample data is missing from {data_dir}", "Reinstall, or run `coi init --no-sample`."
        )
    tasks = read_sample_tasks(data_dir)
    records = read_sample_chains(data_dir)
    report = SampleReport()
    with db.atomic():
        report.tasks = insert_tasks(db, tasks).added
        ids = task_ids_by_hash(db, [task_hash(t) for t in tasks])
        for task in tasks:
            task.id = ids[task_hash(task)]
        by_name = {t.name: t for t in tasks}
        for index, record in enumerate(records):
            chain = build_sample_chain(record, index, by_name)
            task_ids = [s.task_id for s in chain.steps]
            chain.composition_id = upsert_composition(
                db,
                composition_key_for_tasks(task_ids),
                length=chain.length,
                task_ids=task_ids,
                verdict="yes",
                reason="built-in sample",
                source=SOURCE,
            )
            report.chains += insert_chain(db, chain)[1]
        set_setting(db, LOADED_KEY, "1")
    return report
