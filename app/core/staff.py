"""Agents and desks: one state per subject at every instant, and the seconds spent in each, per queue.

A subject (an agent on the phone channel, a desk on the visit channel) keeps its events sorted by time.
Walking them through a small state machine gives a timeline of change points, each with the state per
queue the subject is logged into and running sums of the seconds spent so far; the seconds over any
window are then two look-ups per queue, counted to the second and including the segment in progress.
An event in time order extends the walk; one out of order re-walks that subject from its base (the
state folded from events older than two days), so the states never depend on the order events came in.

The state of a subject, by the published precedence (README, "Agents and desks"):
offline (logged into no queue) < available < ringing < on_contact < after_contact_work. Paused is kept
apart, per queue: a pause asked for during a contact or its after-contact work begins when that ends,
and an agent paused in every queue it is logged into is paused. Staff ids are the source's ids.
"""

from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass, field
from typing import Any, Literal

from app.core.clock import INTERVAL_SECONDS, interval_start
from app.core.events import Channel, Event
from app.core.kpis import Tally
from app.core.series import ROLLING_SECONDS, WindowName

StateName = Literal["offline", "available", "ringing", "on_contact", "after_contact_work", "paused"]
OFFLINE: StateName = "offline"
AVAILABLE: StateName = "available"
RINGING: StateName = "ringing"
ON_CONTACT: StateName = "on_contact"
AFTER_CONTACT_WORK: StateName = "after_contact_work"
PAUSED: StateName = "paused"
# Lowest first: a subject doing several things at once shows the highest of them (paused stands apart).
PRECEDENCE: tuple[StateName, ...] = (OFFLINE, AVAILABLE, RINGING, ON_CONTACT, AFTER_CONTACT_WORK)
STATES: tuple[StateName, ...] = (*PRECEDENCE, PAUSED)
# The key of a pause given without a reason, in paused_by_reason.
NO_REASON = "unspecified"
# A contact whose finish never comes (a lost hang-up) stops holding its agent on contact after this long,
# the window's default maximum wait: the same bound within which a contact's events are expected.
CONTACT_CAP_SECONDS = 4 * 3600.0
# Steps older than this before the latest time seen are folded into the subject's base state and
# forgotten (the window's default maximum wait: a contact's events are expected within it); a staff
# event that late is ignored. The timeline they made is kept for two days: today's figures and the
# rollup of today and yesterday (app/core/series.py INTERVALS_KEPT_SECONDS) read it to the second.
FOLD_AFTER_SECONDS = 4 * 3600.0
FORGET_AFTER_SECONDS = 2 * 25 * 3600.0
# How far back a replay reads staff events (app/db/replay.py), so agents logged in since before
# midnight, or since yesterday, are logged in after a restart. A session older than this is lost.
STAFF_REPLAY_SECONDS = 7 * 86_400.0
# How often (in steps) a subject marks where a re-walk may resume.
MARK_EVERY = 64
# How many old steps wait to be folded into a subject's base state together (Subject.fold).
FOLD_BATCH_STEPS = 4 * MARK_EVERY

# Step kinds, in the order steps of the same instant are taken (then by queue and detail): whatever came in
# first, the same events give the same states. A logout comes before a login of the same second, so a
# source that ends every session and starts them again at once (Asterisk's QUEUESTART, then its
# ADDMEMBER lines) leaves the members logged in.
LOGOUT, LOGIN, RING, START, FINISH, UNSERVED, READY, PAUSE, RESUME = range(9)
STAFF_KINDS: dict[str, int] = {
    "agent.logged_in": LOGIN,
    "desk.opened": LOGIN,
    "agent.ringing": RING,
    "agent.ready": READY,
    "agent.paused": PAUSE,
    "agent.resumed": RESUME,
    "agent.logged_out": LOGOUT,
    "desk.closed": LOGOUT,
}
# Contact events that end the service of the subject that started it; served ones count as handled.
FINISH_KINDS: dict[str, int] = {
    "call.ended": FINISH,
    "call.transferred": FINISH,
    "call.cleared": UNSERVED,
    "ticket.completed": FINISH,
    "ticket.no_show": UNSERVED,
    "ticket.cleared": UNSERVED,
}
START_TYPES = frozenset({"call.answered", "ticket.called"})

# (at, kind, queue, the pause's reason or the contact's id, source), "" for a field not given: steps of one
# instant are taken in this order, so the same events give the same states whatever order they came in.
Step = tuple[float, int, str, str, str]
# Per key (None: the subject as a whole; else a queue): (state, reason).
Vector = tuple[tuple[str | None, StateName, str | None], ...]
# Running seconds: staffed, available, handling (on contact + after-contact work), paused.
Sums = tuple[float, float, float, float]
ZERO: Sums = (0.0, 0.0, 0.0, 0.0)
_RATES: dict[str, Sums] = {
    OFFLINE: ZERO,
    AVAILABLE: (1.0, 1.0, 0.0, 0.0),
    RINGING: (1.0, 0.0, 0.0, 0.0),
    ON_CONTACT: (1.0, 0.0, 1.0, 0.0),
    AFTER_CONTACT_WORK: (1.0, 0.0, 1.0, 0.0),
    PAUSED: (1.0, 0.0, 0.0, 1.0),
}


