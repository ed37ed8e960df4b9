"""`python -m precompute ...`: see precompute/cli.py."""
import sys

from common.errors import run_main

from .cli import main

sys.exit(run_main(main))
