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


RESPONSE_ONLY = "coi_response_only"  # the keyword that routes a forward call to response_only_loss


def route_response_only(model) -> None:
    """Make ``model(**inputs, coi_response_only=True)`` return :func:`response_only_loss`.

    Under DDP the loss must come out of the wrapped module's forward: DDP's forward prepares the
    gradient all-reduce of the backward, so calling ``model.module`` (or its decoder) directly would
    train every rank alone (pytorch/pytorch#20282). So the response-only loss becomes a mode of the
    forward itself, on the instance the Trainer hands to accelerate, the way accelerate installs its
    autocast wrapper; DDP (and that autocast) then wrap it like any forward. Any other call goes to
    the model's own forward unchanged, so generation and saving see the plain model.
    """
    import types

    if getattr(model, "_coi_plain_forward", None) is not None:
        return
    plain = model.forward

    def forward(self, *args, coi_response_only: bool = False, **kwargs):
        if coi_response_only:
            return response_only_loss(self, kwargs)
        return plain(*args, **kwargs)

    model._coi_plain_forward = plain
    model.forward = types.MethodType(forward, model)


def make_trainer_class():
    """A Trainer that counts real tokens and uses the response-only loss, on one process or under DDP."""
    from collections import Counter

    from transformers import Trainer

    class CoiTrainer(Trainer):
        real_tokens = 0

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            route_response_only(self.model)  # before train() wraps it (accelerate, then DDP)
            # Training forwards by the class of the module they went through ("DistributedDataParallel"
            # under accelerate launch): what the run reports and the 2-process test checks.
            self.loss_forwards: Counter[str] = Counter()

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                self.real_tokens += int(inputs["attention_mask"].sum())
                self.loss_forwards[type(model).__name__] += 1
            loss_sum, count = model(**inputs, **{RESPONSE_ONLY: True})
            if num_items_in_batch is None:
                loss = loss_sum / max(count, 1)
            else:
                loss = loss_sum / num_items_in_batch
                if self.args.average_tokens_across_devices and self.args.world_size > 1:
                    # num_items_in_batch counts every rank's tokens and DDP averages the gradients over
                    # the ranks: scale back to the global token mean, as Trainer.compute_loss does.
                    loss = loss * self.accelerator.num_processes
            return (loss, {"loss": loss}) if return_outputs else loss

    return CoiTrainer
