"""`python -m precompute ...`: see precompute/cli.py."""
from .cli import main

raise SystemExit(main())
