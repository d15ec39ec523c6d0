"""Generation-time checks: unit cases, then a scripted server whose answers are copies, wordless or
in the wrong language, through the real batch runner, the store and the Review queue's risk sort."""

from __future__ import annotations

import pytest

from pipeline import checks
from pipeline.prompts import GENERATE_EXAMPLE_TEXTS
from pipeline.run import BatchConfig, run_batch
from store.chains import get_chain
from store.flags import decode_flags, flag_kinds
from store.models import Task
from store.queue import QueueFilter, queue_ids, queue_page
from store.review import save_step_output, undo_last
from store.tasks import insert_tasks
from tests.support.llm_server import ScriptedLLMServer, prompt_text, scripted_client

PARAGRAPH = "The city council voted on Monday to open two new libraries in the north of the town next year."


def test_a_copy_of_the_input_is_flagged_with_how_alike_it_is():
    (flag,) = checks.check_step("Simplify the text.", PARAGRAPH, PARAGRAPH.upper() + "  ")
    assert flag.kind == "copied_input" and "100% alike" in flag.reason
    assert checks.check_step("Simplify the text.", PARAGRAPH, "Two new libraries will open next year.") == []


def test_a_copy_of_a_prompt_example_is_flagged_but_a_short_label_is_not():
    example = next(t for t in GENERATE_EXAMPLE_TEXTS if len(t.split()) > 5)
    shots = GENERATE_EXAMPLE_TEXTS
    assert [f.kind for f in checks.check_step("Summarize.", PARAGRAPH, example, examples=shots)] == [
        "copied_example"
    ]
    assert checks.check_step("Classify the sentiment.", "I hated it.", "negative", examples=shots) == []


@pytest.mark.parametrize(
    "instruction, output, flagged",
    [
        (
            "Translate the text into French.",
            "Die Stadt eröffnet im nächsten Jahr zwei neue Bibliotheken.",
            True,
        ),
        (
            "Translate the text into French.",
            "La ville ouvrira deux nouvelles bibliothèques l'an prochain.",
            False,
        ),
        ("Translate the text into French.", "Oui merci", False),  # too short to judge: abstain
        ("Summarize the text.", "Die Stadt eröffnet im nächsten Jahr zwei neue Bibliotheken.", False),
    ],
)
def test_wrong_language_only_for_translate_steps(instruction, output, flagged):
    kinds = [f.kind for f in checks.check_step(instruction, PARAGRAPH, output)]
    assert ("wrong_language" in kinds) == flagged


def test_truncated_wordless_and_wrong_type():
    assert [f.kind for f in checks.check_step("Summarize.", PARAGRAPH, " ... ")] == ["empty"]
    assert [f.kind for f in checks.check_step("Summarize.", PARAGRAPH, "A vote.", truncated=True)] == [
        "truncated"
    ]
    (flag,) = checks.check_step(
        "Count the words.", PARAGRAPH, "18", output_kind="number", next_accepts={"text"}
    )
    assert flag.kind == "wrong_type" and "number" in flag.reason and "text" in flag.reason


def test_short_instructions_that_drift_or_do_not_shorten():
    original = "Rewrite the paragraph in simpler words so that a ten-year-old child can understand it."
    (flag,) = checks.check_short_instruction(original, "Write a ten-year-old child's English paragraph.")
    assert flag.kind == "drifted" and "'write'" in flag.reason
    assert checks.check_short_instruction(original, "Rewrite the paragraph in simpler words.") == []
    assert (
        checks.check_short_instruction("Sort the list.", "Sort the list of words.")[0].kind == "copied_input"
    )
    assert checks.check_short_instruction(original, "  ")[0].kind == "empty"


def test_similarity_is_rouge_l_f1_over_words():
    # LCS of [a b c d] and [a c d e] is 3: 2*3 / (4 + 4) = 0.75.
    assert checks.similarity("a b c d", "a c d e") == pytest.approx(0.75)
    assert checks.similarity("", "") == 1.0 and checks.similarity("a", "") == 0.0