@dataclass(slots=True)
class StaffFigures:
    # now
    staffed: int = 0
    available: int = 0
    ringing: int = 0
    on_contact: int = 0
    after_contact_work: int = 0
    paused: int = 0
    paused_by_reason: dict[str, int] = field(default_factory=dict)
    # over the window (15m / 1h / today), to the second, segments in progress counted up to now
    staffed_seconds: float = 0.0
    available_seconds: float = 0.0
    handling_seconds: float = 0.0
    paused_seconds: float = 0.0
    contacts_handled: int = 0
    occupancy: float | None = None
    utilisation: float | None = None
    contacts_per_agent_hour: float | None = None

    def count(self, state: StateName, reason: str | None) -> None:
        if state is OFFLINE:
            return
        self.staffed += 1
        if state is AVAILABLE:
            self.available += 1
        elif state is RINGING:
            self.ringing += 1
        elif state is ON_CONTACT:
            self.on_contact += 1
        elif state is AFTER_CONTACT_WORK:
            self.after_contact_work += 1
        else:
            self.paused += 1
            key = reason or NO_REASON
            self.paused_by_reason[key] = self.paused_by_reason.get(key, 0) + 1

    def add_seconds(self, sums: Sums) -> None:
        self.staffed_seconds += sums[0]
        self.available_seconds += sums[1]
        self.handling_seconds += sums[2]
        self.paused_seconds += sums[3]

    def finish(self) -> None:
        """The ratios from the seconds: None wherever there is no time to divide by."""
        busy_or_free = self.handling_seconds + self.available_seconds
        self.occupancy = self.handling_seconds / busy_or_free if busy_or_free > 0 else None
        staffed = self.staffed_seconds
        self.utilisation = self.handling_seconds / staffed if staffed > 0 else None
        self.contacts_per_agent_hour = self.contacts_handled / (staffed / 3600) if staffed > 0 else None


@dataclass(slots=True)
class StaffChannel:
    total: StaffFigures
    queues: dict[str, StaffFigures]


@dataclass(slots=True)
class AgentState:
    channel: Channel
    subject: str  # agent id or desk id
    state: StateName
    reason: str | None
    queues: tuple[str, ...]
    since: float


@dataclass(slots=True)
class StaffSnapshot:
    window: WindowName
    as_of: float
    channels: dict[str, StaffChannel]  # "phone" (agents) and "visit" (desks)


class _State:
    """What the machine knows of a subject at one instant."""

    __slots__ = ("active", "acw_until", "paused", "pending", "queues", "ringing", "views")

    def __init__(self) -> None:
        # queue -> (since, source) of each membership in force
        self.queues: dict[str, tuple[float, str | None]] = {}
        # queue -> reason: pauses in force, and pauses asked for during work (they begin when it ends).
        self.paused: dict[str, str | None] = {}
        self.pending: dict[str, str | None] = {}
        # contact id -> when its service started
        self.active: dict[str, float] = {}
        self.acw_until: float | None = None
        self.ringing = False
        # The vector for each kind of work (None: none), built once while the memberships and pauses stand:
        # most steps (a contact starting or ending) change only the work, and the walk tells a changed vector
        # by identity. Whatever changes a membership or a pause binds a new dict (never clears this one), so
        # a copy may share it.
        self.views: dict[StateName | None, Vector] = {}

    def copy(self) -> _State:
        other = _State()
        other.queues, other.paused, other.pending = dict(self.queues), dict(self.paused), dict(self.pending)
        other.active, other.acw_until, other.ringing = dict(self.active), self.acw_until, self.ringing
        other.views = self.views
        return other

    def next_timer(self) -> float | None:
        """When the state next changes with no event: a wrap-up ends, or a contact reaches its cap."""
        timer = self.acw_until
        # The first contact is the oldest (take keeps them in the order they started).
        for started in self.active.values():
            cap = started + CONTACT_CAP_SECONDS
            return cap if timer is None or cap < timer else timer
        return timer

    def fire(self, at: float) -> None:
        if self.acw_until is not None and self.acw_until <= at:
            self.acw_until = None
        for contact in [c for c, started in self.active.items() if started + CONTACT_CAP_SECONDS <= at]:
            del self.active[contact]
        self._begin_pending()

    def _begin_pending(self) -> None:
        if self.pending and not self.active and self.acw_until is None:
            self.paused.update(self.pending)
            self.pending.clear()
            self.views = {}

    def take(self, step: Step, wrap_up: float) -> bool:
        """Apply one step; True when it finished a contact this subject was serving."""
        at, kind, queue, detail, source = step
        if kind == START:
            # Kept in the order the contacts started (steps are taken in time order), so the first is the
            # oldest: a contact started again moves to the end.
            self.active.pop(detail, None)
            self.active[detail] = at
            # Taking a new contact ends the wrap-up of the one before.
            self.acw_until = None
            self.ringing = False
        elif kind in (FINISH, UNSERVED):
            active = self.active
            if detail not in active:
                return False
            del active[detail]
            if wrap_up > 0:
                self.acw_until = at + wrap_up
            if self.pending:
                self._begin_pending()
            return kind == FINISH
        elif kind == LOGIN:
            if queue not in self.queues:
                self.queues[queue] = (at, source or None)
            self.paused.pop(queue, None)
            self.pending.pop(queue, None)
            self.views = {}
        elif kind == LOGOUT:
            self.queues.pop(queue, None)
            self.paused.pop(queue, None)
            self.pending.pop(queue, None)
            self.views = {}
            if not self.queues:
                self.ringing = False
        elif kind == PAUSE:
            if queue in self.queues:
                if self.active or self.acw_until is not None:
                    self.pending[queue] = detail or None
                else:
                    self.paused[queue] = detail or None
                    self.views = {}
                    self.ringing = False
        elif kind == RESUME:
            self.paused.pop(queue, None)
            self.pending.pop(queue, None)
            self.views = {}
        elif kind == RING:
            if self.queues:
                self.ringing = True
        else:  # READY
            self.acw_until = None
            self.ringing = False
            self._begin_pending()
        return False

    def vector(self) -> Vector:
        if not self.queues:
            return _OFFLINE_VECTOR
        if self.acw_until is not None:
            busy: StateName | None = AFTER_CONTACT_WORK
        elif self.active:
            busy = ON_CONTACT
        elif self.ringing:
            busy = RINGING
        else:
            busy = None
        found = self.views.get(busy)
        if found is None:
            found = self.views[busy] = self._build(busy)
        return found

    def _build(self, busy: StateName | None) -> Vector:
        if busy is not None:
            overall: tuple[str | None, StateName, str | None] = (None, busy, None)
            return (overall, *((queue, busy, None) for queue in sorted(self.queues)))
        paused = self.paused
        per_queue = tuple(
            (queue, PAUSED, paused[queue]) if queue in paused else (queue, AVAILABLE, None)
            for queue in sorted(self.queues)
        )
        if all(state is PAUSED for _, state, _ in per_queue):
            reasons = sorted({reason or "" for _, _, reason in per_queue})
            overall = (None, PAUSED, reasons[0] or None)
        else:
            overall = (None, AVAILABLE, None)
        return (overall, *per_queue)


