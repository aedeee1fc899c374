"""The leak hunter: repetition-based leak detection (:func:`hunt`), scoped
tracking (:func:`track`) and the report they produce.

- :mod:`.rounds` runs the rounds and measures; :mod:`.growth` is the rule that
  tells a leak from a warm-up; :mod:`.sites` charges blocks to lines;
- :mod:`.holders` finds what keeps a site's objects alive;
- :mod:`.resources` and :mod:`.cycles` watch descriptors, ``ResourceWarning``s
  and the cycle collector;
- :mod:`.report` holds the results; :mod:`.session` the tracing state.
"""

from .report import (
    CycleReport,
    Holder,
    LeakReport,
    LeakSite,
    OpenDescriptor,
    ResourceReport,
    ResourceWarningRecord,
)
from .rounds import hunt
from .sites import IGNORED_CACHES
from .track import Tracker, track

__all__ = [
    "hunt",
    "track",
    "Tracker",
    "LeakReport",
    "LeakSite",
    "Holder",
    "ResourceReport",
    "OpenDescriptor",
    "ResourceWarningRecord",
    "CycleReport",
    "IGNORED_CACHES",
]
