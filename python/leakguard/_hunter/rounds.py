"""``leakguard.hunt``: run the same work round after round and report what
keeps growing.

The method (the rules are in :mod:`.growth`, the attribution in :mod:`.sites`):

1. run ``func`` ``warmup`` times, not judged (and not traced, unless the
   program traces already): caches fill, imports happen;
2. measure: a full collection (:mod:`.cycles`), then the live bytes and blocks
   per allocation site from a snapshot, the open file descriptors and the
   ``ResourceWarning``s (:mod:`.resources`);
3. run ``func`` once more and measure again, ``rounds`` times, with the
   interpreter's free lists on (the speed of plain tracing);
4. if anything grew by the growth rule, steps 2-3 again with the free lists
   off (3.10+), each object charged to the line that created it, and judge
   those rounds: a site whose live size grows round after round is a leak;
5. find what holds its objects (:mod:`.holders`).

Everything the hunt itself allocates is left unrecorded, so it never shows up
among the traces it judges.
"""

from __future__ import annotations

import gc
import sys
import time
from typing import (
    AbstractSet,
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Set,
    Tuple,
)

from .. import _leakguard as native
from .._errors import UsageTypeError, check_count
from .._model import Traceback
from .._source import source_line
from .cycles import CycleWatch, count_types
from .growth import growth_rule
from .holders import content_length, find_holders
from .report import CycleReport, Holder, LeakReport, LeakSite, ResourceReport
from .resources import DescriptorCounter, WarningCapture, leaked_descriptors
from .session import TracingSession, flush_free_lists, unrecorded
from .sites import RawTraceback, Site, SiteResolver

#: Frames kept per traceback during a hunt: enough to get from library code
#: back to the user's line that called it.
DEFAULT_NFRAME = 16

#: Holder search budget in seconds, for all leaking sites together.
HOLDER_BUDGET = 1.5

#: Tracebacks per leaking site whose blocks seed the holder search.
TRACEBACKS_PER_SITE = 4
#: The rule of a site that grew in steps and one of whose holders got
#: longer in the runs after the rounds (see :func:`in_steps`).
IN_STEPS = "in steps"
#: Growing tracebacks of no site whose holders the runner check looks up.
UNSITED_LOOKED_AT = 8
#: The kind of root the hunt's own arguments are.
_ARG = "hunt argument"


