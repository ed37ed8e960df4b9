"""Range checks for numeric options, one message shape everywhere (docs/reliability.md).

``check_range("batch_size", 0, lo=1)`` raises ``OptionError("--batch-size 0: must be >= 1; ...")``.
Config dataclasses call these in ``__post_init__`` so the command line, the Python API and a
resumed run are all checked. Stdlib only.
"""
from __future__ import annotations

import math

from common.errors import UserError


class OptionError(UserError, ValueError):
    """A numeric option outside its valid range; the message names the option and the range."""


def option_name(field: str) -> str:
    return field if field.startswith("-") else "--" + field.replace("_", "-")


def check_range(field: str, value, lo=None, hi=None, lo_open: bool = False, hi_open: bool = False,
                integer: bool = False, none_ok: bool = False, what: str = "") -> None:
    """Refuse ``value`` outside [lo, hi] (open ends with lo_open/hi_open), NaN or infinity, or a non-integer when
    ``integer``. ``what`` adds what the option means, e.g. "genes revealed per sample"."""
    if value is None and none_ok:
        return
    name = option_name(field)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptionError(f"{name} {value!r}: expected a number")
    bad = isinstance(value, float) and not math.isfinite(value)
    if integer and isinstance(value, float) and not bad and not value.is_integer():
        raise OptionError(f"{name} {value!r}: must be a whole number")
    if lo is not None:
        bad = bad or (value <= lo if lo_open else value < lo)
    if hi is not None:
        bad = bad or (value >= hi if hi_open else value > hi)
    if not bad:
        return
    if lo is not None and hi is not None:
        rng = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        rng = f"{'>' if lo_open else '>='} {lo:g}"
    else:
        rng = f"{'<' if hi_open else '<='} {hi:g}"
    raise OptionError(f"{name} {value!r}: must be {rng}" + (f" ({what})" if what else ""))
