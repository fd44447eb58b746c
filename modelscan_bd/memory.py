"""Peak resident memory during a block, sampled from /proc (Linux) by a thread.

ru_maxrss is the whole process's lifetime peak, which would charge a scan for whatever
ran before it (training in the demo, earlier models in a benchmark).
"""
from __future__ import annotations

import os
import resource
import threading


def current_rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


class PeakMemory:
    """``with PeakMemory() as m: ...`` then ``m.peak_mb``."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            rss = current_rss_mb()
            if rss is not None:
                self.peak_mb = max(self.peak_mb or 0.0, rss)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.peak_mb is None:  # no /proc: fall back to the lifetime peak
            self.peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
