"""A summarised instruction is a proposal beside the original: checked, reviewable, never written over."""

from __future__ import annotations

import pytest

from pipeline.compose import step_instruction
from pipeline.summarize import summarize_tasks
from store.errors import CoiError
from store.flags import decode_flags
from store.models import Task
from store.tasks import (
    get_tasks,
    insert_tasks,
    propose_short_instruction,
    review_short_instruction,
    short_proposals,
)
from tests.support.llm_server import ScriptedLLMServer, prompt_text, scripted_client

SIMPLIFY = "Rewrite the paragraph in simpler words so that a ten-year-old child can understand it."
TITLE = "In this task you are given a news article. Your task is to generate a short title for it."
SHORTS = {
    SIMPLIFY: "Write a ten-year-old child's English paragraph.",
    TITLE: "Generate a short title for the article.",
}


def _summarizer(body: dict) -> str:
    last = prompt_text(body).rsplit("Instruction: ", 1)[-1].split("\nShort:", 1)[0]
    return " " + SHORTS.get(last, "Do it.") + "\n"


@pytest.fixture
def summarized(db, db_path):
    tasks = [
        Task(instruction=SIMPLIFY, input="x", output="y", name="simplify"),
        Task(instruction=TITLE, input="x", output="y", name="title"),
        Task(
            instruction="Translate the text into French.",
            short_instruction="Translate into French.",
            name="given",
        ),
    ]
    insert_tasks(db, tasks)
    with ScriptedLLMServer(responder=_summarizer) as server:
        client = scripted_client(server, db_path, model="m")
        summarize_tasks(db, client, get_tasks(db, [t.id for t in tasks]))
        yield server, client, tasks


def test_proposals_are_stored_beside_the_original_with_their_flags(db, summarized):
    _, _, (simplify, title, given) = summarized
    simplify, title, given = get_tasks(db, [simplify.id, title.id, given.id])
    assert simplify.instruction == SIMPLIFY and simplify.short_instruction == SHORTS[SIMPLIFY]
    assert simplify.short_status == "proposed" and [
        f["kind"] for f in decode_flags(simplify.short_flags)
    ] == ["drifted"]
    assert title.short_status == "proposed" and title.short_flags is None
    assert (given.short_instruction, given.short_status) == ("Translate into French.", None)  # untouched
    # A flagged proposal is not used by chain steps until a reviewer accepts it; a clean one is.
    assert step_instruction(simplify) == SIMPLIFY
    assert step_instruction(title) == SHORTS[TITLE]
    assert [t.id for t in short_proposals(db)] == [simplify.id, title.id]  # flagged first


def test_a_proposal_never_overwrites_a_short_instruction(db, summarized):
    _, _, (_, title, given) = summarized
    assert not propose_short_instruction(db, given.id, "Something else.", None)
    assert not propose_short_instruction(db, title.id, "Another title.", None)
    assert get_tasks(db, [given.id])[0].short_instruction == "Translate into French."


def test_accept_with_an_edit_and_reject_for_good(db, summarized):
    server, client, (simplify, title, _) = summarized
    review_short_instruction(db, simplify.id, "accept", text="Simplify the paragraph for a child.")
    review_short_instruction(db, title.id, "reject")
    simplify, title = get_tasks(db, [simplify.id, title.id])
    assert (simplify.short_status, simplify.short_flags) == ("accepted", None)
    assert step_instruction(simplify) == "Simplify the paragraph for a child."
    assert title.short_instruction is None and step_instruction(title) == TITLE
    sent = server.request_count
    summarize_tasks(db, client, [title])  # a rejected proposal is not asked for again
    assert server.request_count == sent and get_tasks(db, [title.id])[0].short_status == "rejected"
    assert short_proposals(db) == []
    with pytest.raises(CoiError, match="Unknown decision"):
        review_short_instruction(db, title.id, "maybe")
