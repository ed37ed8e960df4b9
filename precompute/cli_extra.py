"""Sub-commands added as their modules land: compare, bench, crosscheck, results."""
from __future__ import annotations


def add_commands(sub, add_params) -> None:
    """Register the remaining sub-commands on the argparse sub-parser `sub`."""
    return None