_OFFLINE_VECTOR: Vector = ((None, OFFLINE, None),)


def _share(vector: Vector, key: str | None) -> float:
    """The part of a subject's time a key gets: all of it for the subject itself; an equal share for each
    queue it is logged into, so the queues' seconds add up to the channel total."""
    return 1.0 if key is None else 1.0 / (len(vector) - 1)


def _advance(cum: list[float], slots: dict[str | None, int], vector: Vector, seconds: float) -> list[float]:
    """A point's running sums (`cum`, moved on in place) `seconds` later in the vector; a key new to the
    timeline is given a slot."""
    moved = cum
    for key, state, _ in vector:
        rate = _RATES[state]
        if rate is ZERO:
            continue
        slot = slots.get(key)
        if slot is None:
            slot = slots[key] = len(slots)
        first = 4 * slot
        if len(moved) <= first:
            moved.extend([0.0] * (first + 4 - len(moved)))
        part = seconds * _share(vector, key)
        moved[first] += rate[0] * part
        moved[first + 1] += rate[1] * part
        moved[first + 2] += rate[2] * part
        moved[first + 3] += rate[3] * part
    return moved


class Timeline:
    """Change points of one subject: when its vector changed, to what, and the running sums there.

    The running sums of every point are in one array of floats, back to back: four per key (None: the
    subject; else a queue) at the key's slot, from where the point's start. No object per point, where a
    dict of tuples per point, kept for two days, was several for the garbage collector to count and trace
    (see Steps)."""

    __slots__ = ("handled", "queues", "sinces", "slots", "starts", "sums", "times", "vectors")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.vectors: list[Vector] = []
        # Where each point's running sums start in `sums` (they end where the next point's start).
        self.starts: array[int] = array("q")
        self.sums: array[float] = array("d")
        # key -> its slot in every point's sums (a point made before a key had one is shorter: 0 there).
        self.slots: dict[str | None, int] = {}
        # When the subject's own (state, reason) last changed, at each point.
        self.sinces: list[float] = []
        # The finish time of each contact served, per queue of the contact, in time order.
        self.handled: dict[str, array[float]] = {}
        # Every queue the timeline names.
        self.queues: set[str] = set()

    def emit(self, at: float, vector: Vector) -> None:
        times, vectors, sinces = self.times, self.vectors, self.sinces
        if times and at == times[-1]:
            # A second change in one instant: the later one stands (the running sums there are the same).
            if len(times) > 1 and vectors[-2] == vector:
                times.pop()
                vectors.pop()
                del self.sums[self.starts.pop() :]
                sinces.pop()
                return
            if len(times) > 1 and vectors[-2][0] == vector[0]:
                sinces[-1] = sinces[-2]
            else:
                sinces[-1] = at
            vectors[-1] = vector
            self.queues.update(key for key, _, _ in vector if key is not None)
            return
        if times:
            last = vectors[-1]
            if last == vector:
                return
            sums = self.sums
            cum = _advance(sums[self.starts[-1] :].tolist(), self.slots, last, at - times[-1])
            since = sinces[-1] if last[0] == vector[0] else at
        else:
            cum, since = [], at
        if len(vector) > 1:
            self.queues.update(key for key, _, _ in vector if key is not None)
        times.append(at)
        vectors.append(vector)
        self.starts.append(len(self.sums))
        self.sums.extend(cum)
        sinces.append(since)

    def _keep_first(self, keep: int) -> None:
        if keep < len(self.starts):
            del self.sums[self.starts[keep] :]
        del self.times[keep:], self.vectors[keep:], self.starts[keep:], self.sinces[keep:]

    def truncate(self, at: float) -> None:
        """Forget the points from `at` on, and the contacts handled since (they are walked again)."""
        self._keep_first(bisect.bisect_left(self.times, at))
        for times in self.handled.values():
            del times[bisect.bisect_left(times, at) :]

    def truncate_after(self, at: float) -> None:
        """Forget the points later than `at`, and the contacts handled later (they are walked again)."""
        self._keep_first(bisect.bisect_right(self.times, at))
        for times in self.handled.values():
            del times[bisect.bisect_right(times, at) :]

    def trim(self, before: float) -> None:
        """Forget the points before `before` but the one in force then (its running sums go on)."""
        drop = max(0, bisect.bisect_right(self.times, before) - 1)
        if drop:
            offset = self.starts[drop]
            del self.sums[:offset]
            self.starts = array("q", [start - offset for start in self.starts[drop:]])
            del self.times[:drop], self.vectors[:drop], self.sinces[:drop]
        for times in self.handled.values():
            del times[: bisect.bisect_left(times, before)]

    def value(self, key: str | None, at: float) -> Sums:
        index = bisect.bisect_right(self.times, at) - 1
        if index < 0:
            return ZERO
        starts, sums, slot = self.starts, self.sums, self.slots.get(key)
        end = starts[index + 1] if index + 1 < len(starts) else len(sums)
        first = -1 if slot is None else starts[index] + 4 * slot
        if first < 0 or first >= end:
            s = ZERO
        else:
            s = (sums[first], sums[first + 1], sums[first + 2], sums[first + 3])
        vector = self.vectors[index]
        for vkey, state, _ in vector:
            if vkey == key:
                rate, seconds = _RATES[state], (at - self.times[index]) * _share(vector, key)
                return (
                    s[0] + rate[0] * seconds,
                    s[1] + rate[1] * seconds,
                    s[2] + rate[2] * seconds,
                    s[3] + rate[3] * seconds,
                )
        return s

    def keys(self) -> set[str]:
        return set(self.queues)