class _Rounds:
    """The measurements, one per round (index 0: after the warm-up)."""

    def __init__(self, rounds: int, resolver: SiteResolver) -> None:
        self.n = rounds + 1
        self.index = 0
        self.resolver = resolver
        self.sizes: Dict[Site, List[int]] = {}
        self.counts: Dict[Site, List[int]] = {}
        self.first: Dict[RawTraceback, int] = {}
        self.last: Dict[RawTraceback, int] = {}
        self.traced: List[int] = []
        self.fds: List[int] = []
        self.fd_sets: List[frozenset[int]] = []
        self.collected: List[int] = []
        self.cycle_types: List[Dict[str, int]] = []
        self.garbage: List[int] = []
        #: live bytes per traceback charged to no site (a runner's, the
        #: interpreter caches', leakguard's), after each round
        self.unsited: Dict[RawTraceback, List[int]] = {}
        self.counter = DescriptorCounter()

    def measure(self, cycles: CycleWatch, warned: WarningCapture) -> None:
        i = self.index
        flush_free_lists()
        with unrecorded():
            warned.drain()
        # The type attribute cache keeps a reference to the name of each
        # lookup it caches (4096 slots): names built at run time (getattr with
        # a new str, a codec's method names) fill it slowly, which would read
        # as a small leak at the line that looked them up.
        sys._clear_type_cache()
        freed, types, garbage = cycles.collect(with_types=i > 0)
        with unrecorded():
            warned.drain()
            if i > 0:
                self.collected.append(freed)
                self.cycle_types.append(types)
            self.garbage.append(garbage)
            fds = self.counter.open_fds()
            if i in (0, self.n - 1):
                self.fd_sets.append(fds)
            self.fds.append(len(fds))
            self.traced.append(native.get_traced_memory()[0])
            per_tb = self.first if i == 0 else self.last if i == self.n - 1 else None
            for site, size, count, tb in self._by_site():
                if site is None:
                    unsited = self.unsited.get(tb)
                    if unsited is None:
                        unsited = self.unsited[tb] = [0] * self.n
                    unsited[i] += size
                    continue
                sizes = self.sizes.get(site)
                if sizes is None:
                    sizes = self.sizes[site] = [0] * self.n
                    self.counts[site] = [0] * self.n
                sizes[i] += size
                self.counts[site][i] += count
                if per_tb is not None:
                    per_tb[tb] = size
        flush_free_lists()
        self.index += 1

    def _by_site(self) -> Iterator[Tuple[Optional[Site], int, int, RawTraceback]]:
        """Live bytes and blocks per traceback now (a snapshot), with the
        site each is charged to (None: no site)."""
        snapshot = native.take_snapshot()
        stats = snapshot.statistics("traceback", False)
        del snapshot
        site_of = self.resolver.site
        for size, count, tb in stats:
            yield site_of(tb), size, count, tb

    def together(self, leaving_out: AbstractSet[Site] = frozenset()) -> List[int]:
        """The live bytes of all sites together after each round, but for
        those of ``leaving_out``."""
        return [
            sum(sizes[i] for site, sizes in self.sizes.items() if site not in leaving_out)
            for i in range(self.n)
        ]

    def suspect(self) -> bool:
        """Whether anything grew by the growth rule: a site, all sites
        together, a traceback of no site, the open descriptors or the
        uncollectable garbage. (With the free lists on, an object reused
        from one keeps the traceback its block was first allocated at,
        which may be of no site: a dict the runner freed on its way to the
        test.)"""
        return bool(
            growth_rule(self.together())
            or growth_rule(self.fds)
            or growth_rule(self.garbage)
            or any(growth_rule(sizes) for sizes in self.sizes.values())
            or self.unsited_growing()
        )

    def unsited_growing(self, most: int = 0) -> List[RawTraceback]:
        """The tracebacks of no site that grew by the growth rule, most
        growth first (the ``most`` first; 0: all)."""
        found = [
            (sizes[-1] - sizes[0], tb)
            for tb, sizes in self.unsited.items()
            if growth_rule(sizes) is not None
        ]
        found.sort(key=lambda x: -x[0])
        return [tb for _, tb in found[: most or None]]

    def growing(self) -> List[Tuple[Site, str, List[RawTraceback]]]:
        """Sites that grew by the growth rule, and those that grew in steps
        (rule :data:`IN_STEPS`, see :func:`in_steps`; to be confirmed by their
        holders, :func:`_replacing`), most growth first, each with its
        tracebacks that grew, most first."""
        found = []
        for site, sizes in self.sizes.items():
            rule = growth_rule(sizes)
            if rule is None and in_steps(sizes):
                rule = IN_STEPS
            if rule is not None:
                found.append((sizes[-1] - sizes[0], site, rule))
        found.sort(key=lambda x: (-x[0], x[1]))
        by_site: Dict[Site, List[Tuple[int, RawTraceback]]] = {site: [] for _, site, _ in found}
        for tb, size in self.last.items():
            tb_site = self.resolver.site(tb)
            bucket = by_site.get(tb_site) if tb_site is not None else None
            if bucket is not None:
                grew = size - self.first.get(tb, 0)
                if grew > 0:
                    bucket.append((grew, tb))
        out = []
        for _, site, rule in found:
            tbs = sorted(by_site[site], key=lambda x: -x[0])
            out.append((site, rule, [tb for _, tb in tbs]))
        return out


