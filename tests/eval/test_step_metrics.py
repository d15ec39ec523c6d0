"""Step-type metrics with hand-derived values, and the step-type inference on the sample data."""

import json
from collections import Counter

import pytest

from eval import step_metrics as sm
from eval.rouge import rouge_l
from tests.support import ROOT


@pytest.mark.parametrize(
    "ref, pred, expected",
    [
        ("Non-threat", "non-threat.", 1.0),
        ("(B)", "B", 1.0),  # punctuation folded away
        ("Ｙｅｓ", "yes", 1.0),  # full-width forms under NFKC
        ("Straße", "STRASSE", 1.0),  # casefold, not lower
        ("True", "False", 0.0),
        ("", "", 1.0),
        ("yes", "", 0.0),
    ],
)
def test_exact_match(ref, pred, expected):
    assert sm.exact_match(ref, pred) == expected


@pytest.mark.parametrize(
    "ref, pred, expected",
    [
        ("3", "There are 3 sentences.", 1.0),
        ("3", "10 sentences", 0.0),  # ROUGE-L gives this 0: but "3 sentences" vs "10 sentences" gets 0.5
        ("1,000", "1000", 1.0),
        ("2.5", "2.50", 1.0),
        ("6", "six", 1.0),
        ("٣", "3", 1.0),  # an Arabic-Indic digit is a digit too
        ("6", "", 0.0),
        ("none", "None", 1.0),  # no number in the reference: exact match
    ],
)
def test_numeric_match(ref, pred, expected):
    assert sm.numeric_match(ref, pred) == expected


def test_rouge_gives_a_wrong_count_partial_credit_that_numeric_match_does_not():
    assert rouge_l("3 sentences", "10 sentences") == pytest.approx(0.5)
    assert sm.numeric_match("3 sentences", "10 sentences") == 0.0


def test_list_f1_ignores_order_and_bullets():
    assert sm.list_items("- Apple\n- banana\n\n* Cherry.") == ["apple", "banana", "cherry"]
    assert sm.list_f1("apple, banana, cherry", "1. cherry\n2. apple\n3. banana") == 1.0
    # 2 hits of 3 predicted and 4 reference items: P=2/3, R=1/2, F1=4/7.
    assert sm.list_f1("a; b; c; d", "a; b; x") == pytest.approx(4 / 7)
    assert sm.list_f1("a, b", "") == 0.0


def test_order_match_penalises_a_shuffle():
    assert sm.order_match("apple, banana, cherry", "apple\nbanana\ncherry") == 1.0
    # Same items (F1 1), LCS of [c, a, b] with [a, b, c] is 2 of 3.
    assert sm.order_match("a, b, c", "c, a, b") == pytest.approx(2 / 3)
    assert sm.order_match("a, b, c", "") == 0.0


@pytest.mark.parametrize(
    "ref, pred, expected",
    [
        ('{"name": "Ana", "age": 31}', '{"age": 31, "name": "ana"}', 1.0),  # key order, value case
        ('{"name": "Ana", "age": 31}', '```json\n{"name": "Ana", "age": 31}\n```', 1.0),
        ('{"name": "Ana", "age": 31}', '{"name": "Ana", "age": 32}', 0.5),  # 1 of 2 leaves both ways
        ('{"name": "Ana", "age": 31}', '{"name": "Ana", "age": 31', 0.0),  # broken
        ('{"name": "Ana"}', "", 0.0),
        ('{"a": [1, 2]}', '{"a": [2, 1]}', 0.0),  # list positions are part of the key path
        ("not json", '{"ok": true}', 1.0),  # only validity can be judged
        ('{"x": "ü"}', '{"x": "\\u00fc"}', 1.0),
    ],
)
def test_json_match(ref, pred, expected):
    assert sm.json_match(ref, pred) == pytest.approx(expected)


def test_deeply_nested_json_is_invalid_not_a_crash():
    assert sm.json_match('{"a": 1}', "[" * 100_000 + "]" * 100_000) == 0.0