def _between(early: Sums, late: Sums) -> Sums:
    return (late[0] - early[0], late[1] - early[1], late[2] - early[2], late[3] - early[3])


class Steps:
    """A subject's steps in the order they are taken: by time, then kind, queue and detail (Step's order).

    Kept as columns, not as a list of Step tuples: a tuple per step, kept for hours, is one more object per
    contact start and finish for the garbage collector to count, and its collections then trace the whole
    window more often (a replay measurably so). A step is read back as a tuple where one is needed."""

    __slots__ = ("ats", "details", "kinds", "queues", "sources")

    def __init__(self) -> None:
        self.ats = array("d")
        self.kinds = array("b")
        self.queues: list[str] = []
        self.details: list[str] = []
        self.sources: list[str] = []

    def __len__(self) -> int:
        return len(self.ats)

    def __getitem__(self, index: int) -> Step:
        return (
            self.ats[index],
            self.kinds[index],
            self.queues[index],
            self.details[index],
            self.sources[index],
        )

    def add(self, step: Step) -> int:
        """Insert the step in order (after any equal one); its position."""
        at, kind, queue, detail, source = step
        ats = self.ats
        count = len(ats)
        if count and at <= ats[-1] and (at < ats[-1] or step < self[count - 1]):
            # Out of order: after the steps of earlier times, and after the same instant's that sort before.
            position = bisect.bisect_left(ats, at)
            end = bisect.bisect_right(ats, at)
            rest = step[1:]
            kinds, queues, details, sources = self.kinds, self.queues, self.details, self.sources
            while (
                position < end
                and (kinds[position], queues[position], details[position], sources[position]) <= rest
            ):
                position += 1
            ats.insert(position, at)
            kinds.insert(position, kind)
            queues.insert(position, queue)
            details.insert(position, detail)
            sources.insert(position, source)
            return position
        ats.append(at)
        self.kinds.append(kind)
        self.queues.append(queue)
        self.details.append(detail)
        self.sources.append(source)
        return count

    def before(self, at: float) -> int:
        """How many steps are older than `at`."""
        return bisect.bisect_left(self.ats, at)

    def between(self, first: int, end: int) -> list[Step]:
        return [self[index] for index in range(first, end)]

    def forget_first(self, count: int) -> None:
        del (
            self.ats[:count],
            self.kinds[:count],
            self.queues[:count],
            self.details[:count],
            self.sources[:count],
        )

    def forget_queue(self, queue: str) -> None:
        kept = [index for index, named in enumerate(self.queues) if named != queue]
        self.ats = array("d", [self.ats[index] for index in kept])
        self.kinds = array("b", [self.kinds[index] for index in kept])
        self.queues = [self.queues[index] for index in kept]
        self.details = [self.details[index] for index in kept]
        self.sources = [self.sources[index] for index in kept]

    def queues_after(self, at: float) -> set[str]:
        return set(self.queues[bisect.bisect_right(self.ats, at) :])


