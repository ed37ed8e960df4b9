"""The one command-line style: options generated from config dataclasses (common.cli_args)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

import pytest

from common.cli_args import add_dataclass_args, collect


@dataclass(frozen=True)
class _Cfg:
    steps: int = 10                          # training steps
    lr: float = 1e-3                         # learning rate
    mode: Literal["a", "b"] = "a"            # which mode
    fast: bool = False                       # go fast
    ranks: tuple[int, ...] | None = None     # ranks to sweep (none: all)
    resolutions: tuple[float, ...] = (0.5, 1.0)  # Leiden resolutions
    name: str | None = None                  # a name


def _parser(**kw) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_dataclass_args(p, _Cfg, **kw)
    return p


def test_options_follow_the_dataclass():
    p = _parser()
    ns = p.parse_args(["--steps", "5", "--mode", "b", "--fast", "--ranks", "8", "16", "--resolutions", "2"])
    assert collect(ns, _Cfg) == {"steps": 5, "mode": "b", "fast": True, "ranks": (8, 16), "resolutions": (2.0,)}
    assert _Cfg(**collect(ns, _Cfg)).lr == 1e-3                       # unset options keep the default
    assert collect(p.parse_args([]), _Cfg) == {}
    assert collect(p.parse_args(["--no-fast"]), _Cfg) == {"fast": False}
    with pytest.raises(SystemExit):
        p.parse_args(["--mode", "c"])                                  # Literal -> choices
    text = p.format_help()
    assert "training steps (default: 10)" in text and "Leiden resolutions (default: 0.5 1.0)" in text
    assert "ranks to sweep (none: all)" in text and "(default: None)" not in text


def test_skip_title_and_unsupported_types():
    p = _parser(skip={"name"}, title="step parameters")
    assert "--name" not in p.format_help() and "step parameters:" in p.format_help()

    @dataclass
    class Bad:
        pairs: tuple[tuple[str, int], ...] = ()   # matrix/rank pairs

    with pytest.raises(TypeError, match="Bad.pairs"):
        add_dataclass_args(argparse.ArgumentParser(), Bad)
    add_dataclass_args(argparse.ArgumentParser(), Bad, skip={"pairs"})
