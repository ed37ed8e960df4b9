"""Ground floor: helpers every room may import (error policy, atomic writes, checksums, output folders).

Imports only the standard library, so `data`, `txfm`, `precompute`, `evaluation` and the app can all
use it without pulling anything heavy in. Nothing here imports a room.
"""
