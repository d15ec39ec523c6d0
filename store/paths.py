"""Path policy: a path a user types (model, output directory, import file) stays inside the allowed roots.

The app may serve beyond loopback, so a form field must not read or write anywhere the server
process can. Every user-typed path is resolved (``~`` expanded, ``..`` and symlinks followed) and
must land inside a configured root:

- data roots (imports, output and report directories): ``$COI_DATA_ROOT``, else the project's
  ``data/``; the database's own directory is always one (the app writes runs/ and logs/ there).
- model roots (base models, adapters): ``$COI_MODEL_ROOT``, else ``~/.cache/coi-studio/models``
  (or ``$COI_MODEL_CACHE``) and the project's ``models/``. Data roots hold trained adapters, so
  a model path may also lie in a data root.

Both variables are ``os.pathsep``-separated lists. ``COI_ALLOW_ANY_PATH=1`` turns the check off.
Hugging Face ids (``org/name``) and registry names (``gemma-3-270m``) that are not existing paths
are not paths: they pass unchanged.

Typed import paths are stricter (``confine_import_path``): they must lie in an import folder,
``data/imports/`` beside the database or ``$COI_IMPORT_ROOT`` (an ``os.pathsep`` list), have an
importable extension (or be a dataset folder saved with ``save_to_disk``), and no part of the path
may start with a dot (so ``.streamlit/secrets.toml``, ``.env`` or ``.git/`` are never read).
``COI_ALLOW_ANY_PATH`` does not lift these rules.

Where it applies: training (base model, output directory) and eval (base model, adapter) at
submit, from the pages and ``coi train`` / ``coi eval`` alike, and again in the job process before
it loads anything (a job cannot tell who queued it); the Data page's typed import path. The CLI's
own file arguments (``coi import PATH``, ``coi export``, ``coi version export``, ``coi eval --out``)
are not confined: they run as the local shell user, who can already read and write those files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from store import env
from store.db import default_db_path
from store.errors import CoiError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_ENV, MODEL_ENV, ANY_ENV = "COI_DATA_ROOT", "COI_MODEL_ROOT", "COI_ALLOW_ANY_PATH"
IMPORT_ENV = "COI_IMPORT_ROOT"
IMPORT_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv")
# What a folder saved with datasets' save_to_disk holds (a Dataset, or a DatasetDict).
HF_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")
# An HF repo id: one optional "org/" then a name, no "..", no leading dot or slash.
_HUB_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)?$")


def _roots(value: str | None) -> list[Path]:
    return [Path(p).expanduser() for p in (value or "").split(os.pathsep) if p.strip()]


def _model_cache() -> Path:
    # Same default as models.registry.cache_root (store may not import training).
    cache = env.get("COI_MODEL_CACHE")
    return Path(cache) if cache else Path.home() / ".cache" / "coi-studio" / "models"


def _resolved(paths: list[Path]) -> tuple[Path, ...]:
    return tuple(dict.fromkeys(p.resolve() for p in paths))


@dataclass(frozen=True)
class PathPolicy:
    """Where user-typed paths may point.

    Args:
        data_roots: Directories for imports, outputs and reports (resolved).
        model_roots: Directories for base models and adapters (resolved).
        allow_any: True turns confinement off (``COI_ALLOW_ANY_PATH=1``).
    """

    data_roots: tuple[Path, ...]
    model_roots: tuple[Path, ...]
    allow_any: bool = False

    @classmethod
    def from_env(cls) -> PathPolicy:
        """The policy of the current environment (read at call time, so tests can change it)."""
        db_dir = default_db_path().expanduser().resolve().parent
        data = _roots(env.get(DATA_ENV)) or [PROJECT_ROOT / "data"]
        models = _roots(env.get(MODEL_ENV)) or [_model_cache(), PROJECT_ROOT / "models"]
        return cls(
            data_roots=_resolved([db_dir, *data]),
            model_roots=_resolved(models),
            allow_any=env.get(ANY_ENV).strip().lower() in ("1", "true", "yes"),
        )


def is_hub_id(name: str) -> bool:
    """True for a Hugging Face id or registry name that is not an existing local path."""
    text = name.strip()
    if not text or text.startswith(("~", ".")) or os.path.isabs(text) or "\\" in text:
        return False
    return bool(_HUB_ID.match(text)) and ".." not in text and not Path(text).exists()


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _confine(path: str | Path, roots: tuple[Path, ...], what: str, env: str, allow_any: bool) -> Path:
    text = str(path).strip()
    if not text or "\x00" in text:
        raise CoiError(f"The {what} path is empty or invalid", "Type a path inside the allowed folders.")
    resolved = Path(text).expanduser().resolve()  # follows symlinks, so links out are caught
    if allow_any or _inside(resolved, roots):
        return resolved
    shown = ", ".join(str(r) for r in roots) or "(none)"
    raise CoiError(
        f"The {what} path {text} resolves to {resolved}, outside the allowed folders: {shown}",
        f"Move it inside one of them, or add its folder to ${env} (a {os.pathsep!r}-separated list);"
        f" ${ANY_ENV}=1 turns the check off.",
    )


def confine_data_path(path: str | Path, policy: PathPolicy | None = None, *, what: str = "data") -> Path:
    """Resolve a user-typed data path (import file, output or report directory) inside the data roots.

    Raises:
        CoiError: the resolved path is outside every data root; the message names the path, the
            roots and the variable that allows it.
    """
    policy = policy or PathPolicy.from_env()
    return _confine(path, policy.data_roots, what, DATA_ENV, policy.allow_any)


def confine_model_path(
    name: str | Path | None, policy: PathPolicy | None = None, *, what: str = "model"
) -> str | None:
    """Check a user-typed model or adapter reference; return it unchanged if it is a hub id.

    Local paths must resolve inside a model root or a data root (trained adapters live there);
    they come back resolved. None and empty names (the registry default) pass as they are.

    Raises:
        CoiError: a local path outside every allowed root.
    """
    if name is None or not str(name).strip() or is_hub_id(str(name)):
        return name if name is None else str(name)
    policy = policy or PathPolicy.from_env()
    roots = policy.model_roots + tuple(r for r in policy.data_roots if r not in policy.model_roots)
    return str(_confine(name, roots, what, MODEL_ENV, policy.allow_any))


def import_roots() -> tuple[Path, ...]:
    """The folders typed import paths may point into: ``$COI_IMPORT_ROOT``, else ``data/imports/`` beside
    the database (read at call time)."""
    roots = _roots(env.get(IMPORT_ENV)) or [default_db_path().expanduser().parent / "imports"]
    return _resolved(roots)


def confine_import_path(path: str | Path, roots: tuple[Path, ...] | None = None) -> Path:
    """Resolve a typed import path: an importable file or dataset folder inside an import folder.

    Raises:
        CoiError: outside every import folder, a dotfile or dot-folder, or not an importable file
            (the message names the path and the folders, never any of the file's content).
    """
    roots = import_roots() if roots is None else roots
    text = str(path).strip()
    if not text or "\x00" in text:
        raise CoiError("The import path is empty or invalid", "Type a path inside the import folder.")
    typed = Path(text).expanduser()
    resolved = typed.resolve()
    root = next((r for r in roots if resolved == r or resolved.is_relative_to(r)), None)
    shown = ", ".join(str(r) for r in roots)
    if root is None:
        raise CoiError(
            f"The import path {text} is outside the import folder ({shown})",
            f"Copy the file into {shown}, or set ${IMPORT_ENV} to the folder that holds it.",
        )
    hidden = [
        p
        for p in (*typed.parts, *resolved.relative_to(root).parts)
        if p.startswith(".") and p not in (".", "..")
    ]
    if hidden:
        raise CoiError(f"The import path {text} names a hidden file or folder", "Dotfiles are never read.")
    if resolved.is_dir():
        if any((resolved / m).is_file() for m in HF_MARKERS):
            return resolved
        raise CoiError(
            f"The folder {text} is not a dataset saved with save_to_disk",
            "Point at a .jsonl, .json, .csv or .tsv file, or a save_to_disk folder.",
        )
    if resolved.suffix.lower() not in IMPORT_SUFFIXES:
        raise CoiError(
            f"{text} is not an importable file (it must end in {', '.join(IMPORT_SUFFIXES)})",
            "Import JSONL, JSON, CSV or TSV files, or a save_to_disk folder.",
        )
    if not resolved.is_file():
        raise CoiError(f"There is no file {text}", f"Check the name; the import folder is {shown}.")
    return resolved
