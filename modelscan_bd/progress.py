"""Steady status lines on stderr for long steps; silent with --quiet."""
from __future__ import annotations

import sys
import time
from typing import Callable


def status_printer(quiet: bool) -> Callable[[str], None]:
    if quiet:
        return lambda msg: None
    start = time.perf_counter()

    def emit(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return emit