class Subject:
    """One agent or desk: its recent steps in time order, its base state before them, and its timeline."""

    __slots__ = (
        "base",
        "base_at",
        "base_time",
        "channel",
        "dirty_from",
        "ident",
        "keyed",
        "keys",
        "line",
        "marks",
        "stale_from",
        "state",
        "steps",
        "walked",
        "wrap_up",
    )

    def __init__(self, channel: Channel, ident: str, wrap_up: float) -> None:
        self.channel, self.ident, self.wrap_up = channel, ident, wrap_up
        self.steps = Steps()
        # Steps older than base_at are refused (folded, as far as the figures go). The base state is the
        # state at base_time, the steps before it folded in; it may lag base_at by up to FOLD_BATCH_STEPS
        # steps, folded in later in one go (settle does it at once where a reader needs it).
        self.base = _State()
        self.base_at = float("-inf")
        self.base_time = float("-inf")
        self.state = _State()
        self.line = Timeline()
        # How many of the steps (from the first) the state and the timeline have walked. Steps are taken in
        # as they come and walked when the subject is next read or folded (fresh), all at once: the replay
        # and busy ingest walk a subject's steps of several minutes in one go rather than one call each.
        self.walked = 0
        # A step came in out of order among the walked ones, as early as this: the timeline is re-walked
        # from there when next fresh, once however many came.
        self.stale_from: float | None = None
        # Every MARK_EVERY steps, where to resume a walk: (time of the step before, index of the step, the
        # state before it). A step a little out of order re-walks from the last mark before it, not the
        # whole day; the timeline up to the mark's time is what the steps before it made.
        self.marks: list[tuple[float, int, _State]] = []
        # The (channel, queue) keys of the queues its timeline names, and how many it named when they were
        # built (StaffBook._take marks them changed at every step).
        self.keys: tuple[tuple[Channel, str], ...] = ()
        self.keyed = 0
        # The earliest step taken in since StaffBook last marked this subject's queues changed.
        self.dirty_from: float | None = None

    @property
    def stale(self) -> bool:
        return self.stale_from is not None or self.walked < len(self.steps)

    def add(self, step: Step) -> bool:
        """Take a step in (walked when the subject is next fresh); False when it is older than the base
        (folded already). A step given twice (the same event delivered again) changes nothing: every step is
        idempotent."""
        at = step[0]
        if at < self.base_at:
            return False
        position = self.steps.add(step)
        if position < self.walked:
            self.walked += 1
            self.stale_from = at if self.stale_from is None else min(self.stale_from, at)
        return True

    def fresh(self) -> Subject:
        """The subject with its state and timeline up to date: the steps not walked yet walked on, or the
        timeline re-walked from a mark before the earliest step that came out of order."""
        since = self.stale_from
        if since is None:
            if self.walked < len(self.steps):
                self._walk_from(self.walked)
            return self
        self.stale_from = None
        marks = self.marks
        found = bisect.bisect_left(marks, (since,)) - 1
        if found < 0:
            self.rewalk()
            return self
        before, index, state = marks[found]
        del marks[found + 1 :]
        self.state = state.copy()
        self.line.truncate_after(before)
        self._walk_from(index)
        return self

    def _walk_from(self, first: int) -> None:
        """Walk steps[first:] from the state after the step before: the timers due by each step fire first,
        then the step is taken, and a point is emitted where the vector changed. The replay pays this per
        contact start and finish, so the common case is kept short: no timer due (none is looked for when
        nothing is running), and the same vector object as the last point's (a contact starting while
        another is served, anything while logged out) emits nothing."""
        state, line, wrap_up = self.state, self.line, self.wrap_up
        steps = self.steps
        ats, kinds, queues, details, sources = (
            steps.ats,
            steps.kinds,
            steps.queues,
            steps.details,
            steps.sources,
        )
        vectors, active = line.vectors, state.active
        count = len(ats)
        self.walked = count
        for index in range(first, count):
            at = ats[index]
            step = (at, kinds[index], queues[index], details[index], sources[index])
            if index and not index % MARK_EVERY and ats[index - 1] < at:
                marks = self.marks
                if not marks or marks[-1][1] < index:
                    marks.append((ats[index - 1], index, state.copy()))
            # The next timer, as next_timer has it, written out: the first contact is the oldest.
            timer = state.acw_until
            for started in active.values():
                if timer is None or started + CONTACT_CAP_SECONDS < timer:
                    timer = started + CONTACT_CAP_SECONDS
                break
            while timer is not None and timer <= at:
                state.fire(timer)
                line.emit(timer, state.vector())
                timer = state.next_timer()
            if state.take(step, wrap_up):
                handled = line.handled.get(step[2])
                if handled is None:
                    handled = line.handled[step[2]] = array("d")
                handled.append(at)
            vector = state.vector()
            # An equal vector emits nothing (consecutive points always differ), so only a new one is passed.
            if not vectors or vectors[-1] is not vector:
                line.emit(at, vector)

    def rewalk(self) -> None:
        """Walk the steps again from the base; the timeline before the base stays as it was."""
        self.stale_from = None
        self.marks = []
        self.state = self.base.copy()
        self.line.truncate(self.base_time)
        if self.base_time > float("-inf"):
            self.line.emit(self.base_time, self.state.vector())
        self._walk_from(0)

    def fold(self, before: float, forget_before: float) -> None:
        """Refuse steps older than `before` from now on and fold them into the base state (in batches), and
        forget the timeline older than `forget_before` (but the point in force then)."""
        self.fresh()
        self.line.trim(forget_before)
        steps = self.steps
        cut = steps.before(before)
        if cut == 0:
            return
        self.base_at = before
        # Folding re-takes each step, so it waits for a batch (or for every step to be old): a mark near the
        # cut then spares re-taking most of them.
        if cut < len(steps) and cut < FOLD_BATCH_STEPS:
            return
        self._fold_base(cut, before)

    def settle(self) -> Subject:
        """The subject with its base state at base_at, as readers of the base and of the steps expect."""
        self.fresh()
        if self.base_time < self.base_at:
            self._fold_base(self.steps.before(self.base_at), self.base_at)
        return self

    def _fold_base(self, cut: int, before: float) -> None:
        """Fold steps[:cut] (the steps older than `before`) into the base state, which then stands at
        `before`. The subject is fresh."""
        steps, marks = self.steps, self.marks
        # The last mark at or before the cut holds the state the base reaches there: the walk that made it
        # took the same steps from the same base. Its state is taken, not copied: the mark goes below.
        found = bisect.bisect_left(marks, (before,)) - 1
        if found >= 0:
            _, first, base = marks[found]
        else:
            first, base = 0, self.base
        for step in steps.between(first, cut):
            timer = base.next_timer()
            while timer is not None and timer <= step[0]:
                base.fire(timer)
                timer = base.next_timer()
            base.take(step, self.wrap_up)
        timer = base.next_timer()
        while timer is not None and timer <= before:
            base.fire(timer)
            timer = base.next_timer()
        self.base, self.base_time = base, before
        steps.forget_first(cut)
        self.walked = len(steps)
        # The marks count steps from the first one kept.
        self.marks = [(t, index - cut, state) for t, index, state in marks if index - cut > 0]

    def forgettable(self, forget_before: float) -> bool:
        """Offline since before `forget_before`, with nothing kept that could change that."""
        base, line = self.base, self.line
        return (
            not self.steps
            and not base.queues
            and not base.active
            and (not line.times or (line.vectors[-1] is _OFFLINE_VECTOR and line.times[-1] < forget_before))
        )

    def tail(self, now: float) -> Timeline | None:
        """The change points between the last step and `now` that timers make (a wrap-up ending), if any."""
        timer = self.state.next_timer()
        if timer is None or timer > now or not self.line.times:
            return None
        state = self.state.copy()
        extra = Timeline()
        line = self.line
        extra.times, extra.vectors = [line.times[-1]], [line.vectors[-1]]
        extra.starts, extra.sums = array("q", [0]), line.sums[line.starts[-1] :]
        extra.sinces = [line.sinces[-1]]
        # Its own copy: a key the tail gives a slot is no slot of the timeline's.
        extra.slots = dict(line.slots)
        while timer is not None and timer <= now:
            state.fire(timer)
            extra.emit(timer, state.vector())
            timer = state.next_timer()
        return extra

    def value(self, key: str | None, at: float, tail: Timeline | None) -> Sums:
        if tail is not None and at >= tail.times[0]:
            return tail.value(key, at)
        return self.line.value(key, at)

    def now_point(self, now: float, tail: Timeline | None) -> tuple[Vector, float] | None:
        line = tail if tail is not None and now >= tail.times[0] else self.line
        index = bisect.bisect_right(line.times, now) - 1
        if index < 0:
            return None
        return line.vectors[index], line.sinces[index]


