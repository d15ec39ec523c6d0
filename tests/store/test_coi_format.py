import json

import pytest

from store.coi_format import (
    chain_prompt,
    parse_output,
    parse_record,
    render_output,
    render_record,
)


def test_render_then_parse_is_identity_for_new_chains():
    outputs = ["a summary.", "un résumé.", "UN RÉSUMÉ."]
    text = render_output(outputs)
    assert (
        text
        == "Task 1 output and task 2 input: a summary.\nTask 2 output and task 3 input: un résumé.\nTask 3 output: UN RÉSUMÉ."
    )
    assert parse_output(text, 3).outputs == outputs
    assert parse_output(text, 3).clean


def test_single_step_has_no_markers():
    assert render_output(["plain"]) == "plain"
    assert parse_output("plain", 1).outputs == ["plain"]


def test_all_markers_with_odd_spacing():
    text = "Task 1 output and task 2 input: x  \nTask2 output: y"
    parsed = parse_output(text)
    assert parsed.outputs == ["x", "y"]
    assert parsed.prefix + "".join(s + o for s, o in zip(parsed.separators, parsed.outputs)) == text


def test_missing_markers_are_reported_not_guessed():
    parsed = parse_output("just one answer", 2)
    assert parsed.outputs == ["", "just one answer"]
    assert parsed.issues == ["missing step markers"]


def test_missing_middle_marker():
    parsed = parse_output("Task 1 output and task 2 input: a\nTask 3 output: c", 3)
    assert parsed.outputs == ["a", "", "c"]
    assert "missing marker for step 2" in parsed.issues


def test_extra_text_before_first_marker():
    parsed = parse_output("Sure! Task 1 output and task 2 input: a\nTask 2 output: b", 2)
    assert parsed.outputs == ["a", "b"]
    assert "extra text before the first marker" in parsed.issues


def test_markers_in_wrong_order():
    parsed = parse_output("Task 2 output: b\nTask 1 output and task 2 input: a", 2)
    assert parsed.outputs == ["a", "b"]
    assert "step markers out of order" in parsed.issues


def test_duplicate_and_out_of_range_markers():
    parsed = parse_output("Task 1 output: a Task 1 output: again Task 7 output: z", 2)
    assert parsed.outputs == ["a", ""]
    assert any("duplicate" in i for i in parsed.issues)
    assert any("unexpected step number 7" in i for i in parsed.issues)


def test_record_with_more_instruction_parts_than_steps_keeps_everything():
    record = {
        "instruction": "Do A and then B and then C",
        "input": "in",
        "output": "Task 1 output and task 2 input: a\nTask 2 output: b",
    }
    parsed = parse_record(record)
    assert parsed.issues and parsed.length == 2
    assert parsed.instructions == ["Do A", "B and then C"]
    assert render_record(parsed.instructions, parsed.input, parsed.outputs, parsed.format) == record


def test_edited_record_renders_with_its_original_separators():
    record = {
        "instruction": "A and then B",
        "input": "i",
        "output": "Task 1 output and task 2 input: a  Task 2 output: b",
    }
    parsed = parse_record(record)
    again = render_record(parsed.instructions, "i", ["a2", "b2"], parsed.format)
    assert again["output"] == "Task 1 output and task 2 input: a2  Task 2 output: b2"


def test_chain_prompt_contains_joined_instruction_and_input():
    prompt = chain_prompt(["Summarize", "translate to French"], "text")
    assert "Summarize and then translate to French" in prompt
    assert prompt.endswith("### Response:")


@pytest.mark.parametrize("name", ["coi_2.json", "coi_3.json", "coi2_test.json", "summarized_coi_2.json"])
def test_paper_records_parse_and_render_back_exactly(reference_data, name):
    records = json.loads((reference_data / name).read_text())
    for record in records:
        parsed = parse_record(record)
        assert render_record(parsed.instructions, parsed.input, parsed.outputs, parsed.format) == record
