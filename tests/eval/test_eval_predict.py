"""Batched generation and the three prediction modes, on the tiny model and on a scripted generator."""

import pytest

from eval.analysis import error_kind
from eval.predict import (
    Generation,
    Generator,
    predict_chain,
    predict_stepwise_gold,
    predict_stepwise_own,
    units,
)
from eval.rouge import RougeL
from store.coi_format import chain_prompt
from store.versions import version_records
from tests.support.eval_runs import make_version


class ScriptedGenerator:
    """Answers prompts from a function, recording every batch it was given."""

    def __init__(self, answer):
        self.answer = answer
        self.calls: list[list[str]] = []

    def generate(self, prompts, on_batch=None):
        self.calls.append(list(prompts))
        if on_batch:
            on_batch(len(prompts), "done")
        return [Generation(self.answer(p), 3, False) for p in prompts]


def _records(db):
    return version_records(db, make_version(db), "test")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from models.registry import load_causal_lm

    model, tok = load_causal_lm(str(tiny_model_dir))
    return model.eval(), tok


def test_left_padded_batches_give_the_one_at_a_time_answers(tiny):
    model, tok = tiny
    prompts = [
        chain_prompt(["Count the words"], "the cat"),
        "x",
        chain_prompt(["Sort", "Extract"], "a long input " * 5),
    ]
    batched = Generator(model, tok, batch_size=3, max_new_tokens=6).generate(prompts)
    single = Generator(model, tok, batch_size=1, max_new_tokens=6).generate(prompts)
    assert tok.padding_side == "left"
    assert [g.text for g in batched] == [g.text for g in single]
    assert all(g.n_tokens <= 6 for g in batched)
    assert all(g.hit_limit == (g.n_tokens == 6) for g in batched)


def test_modes_on_the_tiny_model(db, tiny):
    model, tok = tiny
    records = _records(db)
    gen = Generator(model, tok, batch_size=4, max_new_tokens=5)
    scorer = RougeL()
    done = []
    for fn in (predict_chain, predict_stepwise_gold, predict_stepwise_own):
        rows = fn(gen, records, scorer, lambda n, msg: done.append(n))
        assert len(rows) == sum(r["length"] for r in records)
        assert all(r.rougeL == scorer.fmeasure(r.reference, r.prediction) for r in rows)
    assert sum(done) == sum(units(records, m) for m in ("chain", "stepwise-gold", "stepwise-own"))


def test_stepwise_gold_feeds_gold_outputs_and_own_feeds_own(db):
    records = _records(db)
    longest = max(records, key=lambda r: r["length"])
    assert longest["length"] >= 2
    gen = ScriptedGenerator(lambda p: "OWN:" + p[-12:])
    gold = predict_stepwise_gold(gen, [longest], RougeL())
    assert [g.meta["input"] for g in gold] == [longest["input"], *longest["outputs"][:-1]]
    own = predict_stepwise_own(gen, [longest], RougeL())
    assert [g.meta["input"] for g in own] == [longest["input"], *[o.prediction for o in own[:-1]]]
    # stepwise-own batches across chains one step at a time: one call per step position.
    gen.calls.clear()
    predict_stepwise_own(gen, records, RougeL())
    assert len(gen.calls) == max(r["length"] for r in records)


def test_chain_mode_splits_with_the_shared_parser(db):
    record = {
        "chain_id": 7,
        "length": 2,
        "input": "in",
        "instructions": ["A", "B"],
        "outputs": ["alpha", "beta"],
    }
    good = ScriptedGenerator(lambda p: "Task 1 output and task 2 input: alpha\nTask 2 output: beta")
    rows = predict_chain(good, [record], RougeL())
    assert [(r.position, r.prediction, r.rougeL) for r in rows] == [(1, "alpha", 1.0), (2, "beta", 1.0)]
    assert rows[0].prompt == chain_prompt(["A", "B"], "in") and rows[0].meta["issues"] == []
    assert rows[1].meta["input"] == "alpha"


THREE_STEPS = {
    "chain_id": 1,
    "length": 3,
    "input": "x",
    "instructions": ["A", "B", "C"],
    "outputs": ["a", "b", "c"],
}


def test_chain_mode_parsing_cases():
    record = dict(THREE_STEPS)

    def run(text):
        return predict_chain(ScriptedGenerator(lambda p: text), [record], RougeL())

    missing = run("just c")
    assert [r.prediction for r in missing] == ["", "", "just c"]
    assert [error_kind(r) for r in missing[:2]] == ["missing step markers"] * 2
    extra = run(
        "Sure! Task 1 output and task 2 input: a\nTask 2 output and task 3 input: b\nTask 3 output: c"
    )
    assert [r.prediction for r in extra] == ["a", "b", "c"] and extra[0].meta["issues"]
    wrong_order = run("Task 2 output and task 3 input: b Task 1 output and task 2 input: a Task 3 output: c")
    assert [r.prediction for r in wrong_order] == ["a", "b", "c"]
    assert "step markers out of order" in wrong_order[0].meta["issues"]
    middle = run("Task 1 output and task 2 input: a\nTask 3 output: c")
    assert [r.prediction for r in middle] == ["a", "", "c"]
    assert error_kind(middle[1]) == "missing step markers"


def test_truncation_marks_the_step_where_text_ends():
    record = dict(THREE_STEPS)
    gen = ScriptedGenerator(lambda p: "")
    gen.generate = lambda prompts, on_batch=None: [
        Generation("Task 1 output and task 2 input: a\nTask 2 output and task 3 input: b b", 9, True)
    ]
    rows = predict_chain(gen, [record], RougeL())
    assert [r.meta["hit_limit"] for r in rows] == [False, True, False]
    assert error_kind(rows[1]) == "truncated" and error_kind(rows[2]) == "missing step markers"


def test_fast_cpu_linears_compute_the_same_logits(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from eval.predict import use_fast_cpu_linears

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = torch.tensor([[5, 9, 12, 40, 7], [3, 3, 8, 21, 30]])
    with torch.inference_mode():
        before = model(input_ids=ids).logits
        use_fast_cpu_linears(model)
        use_fast_cpu_linears(model)  # idempotent
        after = model(input_ids=ids).logits
    assert model._coi_fast_linears
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_stepwise_own_reuses_stepwise_golds_step_one_answers(db, tiny):
    """Step 1 has the same prompt in both stepwise modes: it is generated once, and both score that text."""
    model, tok = tiny
    records = _records(db)
    gen = Generator(model, tok, batch_size=4, max_new_tokens=5)
    scorer = RougeL()
    gold = predict_stepwise_gold(gen, records, scorer)
    generated = gen.stats["prompts"] - gen.stats["cached"]
    own = predict_stepwise_own(gen, records, scorer)
    first = lambda rows: {r.chain_id: (r.prompt, r.prediction) for r in rows if r.position == 1}  # noqa: E731
    assert first(own) == first(gold)
    assert gen.stats["cached"] >= len(records)  # every step 1 of stepwise-own came from the cache
    assert gen.stats["prompts"] - gen.stats["cached"] == generated + sum(r["length"] - 1 for r in records)
