"""The authors' recipe: the paper preset flag by flag, their Alpaca template byte for byte, full fine-tuning."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.coi_format import render_prompt
from store.jobs import get_metrics
from tests.support.training import make_version, tiny_config, wait_for
from training import config as tc
from training import queue
from training.data import record_texts
from training.run import training_arguments

# amazon-science/chain-of-instructions, model_training/stanford_alpaca/model_trainer.sh, as released
# (the flags that set the recipe; paths, ports, deepspeed and wandb are the authors' machine).
MODEL_TRAINER_SH = {
    "--bf16": "True",
    "--num_train_epochs": "3",
    "--per_device_train_batch_size": "4",
    "--per_device_eval_batch_size": "4",
    "--gradient_accumulation_steps": "8",
    "--evaluation_strategy": "no",
    "--learning_rate": "2e-5",
    "--weight_decay": "0.",
    "--warmup_ratio": "0.03",
}
# Their train.py: TrainingArguments.model_max_length defaults to 512; the model is fine-tuned whole.
TRAIN_PY = {"model_max_length": 512, "method": "full"}

# tatsu-lab/stanford_alpaca train.py PROMPT_DICT (copied into the authors' train.py unchanged).
ALPACA_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:"
)


def test_paper_preset_equals_the_authors_flags_field_by_field(tmp_path):
    cfg = tc.preset("paper")
    assert cfg.epochs == float(MODEL_TRAINER_SH["--num_train_epochs"])
    assert cfg.batch_size == int(MODEL_TRAINER_SH["--per_device_train_batch_size"])
    assert cfg.grad_accum == int(MODEL_TRAINER_SH["--gradient_accumulation_steps"])
    assert cfg.learning_rate == float(MODEL_TRAINER_SH["--learning_rate"])
    assert cfg.weight_decay == float(MODEL_TRAINER_SH["--weight_decay"])
    assert cfg.warmup_ratio == float(MODEL_TRAINER_SH["--warmup_ratio"])
    assert cfg.eval_fraction == 0  # --evaluation_strategy "no": nothing is held out
    assert cfg.precision == "auto"  # bf16 where supported (--bf16 True on their GPUs)
    assert (cfg.max_seq_len, cfg.method) == (TRAIN_PY["model_max_length"], TRAIN_PY["method"])
    # And the Trainer gets exactly those values.
    args = training_arguments(cfg, tmp_path, "bf16", has_eval=False)
    assert args.per_device_train_batch_size == 4 and args.per_device_eval_batch_size == 4
    assert args.gradient_accumulation_steps == 8 and args.num_train_epochs == 3
    assert (args.learning_rate, args.weight_decay, args.warmup_steps) == (2e-5, 0.0, 0.03)
    assert args.bf16 and args.eval_strategy == MODEL_TRAINER_SH["--evaluation_strategy"]
    assert (
        getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type) == "linear"
    )  # the Trainer default their run used


def test_paper_lora_keeps_the_schedule_with_a_lora_rate():
    paper, lora = tc.preset("paper").to_dict(), tc.preset("paper-lora").to_dict()
    assert {k for k in paper if paper[k] != lora[k]} == {"method", "learning_rate"}
    assert lora["method"] == "lora" and lora["learning_rate"] == 2e-4


def test_prompt_is_the_alpaca_template_byte_for_byte():
    assert render_prompt("Do {x}.", "in {y}") == ALPACA_INPUT.format(instruction="Do {x}.", input="in {y}")
    assert render_prompt("Do it.", "") == ALPACA_NO_INPUT.format(instruction="Do it.")
    assert not render_prompt("a", "b").endswith("\n")


def test_training_text_is_the_records_own_instruction_and_output():
    record = {
        "instruction": "Reverse and then shout the text.",
        "instructions": ["Reverse and then shout the text.", ""],
        "input": "abc",
        "output": "Task 1 output and task 2 input: cba  Task2 output: CBA",
        "target": "Task 1 output and task 2 input: cba  Task2 output: CBA",
        "outputs": ["cba", "CBA"],
    }
    prompt, response = record_texts(record)
    assert prompt == ALPACA_INPUT.format(instruction=record["instruction"], input="abc")
    assert response == record["output"]  # markers as the authors wrote them, not re-rendered


def test_method_is_checked():
    with pytest.raises(Exception, match="method must be one of lora, full"):
        tc.TrainConfig(method="qlora").validated()


def test_full_fine_tuning_of_the_tiny_model(db, tiny_model_dir):
    """--method full: every weight trains, the whole model is saved, and eval loads it from there."""
    import torch
    from transformers import AutoModelForCausalLM

    from eval.predict import load_generator

    version = make_version(db)
    cfg = tiny_config(tiny_model_dir, version, method="full", max_steps=-1, epochs=2, eval_fraction=0.0)
    job = wait_for(db, queue.submit(db, cfg), lambda j: not j.active)
    assert job.status == "succeeded", job.error
    saved = Path(job.result["adapter_dir"])
    assert (saved / "model.safetensors").is_file() and not (saved / "adapter_config.json").exists()
    assert job.result["method"] == "full" and job.result["train_s"] > 0
    assert job.result["final_loss"] > 0 and job.result["train_loss"] > 0
    names = {m["name"] for m in get_metrics(db, job.id)}
    assert {"loss", "loss_smooth", "epoch_loss"} <= names
    epochs = [m for m in get_metrics(db, job.id) if m["name"] == "epoch_loss"]
    assert len(epochs) == 2
    ids = torch.tensor([[5, 17, 42, 99, 3]])
    base, tuned = (
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        AutoModelForCausalLM.from_pretrained(saved),
    )
    with torch.no_grad():
        assert (tuned(input_ids=ids).logits - base(input_ids=ids).logits).abs().max() > 1e-4
    # Every weight moved, not only some adapters: the embedding matrix changed too.
    assert not torch.equal(base.get_input_embeddings().weight, tuned.get_input_embeddings().weight)
    gen = load_generator(str(tiny_model_dir), str(saved), max_new_tokens=4, log=lambda m: None)
    assert gen.generate(["hello"])[0].n_tokens >= 0