def test_a_copy_of_the_input_scores_zero_unless_the_reference_is_one():
    source = "The cat sat on the mat."
    assert sm.score_step(sm.TEXT, "A cat was sitting on the mat.", source, source) == 0.0
    assert rouge_l("A cat was sitting on the mat.", source) > 0.5
    assert sm.score_step(sm.TEXT, source, source, source) == 1.0
    assert sm.score_step(sm.TEXT, "A cat sat.", "A cat sat.", source) == 1.0


def test_text_steps_keep_rouge_l_bit_identical():
    ref, pred = "the quick brown fox jumps", "a quick brown dog jumps high"
    assert sm.score_step(sm.TEXT, ref, pred) == rouge_l(ref, pred)


def test_text_in_a_script_rouge_score_cannot_tokenize_is_still_scored():
    panjabi = "ਇੱਕ ਸ਼ੁੱਕਰਵਾਰ ਰਾਤ ਮੈਂ ਬਾਹਰ ਚੱਲਦਾ ਸੀ"
    assert rouge_l(panjabi, panjabi) == 0.0  # rouge-score keeps only [a-z0-9] tokens
    assert sm.score_step(sm.TEXT, panjabi, panjabi) == 1.0
    # 3 of its 7 words, in order: P = 3/3, R = 3/7, F1 = 2·(3/7)/(10/7) = 0.6.
    assert sm.score_step(sm.TEXT, panjabi, "ਇੱਕ ਰਾਤ ਬਾਹਰ") == pytest.approx(0.6)
    assert sm.score_step(sm.TEXT, "漢字", "") == 0.0


def test_thresholds_per_type_and_overridden():
    assert sm.fails(sm.LABEL, 0.0) and not sm.fails(sm.LABEL, 1.0)
    assert sm.fails(sm.TEXT, 0.29) and not sm.fails(sm.TEXT, 0.3)
    assert not sm.fails(sm.TEXT, 0.29, {sm.TEXT: 0.2})


# Golden: the sample data's 13 categories, each with the type it must get.
GOLDEN_CATEGORY_TYPES = {
    "count": "number",
    "classify": "label",
    "extract": "list",
    "bullet_list": "text",
    "sort": "order",
    "format_json": "json",
    "translate": "text",
    "summarize": "text",
    "rewrite": "text",
    "simplify": "text",
    "answer_question": "text",
    "correct_grammar": "text",
    "title": "text",
}


def _sample_tasks() -> list[dict]:
    path = ROOT / "store" / "sample_data" / "tasks.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_sample_category_has_its_golden_type():
    tasks = _sample_tasks()
    assert set(GOLDEN_CATEGORY_TYPES) == {t["category"] for t in tasks}
    for task in tasks:
        assert (
            sm.infer_step_type(task["instruction"], task["category"])
            == GOLDEN_CATEGORY_TYPES[task["category"]]
        )


def test_the_instruction_text_alone_finds_the_type_of_most_sample_tasks():
    # The paper's chains carry no category: the wording alone must find the same type.
    tasks = _sample_tasks()
    agree = Counter(
        sm.infer_step_type(t["instruction"]) == GOLDEN_CATEGORY_TYPES[t["category"]] for t in tasks
    )
    assert agree[True] == len(tasks), agree


@pytest.mark.parametrize(
    "instruction, expected",
    [
        ("Count the number of words in the sentence that contain the letter 'e'.", "number"),
        ("Classify the consequence of the action as either a threat or non-threat.", "label"),
        ("Determine if the given SQL statement is correct. Output 1 if correct, 0 otherwise.", "label"),
        ("Sort the words in alphabetical order.", "order"),
        ("Return the record as a JSON object with keys name and age.", "json"),
        ("Extract all the person names from the paragraph.", "list"),
        ("Generate a headline for a given text", "text"),
    ],
)
def test_instruction_wording_from_the_papers_test_file(instruction, expected):
    assert sm.infer_step_type(instruction) == expected


def test_overrides_win_and_unknown_types_are_refused():
    assert sm.resolve_step_type("Summarize it.", "summarize", {"summarize": "label"}) == "label"
    assert sm.resolve_step_type("Summarize it.", "", {"t1": "json"}, task_name="t1") == "json"
    with pytest.raises(ValueError, match="unknown step type"):
        sm.resolve_step_type("x", "", {"x": "bogus"}, task_name="x")
