"""The growth rule: when a series measured after each round is a leak.

A hunt measures a value (live bytes of a site, open descriptors, uncollectable
objects) once after the warm-up (``series[0]``) and once after each judged
round. The value leaks when it grows **round after round**:

* **every round** — each round ends higher than the one before; or
* **all rounds but one** (with at least 4 rounds) — one round did not grow,
  but the series ends at its highest point and that round fell back by at most
  half the typical (median) growth of the others.

* **every k rounds** (k from 2 to half the rounds, at least 4 rounds) — no
  round ends lower than the one before, every k consecutive rounds end
  higher than they began, and the rounds without growth at the end are no
  more than anywhere before: a leak that happens every other call (only even
  requests fail and are queued for a retry that never runs) or once in every
  k calls, with a hunt that calls the work once per round.

Why allow one round: memory that really leaks still moves in steps. A list's
item array or a dict's table is reallocated only when it is full, so a round
that appends a few items may not grow it; a cycle freed by the collector in
one round rather than the next shifts bytes between rounds. Why no more than
one, and why the conditions: a bounded structure whose contents change size
(a full LRU cache holding strings of random length) wanders up and down; it
must not pass for a leak. For such a series, 6 values in rising order happen
by chance once in 720; with the conditions above, a random walk of a bounded
cache is rarely taken for a leak, while a leak that stalls once is still seen.

Why demand, of a leak every k rounds, that no round fall and that it keep
growing to the last window: bounded memory moves down as well as up, and a
cache that fills in a step or two stops, so its last k rounds do not grow.

One-off growth (a cache that fills during the first judged round, then stops)
fails every rule: the rounds after it do not grow.
"""

from __future__ import annotations

from typing import Optional, Sequence

EVERY_ROUND = "every round"
ALL_BUT_ONE = "all rounds but one"


def growth_rule(series: Sequence[int]) -> Optional[str]:
    """The rule by which ``series`` leaks, or None when it does not."""
    deltas = [b - a for a, b in zip(series, series[1:])]
    if not deltas:
        return None
    if all(d > 0 for d in deltas):
        return EVERY_ROUND
    if len(deltas) < 4:
        return None
    setbacks = [d for d in deltas if d <= 0]
    if len(setbacks) == 1 and series[-1] > max(series[:-1]):
        rises = sorted(d for d in deltas if d > 0)
        median = rises[len(rises) // 2]
        if -setbacks[0] * 2 <= median:
            return ALL_BUT_ONE
    if any(d < 0 for d in deltas):
        return None
    # Flat rounds at the end, no more of them than anywhere before: a leak
    # every k rounds pauses as long each time; one that stopped (a cache
    # that filled over several rounds) pauses at the end for the first time.
    flat_runs = "".join("+" if d > 0 else "0" for d in deltas).split("+")
    if len(flat_runs[-1]) > max((len(run) for run in flat_runs[:-1]), default=0):
        return None
    for k in range(2, len(deltas) // 2 + 1):
        if all(later > earlier for earlier, later in zip(series, series[k:])):
            return f"every {k} rounds"
    return None
