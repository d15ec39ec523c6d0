"""The configuration of an eval run: one dataclass for the form, the CLI flags and the saved job config."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from models.precision import PRECISIONS
from store.config import from_plain, to_plain
from store.endpoints import check_base_url
from store.errors import CoiError

MODES = ("chain", "stepwise-gold", "stepwise-own")


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate, on which data, and how."""

    model: str | None = field(
        default=None,
        metadata={"help": "Base model: registry name, local path or HF id (default: gemma-3-270m)."},
    )
    adapter_job: int | None = field(
        default=None,
        metadata={"help": "Id of a finished train job whose LoRA adapter goes on top of the base."},
    )
    adapter_dir: str | None = field(
        default=None, metadata={"help": "A LoRA adapter directory (instead of a job)."}
    )
    version: int | None = field(
        default=None, metadata={"help": "Dataset version id (default: the train job's, else the newest)."}
    )
    split: str = field(
        default="test",
        metadata={"help": "Which split of the version to evaluate.", "choices": ("train", "test")},
    )
    modes: tuple[str, ...] = field(default=MODES, metadata={"help": "Prediction modes to run."})
    batch_size: int = field(default=8, metadata={"help": "Prompts per generation batch."})
    max_new_tokens: int = field(default=128, metadata={"help": "The most new tokens per answer."})
    precision: str = field(
        default="auto",
        metadata={
            "help": "Local generation: auto = bf16 where the device runs it natively (about 2x faster), else fp32.",
            "choices": PRECISIONS,
        },
    )
    lengths: tuple[int, ...] = field(default=(), metadata={"help": "Only these chain lengths (empty: all)."})
    fail_threshold: float = field(
        default=0.3, metadata={"help": "A step fails when its ROUGE-L is below this (first failing step)."}
    )
    limit: int | None = field(
        default=None,
        metadata={"help": "Evaluate at most this many chains (quick runs).", "label": "Chains (empty: all)"},
    )
    use_stemmer: bool = field(default=False, metadata={"help": "Porter-stem words before ROUGE-L."})
    name: str = field(default="", metadata={"help": "A label for the run."})
    endpoint: str = field(
        default="",
        metadata={
            "help": "Generate through this OpenAI-compatible server (vLLM, SGLang, ...) instead of locally."
        },
    )
    endpoint_model: str = field(
        default="",
        metadata={"help": "The model name the endpoint serves (a vLLM LoRA module's name for an adapter)."},
    )
    concurrency: int = field(default=8, metadata={"help": "Requests in flight at once (endpoint eval)."})
    out: str = field(
        default="", metadata={"help": "Folder for report.json and summary.md (default: data/eval/run-ID)."}
    )

    @property
    def remote(self) -> bool:
        """True when an endpoint generates the answers: no local model is loaded."""
        return bool(self.endpoint)

    def __post_init__(self) -> None:
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise CoiError(
                f"Unknown eval mode(s): {', '.join(bad) or 'none given'}", f"Use {', '.join(MODES)}."
            )
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise CoiError("Batch size and max new tokens must be at least 1", "Pick positive numbers.")
        if not 0.0 <= self.fail_threshold <= 1.0:
            raise CoiError("The fail threshold is a ROUGE-L value", "Pick a number between 0 and 1.")
        if self.endpoint:
            check_base_url(self.endpoint)  # no credentials in it, http(s) only
        if self.endpoint and not self.endpoint_model:
            raise CoiError("An endpoint eval needs the model name the server uses", "Set --endpoint-model.")
        if self.concurrency < 1:
            raise CoiError("Concurrency must be at least 1", "Pick a positive number.")
        if self.precision not in PRECISIONS:
            raise CoiError(f"Unknown precision {self.precision!r}", f"Use {', '.join(PRECISIONS)}.")

    def to_dict(self) -> dict:
        return to_plain(self)

    @classmethod
    def from_dict(cls, data: dict) -> EvalConfig:
        """Build from a saved job config; unknown keys are ignored, values coerced to the field types."""
        return from_plain(cls, data, what="eval config")


def help_of(name: str) -> str:
    """The help text of a field (shared by the CLI and the page's form)."""
    return next(f.metadata.get("help", "") for f in fields(EvalConfig) if f.name == name)