_PHONE = Channel.PHONE
INFINITY = float("inf")


class Unclaimed:
    """Finishes that came before the start naming their subject, each kept max_wait for it.

    Every finish of a contact no agent or desk served comes here, so they are kept as columns, with the
    contact's id (the event's own string) as the key: no object per finish (see Steps). A finish's
    `earlier` is the one held before it for the same contact (-1: none). When a contact's first held
    finish expires, all of them go."""

    __slots__ = (
        "ats",
        "base",
        "channels",
        "contacts",
        "earlier",
        "expires",
        "first",
        "kinds",
        "latest",
        "next_expiry",
        "queues",
        "sources",
    )

    def __init__(self) -> None:
        # channel -> contact id -> the index of its latest held finish
        self.latest: dict[Channel, dict[str, int]] = {channel: {} for channel in Channel}
        # Indexes count from the first finish ever held; `base` is the index of the first still in the
        # columns, `first` of the first not expired.
        self.base = 0
        self.first = 0
        # When the first held finish expires (housekeeping looks at this alone, every second).
        self.next_expiry = INFINITY
        self.expires = array("d")
        self.channels: list[Channel] = []
        self.contacts: list[str] = []
        self.ats = array("d")
        self.kinds = array("b")
        self.queues: list[str] = []
        self.sources: list[str] = []
        self.earlier = array("q")

    def hold(
        self, channel: Channel, contact: str, at: float, kind: int, queue: str, source: str, expires: float
    ) -> None:
        latest = self.latest[channel]
        self.earlier.append(latest.get(contact, -1))
        latest[contact] = self.base + len(self.ats)
        if self.next_expiry == INFINITY:
            self.next_expiry = expires
        self.expires.append(expires)
        self.channels.append(channel)
        self.contacts.append(contact)
        self.ats.append(at)
        self.kinds.append(kind)
        self.queues.append(queue)
        self.sources.append(source)

    def take(self, channel: Channel, contact: str) -> list[Step]:
        """The finishes held for the contact, in the order they came, and forget them."""
        index = self.latest[channel].pop(contact, -1)
        found: list[Step] = []
        while index >= 0:
            position = index - self.base
            found.append(
                (
                    self.ats[position],
                    self.kinds[position],
                    self.queues[position],
                    contact,
                    self.sources[position],
                )
            )
            index = self.earlier[position]
        found.reverse()
        return found

    def expire(self, now: float) -> None:
        expires = self.expires
        count, position = len(expires), self.first - self.base
        while position < count and expires[position] < now:
            self.latest[self.channels[position]].pop(self.contacts[position], None)
            position += 1
        self.first = self.base + position
        self.next_expiry = expires[position] if position < count else INFINITY
        # The expired ones leave the columns in bulk, once they are most of them.
        if position > 4096 and 2 * position > count:
            for column in (expires, self.ats, self.kinds, self.earlier):
                del column[:position]
            del (
                self.channels[:position],
                self.contacts[:position],
                self.queues[:position],
                self.sources[:position],
            )
            self.base += position


