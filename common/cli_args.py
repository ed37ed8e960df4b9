"""Build argparse options from frozen config dataclasses: the command-line style of every room.

Each field becomes ``--field-name``; its help text is the field's trailing
comment in the dataclass source, so the config and ``--help`` cannot drift apart.
Supported field types: int, float, str, bool (``--x/--no-x``), ``Literal[...]`` (choices),
``tuple[T, ...]`` (one or more values) and any of these ``| None``. Unset options stay None, so
``collect`` returns only what was given and the dataclass defaults apply to the rest.
"""
from __future__ import annotations

import argparse
import inspect
import re
import types
import typing
from dataclasses import MISSING, fields

_FIELD_RE = re.compile(r"^\s+(\w+)\s*:[^#=]*(?:=[^#]*)?#\s*(.+)$")


def field_comments(cls) -> dict[str, str]:
    """{field name: trailing comment} parsed from the dataclass source."""
    out = {}
    for line in inspect.getsource(cls).splitlines():
        m = _FIELD_RE.match(line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def add_dataclass_args(parser: argparse.ArgumentParser, cls, skip: set[str] = frozenset(),
                       defaults: dict | None = None, required: set[str] = frozenset(),
                       title: str | None = None) -> None:
    """Add one option per field of ``cls`` (defaults None: unset options keep the dataclass default),
    in an option group named ``title`` (default: the class name)."""
    helps = field_comments(cls)
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(title or cls.__name__)
    for f in fields(cls):
        if f.name in skip:
            continue
        tp = _strip_optional(hints[f.name])
        default = (defaults or {}).get(f.name, f.default if f.default is not MISSING else None)
        if isinstance(default, tuple):
            default = " ".join(f'"{x}"' if isinstance(x, str) and (not x or " " in x) else str(x)
                               for x in default) or "none"
        shown = "required" if f.name in required else "" if default is None else f"default: {default}"
        # "%(default).0s" prints nothing; it stops ArgumentDefaultsHelpFormatter appending "(default: None)",
        # the placeholder that lets `collect` tell a given option from an unset one
        kw: dict = {"help": helps.get(f.name, "").replace("%", "%%") + (f" ({shown})" if shown else "")
                    + "%(default).0s", "default": None}
        if typing.get_origin(tp) is typing.Literal:
            kw["choices"] = list(typing.get_args(tp))
            kw["type"] = type(kw["choices"][0])
        elif tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is tuple:
            args = typing.get_args(tp)
            if len(args) != 2 or args[1] is not Ellipsis or args[0] not in (int, float, str):
                raise TypeError(f"{cls.__name__}.{f.name}: {tp} has no command-line form; skip it and add the option by hand")
            kw["type"], kw["nargs"] = args[0], "+"
        elif tp in (int, float, str):
            kw["type"] = tp
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: {tp} has no command-line form; skip it and add the option by hand")
        if f.name in required:
            kw["required"] = True
        group.add_argument("--" + f.name.replace("_", "-"), dest=f.name, **kw)


def _strip_optional(tp):
    """``T | None`` -> T; anything else unchanged."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def collect(ns: argparse.Namespace, cls) -> dict:
    """The options of ``cls`` that were given on the command line (lists become tuples)."""
    out = {}
    for f in fields(cls):
        v = getattr(ns, f.name, None)
        if v is not None:
            out[f.name] = tuple(v) if isinstance(v, list) else v
    return out