def hunt(
    func: Callable[..., Any],
    /,
    *args: Any,
    rounds: int = 5,
    warmup: int = 2,
    nframe: int = DEFAULT_NFRAME,
    **kwargs: Any,
) -> LeakReport:
    """Run ``func(*args, **kwargs)`` ``warmup`` times, then ``rounds`` more
    times, measuring after each round; report what grew round after round.
    When something grew, the rounds run again with CPython's free lists off
    (3.10+), each object charged to the line that created it, and the report
    is of those (``report.rerun``).

    Returns a :class:`leakguard.LeakReport`: ``str(report)`` to read,
    ``report.leaks`` / ``.resources`` / ``.cycles`` to inspect,
    ``report.raise_if_leaking()`` to fail. The tracing state is left as it
    was (a traced program keeps tracing, with its own ``nframe``); an
    exception from ``func`` propagates unchanged. ``rounds``, ``warmup`` and
    ``nframe`` are the hunt's own keywords, not passed to ``func``.
    """
    return run_hunt(func, args, kwargs, rounds=rounds, warmup=warmup, nframe=nframe)


def run_hunt(
    func: Callable[..., Any],
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
    *,
    rounds: int,
    warmup: int,
    nframe: int,
    runner: Tuple[str, ...] = (),
    roots: Sequence[Tuple[str, str, object]] = (),
    progress: Optional[Callable[[str, int, int], None]] = None,
) -> LeakReport:
    """:func:`hunt`, for callers that run the rounds from inside other
    machinery: ``runner`` names its top-level packages
    (:data:`~.sites.RUNNER_PACKAGES`). What they allocate is left out, as
    leakguard's own allocations are, and sites held only through them go to
    ``report.runner_held``. ``roots`` names more roots for the holder search,
    as ``(kind, label, value)``: objects the runner keeps that are the
    program's all the same (a fixture shared by many tests).

    ``progress(stage, done, total)``, if given, is called before each run of
    ``func`` and when a stage is over, with ``stage`` ``"warmup"``,
    ``"rounds"``, ``"exact"`` (the rounds run again with exact attribution)
    or ``"analysis"`` and ``done`` out of ``total`` finished;
    what it allocates is not recorded."""
    if not callable(func):
        raise UsageTypeError(f"hunt() needs a callable to run, not {type(func).__name__}")
    rounds = check_count("hunt() argument 'rounds'", rounds, 1)
    warmup = check_count("hunt() argument 'warmup'", warmup, 0)
    started = time.perf_counter()
    with unrecorded():
        resolver = SiteResolver(runner)
    # Under a runner a test may assert on the warnings it raised (pytest's
    # recwarn): they go straight to the runner's handler.
    with WarningCapture(resolver, passthrough=bool(runner)) as warned, CycleWatch() as cycles:
        # The warm-up runs before tracing starts (when the program does not
        # trace already): what it leaves alive is never judged, so it need
        # not be recorded, and it runs at full speed.
        for i in range(warmup):
            _tell(progress, "warmup", i, warmup)
            func(*args, **kwargs)
        if warmup:
            _tell(progress, "warmup", warmup, warmup)
        with TracingSession(nframe, exact=False) as session:
            exact = session.objects
            assert exact is not None
            measured = _measure(func, args, kwargs, rounds, resolver, cycles, warned, progress)
            with unrecorded():
                arguments: List[Tuple[str, str, object]] = [(_ARG, "func", func)]
                arguments += [(_ARG, f"args[{i}]", a) for i, a in enumerate(args)]
                arguments += [(_ARG, f"kwargs[{k!r}]", v) for k, v in kwargs.items()]
                arguments += roots
            analysed: Optional[_Analysis] = None
            exact_rounds = exact.possible and measured.suspect()
            if exact_rounds and runner:
                # Under a test runner most growth is the runner's own (a
                # report kept per subtest): when all of it is, the first
                # rounds stand.
                with unrecorded():
                    analysed = _analyse(measured, arguments, runner, unsited=True)
                    exact_rounds = not analysed.runner_only(measured)
            if exact_rounds:
                # Something grew with the free lists on, where a reused
                # object keeps the line of its block's first allocation:
                # the rounds again, each object charged to its own line.
                exact.switch()
                measured = _measure(
                    func, args, kwargs, rounds, resolver, cycles, warned, progress, "exact"
                )
                analysed = None
            with unrecorded():
                _tell(progress, "analysis", 0, 1)
                if analysed is None:
                    analysed = _analyse(measured, arguments, runner)
                growing, holders, containers, _ = analysed
                del analysed
            replacing, unconfirmed = _replacing(
                func, args, kwargs, measured, growing, holders, containers
            )
            unconfirmed |= _told_already(growing, holders)
            kept = [i for i, (site, _, _) in enumerate(growing) if site not in unconfirmed]
            growing = [growing[i] for i in kept]
            holders = [holders[i] for i in kept]
            del containers
            with unrecorded():
                report = _report(
                    measured,
                    growing,
                    holders,
                    replacing,
                    session.nframe,
                    rounds,
                    warmup,
                    warned,
                    started,
                    runner,
                    exact_rounds,
                )
                _tell(progress, "analysis", 1, 1)
                return report


