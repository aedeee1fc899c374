"""The biggest peaks a test process has reported: which tests can still be
among those the ``--leakguard`` summary lists, with their lines.

Reading back the lines at a test's peak is most of what the plugin costs
per test, and the summary shows them for its ``top`` biggest tests only. A
test whose peak is below the ``top`` biggest peaks of other tests already
reported by the same process ranks below all of them in the summary, so its
lines are never shown and need not be read.
"""

from __future__ import annotations

import sys
from typing import Dict, Optional


class PeakBoard:
    """The peaks reported so far by this process, per test (a test reported
    again, as a rerun is, keeps its last peak, as the summary does).

    Only the ``top + 1`` biggest are kept: with fewer entries, a floor can
    only come out lower, and a lower floor reads more, never less.
    """

    def __init__(self, top: int) -> None:
        self.top = top
        self._peaks: Dict[str, int] = {}

    def floor(self, nodeid: str) -> Optional[int]:
        """The peak ``nodeid`` must reach to be among the ``top`` biggest
        tests; None when any peak may be."""
        if self.top == 0:
            return sys.maxsize  # the summary lists no test
        others = sorted((p for n, p in self._peaks.items() if n != nodeid), reverse=True)
        # Below the top-th biggest peak of the others, ``top`` tests rank
        # above it (the summary's ties go by node id: a tie is read).
        return others[self.top - 1] if len(others) >= self.top else None

    def add(self, nodeid: str, peak: int) -> None:
        peaks = self._peaks
        peaks[nodeid] = peak
        if len(peaks) > self.top + 1:
            del peaks[min(peaks, key=peaks.__getitem__)]
