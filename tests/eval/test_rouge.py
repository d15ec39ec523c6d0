"""eval.rouge gives rouge_score's ROUGE-L to the last bit, and aggregates like the paper."""

import json
import random

import numpy as np
import pytest
from rouge_score import rouge_scorer

from eval.rouge import ROUGE_L, RougeL, aggregate, rouge_l, tokenize

WORDS = (
    "the a cat cats running runs ran dying generously happiness summary summaries translate translated "
    "irony ironic 42 3.14 x2 well-known don't e-mail naïve café Straße ÉCOLE 東京 данные İstanbul Kelvin"
).split()
UNICODE = ["é", "ß", "İ", "K", "ﬁ", "Ⅻ", "²", "٣", "🙂", "\u200b", "\u00a0", "ǅ", "ΣΑΣ", "ﬀ", "ǰ"]
PUNCT = list("!?.,;:'\"()[]{}<>-_/\\|@#$%^&*~`+= \n\t")


def _random_text(rng: random.Random, n_words: int, alphabet: list[str]) -> str:
    seps = [" ", "  ", ", ", ". ", "\n", "-", "'", "/"]
    return "".join(rng.choice(alphabet) + rng.choice(seps) for _ in range(n_words))


def _pairs(reference_data) -> list[tuple[str, str]]:
    rng = random.Random(1234)
    pairs: list[tuple[str, str]] = []
    for _ in range(700):
        pairs.append(
            (_random_text(rng, rng.randint(0, 30), WORDS), _random_text(rng, rng.randint(0, 30), WORDS))
        )
    mixed = WORDS + UNICODE
    for _ in range(300):
        pairs.append(
            (_random_text(rng, rng.randint(1, 20), mixed), _random_text(rng, rng.randint(1, 20), mixed))
        )
    for _ in range(50):
        pairs += [("", _random_text(rng, 5, WORDS)), (_random_text(rng, 5, WORDS), ""), ("", "")]
    for _ in range(100):
        punct = "".join(rng.choice(PUNCT) for _ in range(rng.randint(0, 20)))
        pairs.append((punct, rng.choice([punct, _random_text(rng, 3, WORDS)])))
    for _ in range(4):  # very long texts: rouge_score's pure-Python table makes these the slow part
        pairs.append((_random_text(rng, 1200, WORDS), _random_text(rng, 900, WORDS)))
    records = json.loads((reference_data / "coi_3.json").read_text())
    for i in range(900):
        a, b = records[i], records[rng.randrange(len(records))]
        pairs.append((a["output"], b["output"] if i % 2 else a["output"][: len(a["output"]) // 2]))
    return pairs


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_same_numbers_as_rouge_score(reference_data, use_stemmer):
    pairs = _pairs(reference_data)
    assert len(pairs) >= 2000
    ref = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
    mine = RougeL(use_stemmer)
    diffs = []
    for target, prediction in pairs:
        expected = ref.score(target, prediction)["rougeL"]
        got = mine.score(target, prediction)
        diffs.append(abs(expected.fmeasure - got.fmeasure))
        assert (got.precision, got.recall) == (expected.precision, expected.recall)
    assert max(diffs) == 0.0
    assert any(d == 0.0 for d in diffs)


def test_tokenize_matches_rouge_score_tokenizer():
    from rouge_score import tokenizers

    for stem in (False, True):
        theirs = tokenizers.DefaultTokenizer(use_stemmer=stem)
        for text in ["Running dogs ran, happily!", "İstanbul Kelvin ﬁne café", "", "  ...  ", "x2 3.14"]:
            assert tokenize(text, stem) == theirs.tokenize(text)


def test_hand_derived_values():
    # LCS of "the cat sat on the mat" / "the cat on mat" is 4: P = 4/4, R = 4/6, F = 0.8.
    assert rouge_l("the cat sat on the mat", "the cat on mat") == pytest.approx(0.8)
    assert rouge_l("", "anything") == 0.0
    assert rouge_l("same words", "Same, words!") == 1.0
    assert rouge_l("running", "runs", use_stemmer=True) == 1.0
    assert rouge_l("running", "runs") == 0.0


def test_metric_declares_direction_and_aggregation():
    assert ROUGE_L.higher_is_better is True
    assert ROUGE_L.aggregation == "mean"


def test_aggregate_is_the_mean_with_a_seeded_interval():
    scores = [0.0, 0.5, 1.0, 0.25, 0.75] * 4
    agg = aggregate(scores, seed=3)
    assert agg.mean == pytest.approx(np.mean(scores))
    assert agg.low <= agg.mean <= agg.high
    assert agg.low < agg.high
    assert aggregate(scores, seed=3) == agg
    assert aggregate([0.4]).as_dict() == {"mean": 0.4, "low": 0.4, "high": 0.4, "n": 1}
    assert aggregate([]).n == 0


def test_fast_ascii_tokens_are_the_tokenizer_tokens():
    from eval.rouge import _raw_tokens

    texts = [
        "Hello, World! x2 3.14 A-B_c",
        "tab\there\nnew\x0bline\x0c",
        "İstanbul café Kelvin",
        "",
        "!!!",
        "\x7f\x00ok",
    ]
    for text in texts:
        assert [t.decode() for t in _raw_tokens(text)] == tokenize(text)