# -- through the batch runner --------------------------------------------------------------------
def _tasks() -> list[Task]:
    def task(name, instruction, output):
        return Task(
            instruction=instruction, input=PARAGRAPH, output=output, category="", name=name, source="t"
        )

    return [
        task(
            "summarize",
            "Summarize the text in one sentence.",
            "Two libraries will open in the north next year.",
        ),
        task("translate", "Translate the text into French.", "Le conseil a voté pour deux bibliothèques."),
        task("simplify", "Rewrite the text in simpler words.", "The town will build two new libraries."),
        task("headline", "Write a headline for the text.", "Two New Libraries for the North"),
    ]


def _responder(body: dict) -> str:
    text = prompt_text(body)
    last = text.rsplit("\n\n", 1)[-1]
    if text.startswith("Rewrite each task instruction"):
        return " " + last.split("Instruction: ", 1)[-1].split("\n", 1)[0] + "\n"
    if text.startswith("Decide if the output"):
        return " yes. A text can be processed by the next task."
    step_input = last.split("\nInput:", 1)[-1].split("\nOutput:", 1)[0].strip()
    instruction = last.split("Instruction: ", 1)[-1].split("\n", 1)[0]
    if instruction.startswith("Translate"):
        return " Die Stadt eröffnet im nächsten Jahr zwei neue Bibliotheken im Norden."
    if instruction.startswith("Rewrite"):
        return " " + step_input  # a verbatim copy
    if instruction.startswith("Write a headline"):
        return " ..."
    return " A fresh sentence about what the council decided for the town."


EXPECTED = {
    "Translate the text into French.": "wrong_language",
    "Rewrite the text in simpler words.": "copied_input",
    "Write a headline for the text.": "empty",
    "Summarize the text in one sentence.": None,
}


@pytest.fixture
def generated(db, db_path):
    insert_tasks(db, _tasks())
    with ScriptedLLMServer(responder=_responder) as server:
        client = scripted_client(server, db_path, model="scripted-model")
        report = run_batch(db, client, BatchConfig(n_chains=12, lengths=(2,), seed=1))
    assert report.chains_added >= 8 and not report.errors
    return [get_chain(db, cid) for (cid,) in db.execute("SELECT id FROM chains ORDER BY id")]


def test_every_bad_step_is_flagged_with_its_reason(generated):
    seen = set()
    for chain in generated:
        step = chain.steps[1]
        kinds = [f["kind"] for f in decode_flags(step.flag)]
        expected = EXPECTED[step.instruction]
        assert kinds == ([expected] if expected else []), (step.instruction, step.output, kinds)
        seen.add(expected)
        assert decode_flags(chain.steps[0].flag) == []  # gold steps are not checked
    assert seen == set(EXPECTED.values())


def test_risk_sort_puts_flagged_chains_first_and_filters_by_kind(db, generated):
    flagged = {c.id for c in generated if c.steps[1].flag}
    clean = {c.id for c in generated} - flagged
    assert flagged and clean
    order = queue_ids(db, QueueFilter(sort="risk"))
    assert set(order[: len(flagged)]) == flagged
    assert {r.id for r in queue_page(db, QueueFilter(sort="risk"), limit=len(flagged))} == flagged
    copies = set(queue_ids(db, QueueFilter(flag_kind="copied_input")))
    assert copies == {c.id for c in generated if c.steps[1].instruction.startswith("Rewrite")}
    assert flag_kinds(db) == ["copied_input", "empty", "wrong_language"]


def test_a_reviewers_correction_clears_the_flag_and_undo_brings_it_back(db, generated):
    chain = next(c for c in generated if c.steps[1].flag)
    before = db.execute("SELECT risk FROM chains WHERE id = ?", [chain.id]).fetchone()[0]
    assert before == 3
    version = save_step_output(
        db, chain.id, 2, "A better answer.", author="ann", expected_version=chain.version
    )
    assert get_chain(db, chain.id).steps[1].flag is None
    assert db.execute("SELECT risk FROM chains WHERE id = ?", [chain.id]).fetchone()[0] == 0
    undo_last(db, chain.id, author="ann", expected_version=version)
    assert get_chain(db, chain.id).steps[1].flag == chain.steps[1].flag
    assert db.execute("SELECT risk FROM chains WHERE id = ?", [chain.id]).fetchone()[0] == before
