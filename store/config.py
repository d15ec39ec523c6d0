"""Config dataclasses -> form fields, CLI flags and saved JSON, for every config of the project.

A config is a frozen dataclass whose fields carry ``metadata={"help": ...}`` (and optionally
``choices``). The form (:func:`form_fields`), the CLI (:func:`add_arguments` /
:func:`overrides_from_args`) and the job row (:func:`to_plain` / :func:`from_plain`) are all
derived from it, so a new field shows up everywhere at once. It lives in ``store`` because every
domain (pipeline, training, eval) uses it and domains import nothing from each other.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from store.errors import CoiError


def option(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field with its help text (and e.g. ``choices=...``) in the metadata."""
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **extra})
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class FieldSpec:
    """What a form or a flag needs to know about one config field."""

    name: str
    kind: str  # int | float | str | bool | choice | int_list | str_list | optional_int | optional_str | dict
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    label: str = ""  # the form's label; default: the name in words

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


def _kind(tp: Any) -> str:
    if tp is bool:
        return "bool"
    if tp in (int, float, str):
        return tp.__name__
    if tp is dict or typing.get_origin(tp) is dict:
        return "dict"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        return "int_list" if args[0] is int else "str_list"
    if origin in (typing.Union, types.UnionType) and int in args:
        return "optional_int"
    if origin in (typing.Union, types.UnionType) and str in args:
        return "optional_str"
    raise TypeError(f"unsupported config field type {tp!r}")


def form_fields(cls: type) -> list[FieldSpec]:
    """One FieldSpec per config field with help text, in declaration order."""
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        kind = "choice" if "choices" in f.metadata else _kind(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        specs.append(
            FieldSpec(
                f.name,
                kind,
                default,
                f.metadata["help"],
                tuple(f.metadata.get("choices", ())),
                f.metadata.get("label", ""),
            )
        )
    return specs


def spec_of(cls: type, name: str) -> FieldSpec:
    return next(s for s in form_fields(cls) if s.name == name)


def coerce(cls: type, name: str, value: Any, *, what: str = "config") -> Any:
    """Turn a form/CLI/JSON value into the field's type; CoiError names the field."""
    kind = spec_of(cls, name).kind
    try:
        if kind in ("int_list", "str_list"):
            items = value.split(",") if isinstance(value, str) else list(value)
            items = [str(i).strip() for i in items if str(i).strip()]
            return tuple(int(i) for i in items) if kind == "int_list" else tuple(items)
        if kind == "optional_int":
            return None if value in (None, "", "None") else int(value)
        if kind == "optional_str":
            return None if value in (None, "") else str(value)
        if kind == "dict":
            return dict(value or {})
        if kind == "bool":
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
        return {"int": int, "float": float}.get(kind, str)(value)
    except (TypeError, ValueError) as exc:
        raise CoiError(f"Bad {what}: {name}={value!r} ({exc})", "Fix that field and start again.") from exc


def to_plain(obj: Any, *, exclude: tuple[str, ...] = ()) -> dict:
    """A JSON-ready dict of a config (tuples become lists), without the ``exclude`` fields."""
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(obj).items()}
    for name in exclude:
        out.pop(name, None)
    return out


def from_plain(cls: type, data: dict, *, what: str = "config", **extra: Any) -> Any:
    """Build a config from a saved dict: unknown keys are ignored, values coerced to the field types."""
    names = {s.name for s in form_fields(cls)}
    values = {k: coerce(cls, k, v, what=what) for k, v in data.items() if k in names and k not in extra}
    return cls(**values, **extra)


def add_arguments(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--field-name`` flag per config field (default None = keep the base value)."""
    for spec in form_fields(cls):
        if spec.name in skip or spec.kind == "dict":
            continue
        flag = "--" + spec.name.replace("_", "-")
        helptext = f"{spec.help} (default: {show(spec.default)})"
        if spec.kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=helptext)
        else:
            parser.add_argument(flag, default=None, choices=spec.choices or None, help=helptext)


def overrides_from_args(args: argparse.Namespace, cls: type) -> dict:
    """The config fields given on the command line."""
    return {
        s.name: getattr(args, s.name) for s in form_fields(cls) if getattr(args, s.name, None) is not None
    }


def show(value: Any) -> str:
    """A field value the way a flag or a form field takes it back (lists comma-separated)."""
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def config_diff(a: dict, b: dict) -> list[tuple[str, Any, Any]]:
    """(field, a's value, b's value) for every field that differs between two saved configs."""
    keys = list(dict.fromkeys([*a, *b]))
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]
