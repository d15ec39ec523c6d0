"""The training step itself: LoRA on the base model, and a Trainer with the response-only loss.

Importable with only torch, transformers and peft installed (no database), so a bench can drive the
product's own trainer on a machine that has nothing else (``bench/train_gpu.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from store.errors import CoiError
from training.data import IGNORE

if TYPE_CHECKING:
    from training.config import TrainConfig


def add_lora(model, cfg: TrainConfig):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise CoiError(
            f"Bad LoRA target modules: {exc}", "Name modules that exist, e.g. q_proj,v_proj."
        ) from exc


def response_only_loss(model, inputs: dict):
    """(sum of token losses, number of tokens) over response positions only.

    Runs the decoder, then the LM head only where the next token is a response token, which is
    the same loss as the model's own (shifted cross-entropy, -100 ignored) at a fraction of the
    head's cost.
    """
    import torch.nn.functional as F

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    out = base.get_decoder()(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    hidden = out[0]
    labels = inputs["labels"][:, 1:]
    keep = labels != IGNORE
    logits = base.get_output_embeddings()(hidden[:, :-1][keep]).float()
    cap = getattr(base.config, "final_logit_softcapping", None)
    if cap:
        logits = (logits / cap).tanh() * cap
    return F.cross_entropy(logits, labels[keep], reduction="sum"), int(keep.sum())


def make_trainer_class():
    """A Trainer that counts real tokens and uses the response-only loss on one process."""
    from transformers import Trainer

    class CoiTrainer(Trainer):
        real_tokens = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                self.real_tokens += int(inputs["attention_mask"].sum())
            if self.args.world_size > 1:  # DDP must see the wrapped forward; use the model's own loss
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss_sum, count = response_only_loss(model, inputs)
            loss = loss_sum / (num_items_in_batch if num_items_in_batch is not None else max(count, 1))
            return (loss, {"loss": loss}) if return_outputs else loss

    return CoiTrainer
