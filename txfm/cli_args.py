"""Build argparse options from frozen config dataclasses.

Each field becomes ``--field-name``; its help text is the field's trailing
comment in the dataclass source, so the config and ``--help`` cannot drift apart.
"""
from __future__ import annotations

import argparse
import inspect
import re
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
                       defaults: dict | None = None, required: set[str] = frozenset()) -> None:
    """Add one option per field of ``cls`` (defaults None: unset options keep the dataclass default)."""
    helps = field_comments(cls)
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(cls.__name__)
    for f in fields(cls):
        if f.name in skip:
            continue
        tp = hints[f.name]
        default = (defaults or {}).get(f.name, f.default if f.default is not MISSING else None)
        shown = "required" if f.name in required else f"default: {default}"
        kw: dict = {"help": f"{helps.get(f.name, '')} ({shown})", "default": None}
        if typing.get_origin(tp) is typing.Literal:
            kw["choices"] = list(typing.get_args(tp))
            kw["type"] = type(kw["choices"][0])
        elif tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = tp
        if f.name in required:
            kw["required"] = True
        group.add_argument("--" + f.name.replace("_", "-"), dest=f.name, **kw)


def collect(ns: argparse.Namespace, cls) -> dict:
    """The options of ``cls`` that were given on the command line."""
    return {f.name: getattr(ns, f.name) for f in fields(cls) if getattr(ns, f.name, None) is not None}
