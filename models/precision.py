"""Which number format a device runs fastest without hurting training: one rule for training and eval.

bf16 halves the bytes every matmul reads. On a GPU with bf16 support and on a CPU with native bf16
instructions (AVX512-BF16 or AMX), that is about 2x faster: measured on this project's 2-core EPYC,
a LoRA training step of Gemma 3 270M ran 25 s in fp32 against 12 s under bf16 autocast, and batched
greedy decoding 6.3 s against 3.4 s with bf16 weights. A CPU without those instructions emulates bf16
and gets slower, so there ``auto`` stays fp32.
"""

from __future__ import annotations

from store.errors import CoiError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 matmuls natively on this CPU (AVX512-BF16 or AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def resolve_precision(precision: str, num_gpus: int) -> str:
    """'auto' -> bf16 where the device runs it natively (a bf16 GPU, or a bf16 CPU), else fp32.

    Raises:
        CoiError: a GPU is asked for but none is usable, or fp16 is asked for on the CPU.
    """
    import torch

    if num_gpus > 0 and not torch.cuda.is_available():
        raise CoiError(
            "CUDA is missing: num_gpus > 0 but no GPU is usable", "Set num_gpus to 0 to use the CPU."
        )
    if precision == "auto":
        native = torch.cuda.is_bf16_supported() if num_gpus > 0 else cpu_has_native_bf16()
        return "bf16" if native else "fp32"
    if precision == "fp16" and num_gpus == 0:
        raise CoiError("fp16 needs a GPU", "Use precision bf16 or fp32 on the CPU.")
    return precision