class _Analysis(NamedTuple):
    """The growing sites of a set of rounds (see :meth:`_Rounds.growing`),
    the holders of each, and the containers that can grow on each chain."""

    growing: List[Tuple[Site, str, List[RawTraceback]]]
    holders: List[List[Holder]]
    containers: List[List[List[object]]]
    #: holders of the growing tracebacks of no site, when asked for
    unsited: Sequence[List[Holder]] = ()

    def runner_only(self, measured: _Rounds) -> bool:
        """Whether all that grew is held only by what runs the rounds: no
        descriptors or uncollectable garbage grew, every growing site and
        traceback of no site is held by the runner alone, and the other
        sites together did not grow."""
        if growth_rule(measured.fds) or growth_rule(measured.garbage):
            return False
        if not all(chains and all(h.runner for h in chains) for chains in self.unsited):
            return False
        theirs: Set[Site] = set()
        for (site, rule, _), chains in zip(self.growing, self.holders):
            if rule == IN_STEPS:
                continue  # not grown by the rule: judged later, by its holders
            if not chains or not all(h.runner for h in chains):
                return False
            theirs.add(site)
        return growth_rule(measured.together(theirs)) is None


def _analyse(
    measured: _Rounds,
    arguments: List[Tuple[str, str, object]],
    runner: Tuple[str, ...],
    unsited: bool = False,
) -> _Analysis:
    """The growing sites of ``measured`` and what holds them; with
    ``unsited``, also what holds the growing tracebacks of no site (the
    :data:`UNSITED_LOOKED_AT` that grew most)."""
    growing = measured.growing()
    extra = [[tb] for tb in measured.unsited_growing(UNSITED_LOOKED_AT)] if unsited else []
    containers: List[List[List[object]]] = []
    holders = find_holders(
        [tbs[:TRACEBACKS_PER_SITE] for _, _, tbs in growing] + extra,
        arguments,
        HOLDER_BUDGET,
        runner,
        containers,
    )
    n = len(growing)
    return _Analysis(growing, holders[:n], containers[:n], holders[n:])


def _measure(
    func: Callable[..., Any],
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
    rounds: int,
    resolver: SiteResolver,
    cycles: CycleWatch,
    warned: WarningCapture,
    progress: Optional[Callable[[str, int, int], None]],
    stage: str = "rounds",
) -> _Rounds:
    """Measures, then runs ``func`` and measures again, ``rounds`` times."""
    with unrecorded():
        measured = _Rounds(rounds, resolver)
    measured.measure(cycles, warned)
    for i in range(rounds):
        _tell(progress, stage, i, rounds)
        func(*args, **kwargs)
        measured.measure(cycles, warned)
    _tell(progress, stage, rounds, rounds)
    return measured


def _tell(
    progress: Optional[Callable[[str, int, int], None]], stage: str, done: int, total: int
) -> None:
    if progress is not None:
        with unrecorded():
            progress(stage, done, total)


#: Runs of ``func`` after the rounds, at least, to tell a full cache that
#: replaces its entries from a leak (see :func:`_replacing`); as many as half
#: the rounds when that is more (the rarest leak the growth rule accepts).
EXTRA_RUNS = 2