class StaffBook:
    """Every subject, the contacts they serve, and the readers over them. Pure: `now` is passed in."""

    def __init__(self, wrap_up_seconds: float, max_wait_seconds: float) -> None:
        self.wrap_up = wrap_up_seconds
        self.max_wait = max_wait_seconds
        self.subjects: dict[tuple[Channel, str], Subject] = {}
        # Who serves a contact, from its start event naming an agent or desk.
        # Per channel, by contact id (no key tuple per contact: see Steps).
        self.serving: dict[Channel, dict[str, Subject]] = {channel: {} for channel in Channel}
        # Finishes that came before the start naming their subject, kept max_wait for it.
        self.unclaimed = Unclaimed()
        # The latest time seen: segments in progress are counted up to it where no `now` is given.
        self.now = 0.0
        # The queues whose staff seconds changed since the rollup last took them, from when on; the subjects
        # with steps taken in since they were last marked there (_flush, before either is read).
        self.changed: dict[tuple[Channel, str], float] = {}
        self.dirty: list[Subject] = []
        self.taken_at: float | None = None
        # Every (channel, queue) a subject's timeline names (read through `known`, which flushes first).
        self._known: set[tuple[Channel, str]] = set()
        # Retired queues (drop_queue): older points of a timeline may still name them; readers skip them.
        self.dropped: set[tuple[Channel, str]] = set()

    def _subject(self, channel: Channel, ident: str) -> Subject:
        key = (channel, ident)
        subject = self.subjects.get(key)
        if subject is None:
            subject = self.subjects[key] = Subject(channel, ident, self.wrap_up)
        return subject

    def _take(self, subject: Subject, step: Step) -> None:
        if subject.add(step):
            # Every queue the subject's timeline names changed from this step on: marked when the steps are
            # walked (_flush), from the earliest of them.
            at = step[0]
            earliest = subject.dirty_from
            if earliest is None:
                subject.dirty_from = at
                self.dirty.append(subject)
            elif at < earliest:
                subject.dirty_from = at
            if step[1] == LOGIN:
                # A queue new to the subject is known at once (the window asks before anything is walked).
                key = (subject.channel, step[2])
                self._known.add(key)
                earlier = self.changed.get(key)
                self.changed[key] = at if earlier is None else min(earlier, at)

    def _flush(self) -> None:
        """Walk the subjects with steps taken in since the last flush, and mark every queue each one's
        timeline names changed from the earliest of those steps on (and known)."""
        if not self.dirty:
            return
        changed, known = self.changed, self._known
        for subject in self.dirty:
            at = subject.dirty_from
            subject.dirty_from = None
            if at is None:
                continue
            named = subject.fresh().line.queues
            # The keys are built again only when the timeline names a new queue (or drop_queue asks).
            if len(named) != subject.keyed:
                subject.keys = tuple((subject.channel, queue) for queue in named)
                subject.keyed = len(named)
                known.update(subject.keys)
            for key in subject.keys:
                earlier = changed.get(key)
                if earlier is None or at < earlier:
                    changed[key] = at
        self.dirty = []

    @property
    def known(self) -> set[tuple[Channel, str]]:
        """Every (channel, queue) a subject's timeline names: the queues with staff seconds to roll up."""
        self._flush()
        return self._known

    def apply_staff(self, event: Event, channel: Channel, now: float) -> None:
        """A staff event: its contact_id is the subject (the agent or desk)."""
        if now > self.now:
            self.now = now
        step = (event.at, STAFF_KINDS[event.type], event.queue, event.reason or "", event.source or "")
        self._take(self._subject(channel, event.contact_id), step)

    def contact_start(self, event: Event, channel: Channel, now: float) -> None:
        """A contact's start naming its agent or desk."""
        ident = event.agent if channel is _PHONE else event.desk
        if ident is None:
            return
        if now > self.now:
            self.now = now
        subject = self.subjects.get((channel, ident))
        if subject is None:
            subject = self.subjects[(channel, ident)] = Subject(channel, ident, self.wrap_up)
        contact = event.contact_id
        self.serving[channel][contact] = subject
        self._take(subject, (event.at, START, event.queue, contact, event.source or ""))
        if self.unclaimed.latest[channel]:
            for finish in self.unclaimed.take(channel, contact):
                self._take(subject, finish)

    def contact_finish(self, event: Event, channel: Channel, now: float) -> None:
        contact = event.contact_id
        # Popped at once: a finish ends the service (a second start of the contact names its subject again).
        subject = self.serving[channel].pop(contact, None)
        if subject is None:
            ident = event.agent if channel is _PHONE else event.desk
            if ident is not None:
                subject = self.subjects.get((channel, ident))
            if subject is None:
                self.unclaimed.hold(
                    channel,
                    contact,
                    event.at,
                    FINISH_KINDS[event.type],
                    event.queue,
                    event.source or "",
                    now + self.max_wait,
                )
                return
        if now > self.now:
            self.now = now
        self._take(subject, (event.at, FINISH_KINDS[event.type], event.queue, contact, event.source or ""))

    def housekeep(self, now: float) -> None:
        if now > self.now:
            self.now = now
        if self.unclaimed.next_expiry < now:
            self.unclaimed.expire(now)

    def fold(self, now: float) -> None:
        """Fold old steps into base states and forget old timelines; forget subjects offline for two days,
        and serving entries of contacts no longer served."""
        before, forget_before = now - FOLD_AFTER_SECONDS, now - FORGET_AFTER_SECONDS
        # Every subject is walked up to date here anyway; the changes are marked while they are few.
        self._flush()
        for key, subject in list(self.subjects.items()):
            subject.fold(before, forget_before)
            if subject.forgettable(forget_before):
                del self.subjects[key]
        subjects = self.subjects
        self.serving = {
            channel: {
                contact: subject
                for contact, subject in serving.items()
                if contact in subject.state.active and (subject.channel, subject.ident) in subjects
            }
            for channel, serving in self.serving.items()
        }

    def drop_queue(self, channel: Channel, queue: str) -> None:
        """Forget a retired queue: every step in it, and the queue in every reading from now on. (What an
        agent did before its last 4 hours stays as walked then: its seconds shared with the retired queue
        stay shared, until they age out of the windows.)"""
        # What the steps so far changed is marked first, so the forgetting below covers it.
        self._flush()
        for subject in self.subjects.values():
            if subject.channel is not channel:
                continue
            subject.settle()
            subject.steps.forget_queue(queue)
            for held in (subject.base.queues, subject.base.paused, subject.base.pending):
                held.pop(queue, None)
            subject.base.views = {}
            subject.stale_from = float("-inf")
            # Its next step names the queues it still names again, as every step did before the drop.
            subject.keyed = -1
        self._known.discard((channel, queue))
        self.changed.pop((channel, queue), None)
        self.dropped.add((channel, queue))

    # ---- reading ------------------------------------------------------------------------------

    def snapshot(self, window: WindowName, now: float, day_start: float) -> StaffSnapshot:
        low = day_start if window == "today" else now - ROLLING_SECONDS[window]
        channels: dict[str, StaffChannel] = {}
        for channel in Channel:
            channels[channel.value] = StaffChannel(StaffFigures(), {})
        for (channel, _), subject in sorted(self.subjects.items()):
            figures = channels[channel.value]
            subject.fresh()
            tail = subject.tail(now)
            point = subject.now_point(now, tail)
            if point is None:
                continue
            vector, _ = point
            dropped = self.dropped
            for key, state, reason in vector:
                if key is None:
                    figures.total.count(state, reason)
                elif (channel, key) not in dropped:
                    self._queue(figures, key).count(state, reason)
            for key in (None, *sorted(q for q in subject.line.queues if (channel, q) not in dropped)):
                spent = _between(subject.value(key, low, tail), subject.value(key, now, tail))
                if key is None:
                    figures.total.add_seconds(spent)
                elif spent != ZERO or key in figures.queues:
                    self._queue(figures, key).add_seconds(spent)
            for queue, times in subject.line.handled.items():
                first = (
                    bisect.bisect_left(times, low) if window == "today" else bisect.bisect_right(times, low)
                )
                count = bisect.bisect_right(times, now) - first
                if count and (channel, queue) not in dropped:
                    figures.total.contacts_handled += count
                    self._queue(figures, queue).contacts_handled += count
        for figures in channels.values():
            figures.total.finish()
            figures.queues = dict(sorted(figures.queues.items()))
            for queue_figures in figures.queues.values():
                queue_figures.finish()
        return StaffSnapshot(window, now, channels)

    @staticmethod
    def _queue(figures: StaffChannel, queue: str) -> StaffFigures:
        found = figures.queues.get(queue)
        if found is None:
            found = figures.queues[queue] = StaffFigures()
        return found

    def members(self, now: float) -> list[AgentState]:
        result = []
        for (channel, ident), subject in sorted(self.subjects.items()):
            point = subject.fresh().now_point(now, subject.tail(now))
            if point is None:
                continue
            vector, since = point
            _, state, reason = vector[0]
            queues = tuple(
                key for key, _, _ in vector[1:] if key is not None and (channel, key) not in self.dropped
            )
            result.append(AgentState(channel, ident, state, reason, queues, since))
        return result

    def seconds(self, channel: Channel, queue: str, since: float, until: float, now: float) -> Sums:
        """Seconds in [since, until) of every subject in the queue, segments in progress up to `now`."""
        end = min(until, now)
        if end <= since:
            return ZERO
        total = ZERO
        for (subject_channel, _), subject in self.subjects.items():
            if subject_channel is not channel:
                continue
            subject.fresh()
            tail = subject.tail(end)
            spent = _between(subject.value(queue, since, tail), subject.value(queue, end, tail))
            total = (total[0] + spent[0], total[1] + spent[1], total[2] + spent[2], total[3] + spent[3])
        return total

    def open_memberships(self, channel: Channel, source: str, began_before: float) -> list[tuple[str, str]]:
        """(subject, queue) of each membership from `source` that began before the time and is open, with no
        step of the subject in that queue after the time: what a restart of that source ended."""
        found = []
        for (subject_channel, ident), subject in self.subjects.items():
            if subject_channel is not channel:
                continue
            subject.settle()
            later = subject.steps.queues_after(began_before)
            for queue, (since, by) in subject.state.queues.items():
                if by == source and since < began_before and queue not in later:
                    found.append((ident, queue))
        return sorted(found)

    def member_queues(self, channel: Channel, ident: str) -> tuple[str, ...]:
        """Every queue the subject has had a membership in or served a contact in, as far as it is kept."""
        subject = self.subjects.get((channel, ident))
        if subject is None:
            return ()
        subject.settle()
        queues = set(subject.line.queues) | set(subject.base.queues) | set(subject.steps.queues)
        return tuple(sorted(queues))

    def with_seconds(
        self, tally: Tally | None, channel: Channel, queue: str, start: int, now: float
    ) -> Tally:
        """A copy of the interval's tally with the staff seconds of [start, start + 15 min) up to `now`."""
        copy = Tally()
        if tally is not None:
            copy.add(tally)
        spent = self.seconds(channel, queue, start, start + INTERVAL_SECONDS, now)
        copy.staffed_seconds, copy.available_seconds, copy.handling_seconds, copy.paused_seconds = spent
        return copy

    def take_dirty(self, now: float) -> set[tuple[Channel, str, int]]:
        """The intervals whose staff seconds changed: from each change on, and the interval in progress
        (with the one the last call was in, which it left unfinished) for every queue someone is in."""
        if now > self.now:
            self.now = now
        self._flush()
        current = interval_start(now)
        taken: set[tuple[Channel, str, int]] = set()
        for (channel, queue), since in self.changed.items():
            taken.update(
                (channel, queue, start)
                for start in range(interval_start(since), current + 1, INTERVAL_SECONDS)
            )
        self.changed = {}
        first = current if self.taken_at is None else min(current, interval_start(self.taken_at))
        for channel, queue in self.in_progress():
            taken.update((channel, queue, start) for start in range(first, current + 1, INTERVAL_SECONDS))
        self.taken_at = now
        return taken

    def in_progress(self) -> set[tuple[Channel, str]]:
        """The queues someone is logged into now (their seconds grow with time)."""
        found: set[tuple[Channel, str]] = set()
        for (channel, _), subject in self.subjects.items():
            if subject.fresh().line.vectors:
                found.update((channel, key) for key, _, _ in subject.line.vectors[-1] if key is not None)
        return found - self.dropped


