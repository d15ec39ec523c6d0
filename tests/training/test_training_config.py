"""TrainConfig (one dataclass -> form, flags, saved config) and the data side of training."""

from __future__ import annotations

import argparse

import pytest

from store.coi_format import chain_prompt, render_output
from store.errors import CoiError
from training import config as tc
from training.data import IGNORE, PadCollator, encode_record, fit_lengths, padding_waste, split_eval


def test_every_field_has_help_and_a_form_kind():
    specs = tc.form_fields()
    assert [s.name for s in specs][:2] == ["base_model", "dataset_version"]
    assert all(s.help for s in specs)
    kinds = {s.name: s.kind for s in specs}
    assert kinds["train_lengths"] == "int_list" and kinds["target_modules"] == "str_list"
    assert kinds["precision"] == "choice" and kinds["gradient_checkpointing"] == "bool"
    assert kinds["dataset_version"] == "optional_int"


def test_cli_flags_come_from_the_dataclass_and_override_a_preset():
    parser = argparse.ArgumentParser()
    tc.add_arguments(parser)
    args = parser.parse_args(["--lora-r", "16", "--train-lengths", "1,2", "--gradient-checkpointing"])
    cfg = tc.preset("paper", **tc.overrides_from_args(args))
    assert cfg.lora_r == 16 and cfg.train_lengths == (1, 2) and cfg.gradient_checkpointing is True
    assert (cfg.epochs, cfg.batch_size, cfg.learning_rate) == (3.0, 4, 2e-5)  # the paper's settings
    assert cfg.lora_alpha == tc.TrainConfig().lora_alpha  # not given: the default stays


def test_saved_config_round_trips_through_json_types():
    cfg = tc.TrainConfig(train_lengths=(2, 3), dataset_version=7, max_steps=10)
    saved = cfg.to_dict()
    assert saved["train_lengths"] == [2, 3]
    assert tc.TrainConfig.from_dict({**saved, "unknown_old_field": 1}) == cfg


@pytest.mark.parametrize(
    "change",
    [
        {"lora_r": 0},
        {"precision": "fp8"},
        {"eval_fraction": 1.5},
        {"batch_size": "many"},
        {"num_processes": -1},
        {"num_gpus": 2, "num_processes": 3},
    ],
)
def test_bad_values_raise_a_coi_error_naming_the_field(change):
    with pytest.raises(CoiError) as err:
        tc.TrainConfig().replace(**change)
    assert list(change)[-1] in err.value.message


def test_processes_are_num_processes_else_one_per_gpu_else_one():
    assert tc.TrainConfig().processes == 1
    assert tc.TrainConfig(num_processes=2).processes == 2  # on the CPU
    assert tc.TrainConfig(num_gpus=4).processes == 4
    assert tc.TrainConfig(num_gpus=4, num_processes=4).processes == 4


def test_unknown_preset_is_a_coi_error():
    with pytest.raises(CoiError):
        tc.preset("nope")


def test_config_diff_lists_only_changed_fields():
    a, b = tc.TrainConfig().to_dict(), tc.preset("paper").to_dict()
    changed = {k for k in a if a[k] != b[k]}
    assert changed == {"method", "learning_rate", "grad_accum", "eval_fraction"}  # epochs etc. agree
    assert {k for k, _, _ in tc.config_diff(a, b)} == changed


def test_output_dir_defaults_beside_the_database(db_path):
    assert tc.resolve_output_dir(tc.TrainConfig(), 5) == db_path.parent / "runs" / "job-5"
    assert tc.resolve_output_dir(tc.TrainConfig(output_dir="/x/y"), 5).as_posix() == "/x/y"


# ---- data -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


RECORD = {
    "instructions": ["Summarize the text", "translate the summary to French"],
    "input": "the cat sat on the mat",
    "outputs": ["the cat sat", "le chat"],
}


def test_example_is_the_shared_format_with_loss_only_on_the_response(tokenizer):
    ex = encode_record(RECORD, tokenizer, 512)
    prompt = chain_prompt(RECORD["instructions"], RECORD["input"])
    response = render_output(RECORD["outputs"])
    assert tokenizer.decode(ex["input_ids"][: ex["n_prompt"]]) == prompt
    response_ids = [t for t in ex["labels"] if t != IGNORE]
    assert tokenizer.decode(response_ids, skip_special_tokens=True) == response
    assert response_ids[-1] == tokenizer.eos_token_id
    assert ex["labels"][: ex["n_prompt"]] == [IGNORE] * ex["n_prompt"]