def in_steps(sizes: Sequence[int]) -> bool:
    """Whether a series that no growth rule accepts may be a buffer that
    grows in place: it never fell and it grew after the first round. One
    buffer (a bytearray, a 3.12+ StringIO's text, the item array of a list
    of small ints) that takes a little more on each call is reallocated
    only now and then, with room to spare, so its bytes grow in ever longer
    steps; a cache filling up does the same. Such a site is a leak when a
    container holding its objects gets longer in the runs after the rounds."""
    deltas = [b - a for a, b in zip(sizes, sizes[1:])]
    return len(deltas) >= 2 and all(d >= 0 for d in deltas) and sizes[-1] > sizes[1]


def _told_already(
    growing: List[Tuple[Site, str, List[RawTraceback]]], holders: List[List[Holder]]
) -> Set[Site]:
    """The sites that grew in steps whose every chain leads to a container
    that a chain of a site grown by the rule runs through: the item array
    of the list a leak's objects are appended to says nothing the leak's
    own site does not (``HISTORY (list) → [11] → dict`` already names
    ``HISTORY``)."""
    others = [
        h for (_, rule, _), chains in zip(growing, holders) if rule != IN_STEPS for h in chains
    ]
    told = set()
    for (site, rule, _), chains in zip(growing, holders):
        if (
            rule == IN_STEPS
            and chains
            and all(
                any(
                    o.root == h.root
                    and len(o.steps) > len(h.steps)
                    and o.steps[: len(h.steps)] == h.steps
                    for o in others
                )
                for h in chains
            )
        ):
            told.add(site)
    return told


def _lengths(objects: Dict[int, Any]) -> Dict[int, Tuple[int, int]]:
    """Length (see :func:`.holders.content_length`) and reference count of
    each object. Called with the same references to them alive each time,
    so that the counts compare."""
    return {key: (content_length(obj), sys.getrefcount(obj)) for key, obj in objects.items()}