def _round(value: float | None, decimals: int) -> float | None:
    return None if value is None else round(value, decimals)


def figures_json(figures: StaffFigures) -> dict[str, Any]:
    return {
        "staffed": figures.staffed,
        "available": figures.available,
        "ringing": figures.ringing,
        "on_contact": figures.on_contact,
        "after_contact_work": figures.after_contact_work,
        "paused": figures.paused,
        "paused_by_reason": dict(sorted(figures.paused_by_reason.items())),
        "staffed_seconds": round(figures.staffed_seconds, 1),
        "available_seconds": round(figures.available_seconds, 1),
        "handling_seconds": round(figures.handling_seconds, 1),
        "paused_seconds": round(figures.paused_seconds, 1),
        "contacts_handled": figures.contacts_handled,
        "occupancy": _round(figures.occupancy, 4),
        "utilisation": _round(figures.utilisation, 4),
        "contacts_per_agent_hour": _round(figures.contacts_per_agent_hour, 2),
    }


def staff_json(snapshot: StaffSnapshot) -> dict[str, Any]:
    """The staff snapshot as GET /v1/staff shows it: seconds to a tenth, ratios to four decimals."""
    return {
        "window": snapshot.window,
        "as_of": snapshot.as_of,
        "channels": {
            name: {
                "total": figures_json(channel.total),
                "queues": {queue: figures_json(figures) for queue, figures in channel.queues.items()},
            }
            for name, channel in snapshot.channels.items()
        },
    }


def member_json(member: AgentState) -> dict[str, Any]:
    return {
        "channel": member.channel.value,
        "subject": member.subject,
        "state": member.state,
        "reason": member.reason,
        "queues": list(member.queues),
        "since": member.since,
    }
