"""Shared helpers for the pipeline tests and bench: sample tasks and a prompt-aware scripted responder."""

from __future__ import annotations

import re

from store.models import Task
from store.tasks import insert_tasks
from tests.support.llm_server import prompt_text


def make_tasks(n: int = 8) -> list[Task]:
    """``n`` text-to-text tasks (any can follow any) plus one label task and one task without input."""
    tasks = [
        Task(
            instruction=f"In this task you rewrite the given paragraph in style number {i}, keeping its meaning.",
            input=f"The committee met on day {i} to discuss the budget for the new library building.",
            output=f"On day {i} the committee discussed the new library's budget in style {i}.",
            category=f"rewriting-{i % 3}",
            name=f"task{i}",
            source="test",
        )
        for i in range(n)
    ]
    tasks.append(
        Task(
            instruction="Classify the sentiment of the sentence as positive or negative.",
            input="I loved every minute of the show.",
            output="positive",
            category="sentiment",
            name="label",
            source="test",
        )
    )
    tasks.append(
        Task(instruction="Write a haiku about autumn.", input="", output="Leaves fall...", name="noinput")
    )
    return tasks


def insert_test_tasks(db, n: int = 8) -> list[Task]:
    tasks = make_tasks(n)
    insert_tasks(db, tasks)
    return tasks


def pipeline_responder(body: dict) -> str:
    """Answers the three prompt kinds sensibly and deterministically."""
    text = prompt_text(body)
    last = text.rsplit("\n\n", 1)[-1]
    if text.startswith("Rewrite each task instruction"):
        number = re.search(r"style number (\d+)", last)
        return f" Rewrite the paragraph in style {number.group(1) if number else 'x'}.\n"
    if text.startswith("Decide if the output"):
        return " yes. The output is a paragraph, which the next task can take."
    if text.startswith("Follow the instruction"):
        inp = last.split("\nInput:", 1)[-1].split("\nOutput:", 1)[0].strip()
        return " Rewritten: " + inp[:60]
    return "OK"
