"""A tiny randomly initialised causal LM with its own byte-level tokenizer, built offline.

Tests use it instead of downloading weights: real transformers/peft code paths, seconds to run.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "Summarize the text and then translate the summary to French.",
    "Task 1 output and task 2 input: the cat sat on the mat. Task 2 output: le chat.",
    "Below is an instruction that describes a task, paired with an input that provides further context.",
    "### Instruction:\n### Input:\n### Response:\n",
    "Count the words. Sort the list. Extract the names. Classify the sentiment as positive or negative.",
]


def build_tiny_model(out_dir: str | Path, *, seed: int = 0, vocab_size: int = 400) -> Path:
    """Write a tiny Llama-architecture model and tokenizer to ``out_dir`` and return it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
