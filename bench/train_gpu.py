"""GPU training throughput: the product's trainer against a plain Trainer + peft, on the default
model's architecture in bf16 with LoRA.

A GPU machine may have no network and no room for the weights, and throughput does not depend on
them, so the model is Gemma 3 270M's architecture (its config.json, as converted from the embedded
GGUF) at random init, fed random token ids whose lengths and response shares follow the paper's
coi_2.json as the embedded tokenizer counts it (20 quantiles, measured once, below). No tokenizer,
weights or database is needed; it runs under whatever torch / transformers / peft the machine has.

- ours: ``training.trainer.make_trainer_class()``: loss on response tokens only, the LM head only
  where the next token is a response token; length-grouped batches.
- base (the named baseline, as in bench/train.py): plain ``Trainer``, random order, the model's
  own loss over every token (full logits over the 262,144-word vocabulary).

It prints real (non-pad) tokens/s for both and the model FLOPs utilisation 6·N·tokens/s against
the device's bf16 dense peak, with N counting the LM head (tied to the embeddings, but its matmul
runs) and the LoRA share of N. Run: ``.venv/bin/python bench/train_gpu.py [--steps 30]``.
Last line: ``RESULT ratio=<ours/base> ours_tok_s=<x> mfu=<x>``, or ``RESULT skipped=no_cuda``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Gemma 3 270M (config.json of the converted embedded model).
GEMMA3_270M = dict(
    vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18, num_attention_heads=4,
    num_key_value_heads=1, head_dim=256, max_position_embeddings=32768, sliding_window=512,
    query_pre_attn_scalar=256, rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
)  # fmt: skip
# coi_2.json through the paper's prompt and the embedded tokenizer (max 512): 2.5%..97.5% quantiles.
TOTAL_TOKENS = [
    105,
    120,
    129,
    138,
    142,
    148,
    153,
    160,
    171,
    182,
    193,
    202,
    215,
    229,
    246,
    283,
    389,
    512,
    512,
    512,
]
RESPONSE_SHARE = [0.08, 0.11, 0.15, 0.18, 0.2, 0.21, 0.23, 0.25, 0.27, 0.28, 0.3, 0.31, 0.32, 0.34, 0.36, 0.4, 0.44, 0.48, 0.5, 0.56]  # fmt: skip
BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12}


def examples(n: int, seed: int = 0, vocab: int = GEMMA3_270M["vocab_size"]) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        q = rng.randrange(len(TOTAL_TOKENS))
        total, share = TOTAL_TOKENS[q], RESPONSE_SHARE[rng.randrange(len(RESPONSE_SHARE))]
        ids = [rng.randrange(4, vocab) for _ in range(total)]
        prompt = total - max(1, int(total * share))
        out.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return out


def build_model(arch: dict, device: str):
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    model = Gemma3ForCausalLM(Gemma3TextConfig(**arch)).to(device, dtype=torch.bfloat16)
    model.config.use_cache = False
    return model


def sampling(grouped: bool) -> dict:
    """Length-grouped or random batches, in whichever spelling this transformers version has."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    if "train_sampling_strategy" in names:
        return {"train_sampling_strategy": "group_by_length" if grouped else "random"}
    return {"group_by_length": grouped}


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def run(mode: str, steps: int, batch: int, arch: dict = GEMMA3_270M, device: str = "cuda") -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    from training.data import PadCollator
    from training.trainer import make_trainer_class

    model = build_model(arch, device)
    n_params = sum(p.numel() for p in model.parameters())
    head = arch["vocab_size"] * arch["hidden_size"]  # tied, so counted once above
    lora = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    data = examples(steps * batch, vocab=arch["vocab_size"])
    args = TrainingArguments(
        output_dir=f"/tmp/coi-train-gpu-{mode}", per_device_train_batch_size=batch, max_steps=steps, bf16=True,
        learning_rate=2e-4, logging_steps=10**9, save_strategy="no", report_to=[], remove_unused_columns=False,
        dataloader_num_workers=0, use_cpu=device == "cpu", **sampling(mode == "ours"),
    )  # fmt: skip
    trainer_cls = make_trainer_class() if mode == "ours" else Trainer
    collator = PadCollator(0, loss_on_all_tokens=mode == "base")
    trainer = trainer_cls(model=model, args=args, train_dataset=data, data_collator=collator)
    _sync(device)
    started = time.perf_counter()
    trainer.train()
    _sync(device)
    seconds = time.perf_counter() - started
    tokens = sum(len(e["input_ids"]) for e in data)
    peak_gb = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return {"tok_s": tokens / seconds, "n": n_params + head, "lora": trainable, "peak_gb": peak_gb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--cpu-smoke", action="store_true", help="the same code on a 2-layer model on the CPU"
    )
    args = parser.parse_args()
    import torch

    if args.cpu_smoke:  # checks the code path where no GPU is lent; its numbers mean nothing
        tiny = {
            **GEMMA3_270M,
            "vocab_size": 512,
            "num_hidden_layers": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "head_dim": 16,
        }
        for mode in ("base", "ours"):
            print(mode, run(mode, 2, 2, tiny, "cpu"))
        return 0
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        print("RESULT skipped=no_cuda")
        return 0
    name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in BF16_PEAK.items() if k in name), float("nan"))
    results = {mode: run(mode, args.steps, args.batch) for mode in ("base", "ours")}
    for mode, r in results.items():
        print(f"{mode}: {r['tok_s']:.0f} real tok/s, peak {r['peak_gb']:.1f} GiB", flush=True)
    ours = results["ours"]
    mfu = 6 * ours["n"] * ours["tok_s"] / peak
    print(
        f"{name}: N = {ours['n'] / 1e6:.0f}M with the LM head, LoRA {ours['lora'] / 1e6:.2f}M "
        f"({100 * ours['lora'] / ours['n']:.2f}% of N); bf16 peak {peak / 1e12:.0f} TFLOP/s"
    )
    ratio = ours["tok_s"] / results["base"]["tok_s"]
    print(f"RESULT ratio={ratio:.2f} ours_tok_s={ours['tok_s']:.0f} mfu={mfu:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