def _replacing(
    func: Callable[..., Any],
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
    measured: _Rounds,
    growing: List[Tuple[Site, str, List[RawTraceback]]],
    holders: List[List[Holder]],
    containers: List[List[List[object]]],
) -> Tuple[Set[Site], Set[Site]]:
    """The growing sites that are caches replacing their entries or that
    have just filled (and their bookkeeping, see :func:`_bookkeeping_of`),
    not leaks; and the sites that grew in steps (:data:`IN_STEPS`) that are
    no leak either, reported as nothing.

    A cache that was full before tracing began (filled at import, or in the
    warm-up) and replaces its entries looks like a leak to the rounds: the
    entries it drops were never traced, the ones it adds are, so its line
    grows round after round until the whole cache has turned over. So does
    one that fills up during the rounds (a ring that comes round in the
    last of them). What tells them from a leak is the holder: a leak's
    objects are held by a container that grows with them. So for the sites
    each of whose holder chains goes through containers that can grow
    (``containers``, from :func:`.holders.find_holders`), ``func`` runs
    ``EXTRA_RUNS`` more times, or half the rounds when that is more (a leak
    every k rounds, the rarest the growth rule accepts, grows its container
    within k runs). A site one of whose containers got longer or lost a
    reference (``items = items + [x]`` replaces the list) in those runs
    stays a leak; the others are not leaks.

    A site that grew in steps is a leak only when, in the same runs, a
    container on one of its chains got longer (the bytearray whose buffer
    grew, the list whose item array did): the others were a cache filling
    up, or a buffer that is reused."""
    suspects: Dict[Site, List[int]] = {}
    objects: Dict[int, Any] = {}
    steps: Set[Site] = set()
    unconfirmed: Set[Site] = set()
    for (site, rule, _), chains, on_chains in zip(growing, holders, containers):
        if rule == IN_STEPS:
            held = chains and not any(h.bounded or h.runner for h in chains)
            if not held or not any(on_chains):
                unconfirmed.add(site)
                continue
            steps.add(site)
        elif not chains or any(h.bounded or h.runner for h in chains):
            continue
        elif not (on_chains and all(on_chains)):
            continue
        suspects[site] = [id(obj) for chain in on_chains for obj in chain]
        objects.update((id(obj), obj) for chain in on_chains for obj in chain)
    if not suspects:
        return set(), unconfirmed
    with unrecorded():
        # The analysis's own references to the containers (the holder
        # search's nodes, in cycles) go first: count from here.
        gc.collect()
        before = _lengths(objects)
    for _ in range(max(EXTRA_RUNS, (measured.n - 1) // 2)):
        func(*args, **kwargs)
        with unrecorded():
            sys._clear_type_cache()  # as after each round
            gc.collect()
            after = _lengths(objects)
            for site, keys in list(suspects.items()):
                longer = any(after[k][0] > before[k][0] for k in keys)
                replaced = any(after[k][1] < before[k][1] for k in keys)
                if longer or (replaced and site not in steps):
                    del suspects[site]  # its holder grew with it, or was replaced: a leak
            if not suspects:
                break
    # Their holders neither grew nor were replaced in any of the runs.
    replacing = set(suspects) - steps
    unconfirmed |= set(suspects) & steps
    with unrecorded():
        return replacing | _bookkeeping_of(measured, growing, holders, replacing), unconfirmed


def _bookkeeping_of(
    measured: _Rounds,
    growing: List[Tuple[Site, str, List[RawTraceback]]],
    holders: List[List[Holder]],
    replacing: Set[Site],
) -> Set[Site]:
    """Growing sites that no Python object refers to (a C structure's own
    memory, such as ``OrderedDict``'s linked-list nodes) whose block count
    grew, round after round, by exactly as many blocks as a replacing
    cache's: that cache's bookkeeping."""
    if not replacing:
        return set()

    def steps(site: Site) -> Tuple[int, ...]:
        counts = measured.counts[site]
        return tuple(b - a for a, b in zip(counts, counts[1:]))

    patterns = {steps(site) for site in replacing}
    return {
        site
        for (site, _, _), chains in zip(growing, holders)
        if not chains and steps(site) in patterns
    }


def _report(
    measured: _Rounds,
    growing: List[Tuple[Site, str, List[RawTraceback]]],
    holders: List[List[Holder]],
    replacing: Set[Site],
    nframe: int,
    rounds: int,
    warmup: int,
    warned: WarningCapture,
    started: float,
    runner: Tuple[str, ...],
    rerun: bool,
) -> LeakReport:
    leaks: List[LeakSite] = []
    bounded: List[LeakSite] = []
    runner_held: List[LeakSite] = []
    for (site, rule, tbs), chains in zip(growing, holders):
        filename, lineno = site
        top: Optional[RawTraceback] = tbs[0] if tbs else None
        leak = LeakSite(
            filename=filename,
            lineno=lineno,
            line=source_line(filename, lineno),
            traceback=Traceback(top if top is not None else (site,)),
            sizes=tuple(measured.sizes[site]),
            counts=tuple(measured.counts[site]),
            rule=rule,
            holders=tuple(chains),
        )
        if chains and all(h.runner for h in chains):
            runner_held.append(leak)
        elif (chains and all(h.bounded for h in chains)) or site in replacing:
            bounded.append(leak)
        else:
            leaks.append(leak)
    fd_rule = growth_rule(measured.fds) if measured.counter.directory else None
    leaked_fds: Tuple[Any, ...] = ()
    if len(measured.fd_sets) == 2:
        first, last = measured.fd_sets
        leaked_fds = leaked_descriptors(measured.counter, first, last, measured.resolver)
    resources = ResourceReport(
        fds=tuple(measured.fds) if measured.counter.directory else (),
        rule=fd_rule,
        leaked=leaked_fds,
        warnings=warned.records(),
    )
    cycles = CycleReport(
        collected=tuple(measured.collected),
        types=tuple(measured.cycle_types),
        uncollectable=tuple(measured.garbage),
        uncollectable_types=count_types(gc.garbage[measured.garbage[0] : measured.garbage[-1]]),
        rule=growth_rule(measured.garbage),
    )
    return LeakReport(
        rounds=rounds,
        warmup=warmup,
        nframe=nframe,
        duration=time.perf_counter() - started,
        traced=tuple(measured.traced),
        leaks=tuple(leaks),
        bounded=tuple(bounded),
        resources=resources,
        cycles=cycles,
        runner_held=tuple(runner_held),
        rerun=rerun,
    )