def test_truncation_never_cuts_the_whole_response(tokenizer):
    long = {**RECORD, "input": "word " * 400}
    ex = encode_record(long, tokenizer, 64)
    assert len(ex["input_ids"]) == 64
    assert sum(t != IGNORE for t in ex["labels"]) >= min(
        32, len(tokenizer(render_output(RECORD["outputs"]))["input_ids"])
    )
    assert fit_lengths(10, 500, 100) == (10, 90)  # a short prompt stays whole, the response fills the rest
    assert fit_lengths(300, 500, 100) == (50, 50)  # both long: the response keeps half
    assert fit_lengths(500, 10, 100) == (90, 10)
    assert fit_lengths(10, 10, 100) == (10, 10)


def test_collator_pads_to_the_longest_with_ignored_labels():
    feats = [{"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]}, {"input_ids": [5], "labels": [5]}]
    batch = PadCollator(pad_token_id=0)(feats)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7], [5, IGNORE, IGNORE]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert PadCollator(0, pad_to_multiple_of=8)(feats)["input_ids"].shape == (2, 8)
    assert PadCollator(0, loss_on_all_tokens=True)(feats)["labels"].tolist()[0] == [5, 6, 7]


def test_length_grouping_cuts_padding_waste():
    import random

    from transformers.trainer_pt_utils import LengthGroupedSampler

    lengths = [random.Random(i).randint(20, 400) for i in range(200)]
    order = list(LengthGroupedSampler(4, lengths=lengths))
    grouped = [[lengths[i] for i in order[k : k + 4]] for k in range(0, 200, 4)]
    shuffled = [lengths[k : k + 4] for k in range(0, 200, 4)]
    assert padding_waste(grouped) < 0.1 < padding_waste(shuffled)


def test_eval_split_holds_out_a_fraction_deterministically():
    train, held = split_eval(list(range(20)), 0.1, seed=1)
    assert len(held) == 2 and sorted(train + held) == list(range(20))
    assert split_eval(list(range(20)), 0.1, seed=1) == (train, held)
    assert split_eval([1], 0.5, 0) == ([1], [])


def test_response_only_loss_equals_the_models_own_loss(tiny_model_dir, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    from training.run import response_only_loss

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    feats = [encode_record(RECORD, tokenizer, 512), encode_record({**RECORD, "input": "x"}, tokenizer, 512)]
    batch = PadCollator(tokenizer.pad_token_id)(feats)
    with torch.no_grad():
        expected = model(**batch).loss
        total, count = response_only_loss(model, batch)
    assert count == sum(sum(t != IGNORE for t in f["labels"][1:]) for f in feats)
    assert torch.allclose(total / count, expected, atol=1e-5)


def test_the_trainer_loss_runs_through_the_forward_and_equals_the_models_own_loss(
    tiny_model_dir, tokenizer, tmp_path
):
    """The loss the Trainer backpropagates is a mode of the model's forward (what DDP wraps), and it is
    the model's own shifted cross-entropy; the plain forward is untouched."""
    import torch
    from transformers import AutoModelForCausalLM, TrainingArguments

    from training.trainer import make_trainer_class

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    feats = [encode_record(RECORD, tokenizer, 512), encode_record({**RECORD, "input": "x"}, tokenizer, 512)]
    batch = PadCollator(tokenizer.pad_token_id)(feats)
    with torch.no_grad():
        expected = model(**batch).loss
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    trainer = make_trainer_class()(model=model, args=args)
    count = sum(sum(t != IGNORE for t in f["labels"][1:]) for f in feats)
    model.train()  # the tiny model has no dropout: train mode changes nothing but the counting
    with torch.no_grad():
        assert torch.allclose(trainer.compute_loss(model, batch), expected, atol=1e-5)
        summed = trainer.compute_loss(model, batch, num_items_in_batch=torch.tensor(count))
        assert torch.allclose(summed, expected, atol=1e-5)
        assert torch.allclose(model(**batch).loss, expected)  # no flag: the model's own forward
    assert trainer.loss_forwards == {type(model).__name__: 2}
