"""Prometheus metrics on the service's own registry.

The queue figures are computed from the window when Prometheus scrapes, never counted a second time:
live gauges come from the same snapshot `/v1/kpis` serves, and the counters from each queue's lifetime
tally (monotonic over the process, unlike the rolling totals that slide). The service's own health uses
ordinary prometheus_client objects fed by the writer's hooks and an ingest middleware.
"""

from __future__ import annotations

import collections
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, Info, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.clock import INTERVAL_SECONDS, interval_start
from app.core.events import EVENT_SPECS, Channel, Event
from app.core.kpis import QueueFigures
from app.core.queues import REFUSED_KEPT, QueueRegistry
from app.core.window import WINDOWS, Window
from app.staffing_metrics import agents_needed, lobby_waits

if TYPE_CHECKING:
    from prometheus_client import Metric

    from app.db.tail import Tail
    from app.db.waits import WaitFeed
    from app.db.writer import WriterStats
    from app.settings import Settings

INGEST_PATH = "/v1/events"
RESULTS = ("accepted", "duplicate", "rejected", "conflict")
# The ingest timing's status for a request whose client went away before it was answered (nginx's
# "client closed request"): not a 5xx, so the server-error alert does not count it.
CLIENT_CLOSED = 499
# A refused body that is not a list of objects with a known "type" is counted under this type.
UNKNOWN_TYPE = "unknown"
# Whole seconds, so the buckets are exact (see Window.lifetime_counts); 60 and 300 are the default
# phone and visit targets, and every whole-second target configured is added at start-up.
WAIT_BUCKETS: tuple[int, ...] = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1800, 3600)
INGEST_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COMMIT_EVENTS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
COMMIT_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# Counter name (without _total) -> (Tally field, help text).
QUEUE_COUNTERS: dict[str, tuple[str, str]] = {
    "queuepulse_contacts_arrived": (
        "arrived",
        "Contacts that entered the queue (call.offered, ticket.issued).",
    ),
    "queuepulse_contacts_started": ("started", "Contacts whose service started (answered, called)."),
    "queuepulse_contacts_started_within_target": (
        "started_within",
        "Contacts whose service started within the queue's target wait (exact, threshold at the time).",
    ),
    "queuepulse_contacts_left": ("left", "Contacts that gave up while waiting (abandoned, cancelled)."),
    "queuepulse_contacts_left_after_short_abandon": (
        "left_after_short",
        "Contacts that gave up after waiting longer than the short-abandon limit.",
    ),
    "queuepulse_contacts_served": ("served", "Contacts whose service finished (no-shows excluded)."),
    "queuepulse_contacts_resolved_first_contact": (
        "resolved_first_contact",
        "Served contacts resolved at first contact, without a transfer.",
    ),
    "queuepulse_contacts_transferred": ("transferred", "Calls transferred to another queue."),
}


def _package_version() -> str:
    try:
        return version("queuepulse")
    except PackageNotFoundError:
        return "unknown"


def wait_buckets(thresholds: Iterable[float]) -> tuple[int, ...]:
    """The default buckets plus every target threshold that is a whole number of seconds."""
    whole = {int(seconds) for seconds in thresholds if seconds > 0 and float(seconds).is_integer()}
    return tuple(sorted(set(WAIT_BUCKETS) | whole))


def cumulative_buckets(waits: dict[int, int], bounds: Sequence[int]) -> list[tuple[str, float]]:
    """Prometheus `le` buckets from waits binned by whole seconds rounded up (bin N holds N-1 < w <= N).

    A wait is at most N seconds exactly when its rounded-up bin is at most N, so each bucket is exact.
    """
    buckets: list[tuple[str, float]] = []
    keys = sorted(waits)
    seen = 0
    index = 0
    for bound in bounds:
        while index < len(keys) and keys[index] <= bound:
            seen += waits[keys[index]]
            index += 1
        buckets.append((str(bound), float(seen)))
    buckets.append(("+Inf", float(sum(waits.values()))))
    return buckets


def exported_queues(window: Window, cap: int) -> tuple[list[tuple[Channel, str]], int]:
    """The first `cap` (channel, queue) series seen, and how many more there are.

    Counted like ingest's limit (app/api/limits.py): a queue name in both channels is two queues. First-seen
    order (the window's insertion order, which replay keeps), so an exported queue never drops out
    because another one arrives.
    """
    keys = window.queues_seen()
    return keys[:cap], max(0, len(keys) - cap)


def _ratio(kpis: QueueFigures) -> float | None:
    level = kpis.service_level_pct
    return None if level is None else level / 100.0


# queuepulse_agents' states: each staffed agent is in exactly one, so they add up to the staffed count.
AGENT_GAUGE_STATES = ("available", "ringing", "on_contact", "after_contact_work", "paused")
# queuepulse_agent_seconds_total's states, as StaffFigures names their seconds.
AGENT_SECONDS_STATES = ("staffed", "available", "handling", "paused")
StaffKey = tuple[str, str]


class AgentSeconds:
    """queuepulse_agent_seconds_total: the agent-seconds in each state this process saw go by, per queue.

    Each scrape adds the queue's seconds between the previous scrape and this one, to the second, from the
    window's quarter-hour tallies (segments in progress counted up to the scrape; midnight is no different
    from any other instant): the seconds from the start of the previous scrape's quarter-hour up to now,
    less those up to the previous scrape. Events that come late for a stretch already scraped are not
    counted back into it (a counter only grows). A queue starts at zero at the first scrape that sees it.
    """

    def __init__(self) -> None:
        self.totals: dict[StaffKey, list[float]] = {}
        # key -> seconds from the start of the previous scrape's quarter-hour up to the previous scrape
        self._upto_last: dict[StaffKey, list[float]] = {}
        self._interval: int | None = None

    def observe(self, window: Window, now: float) -> dict[StaffKey, list[float]]:
        current = interval_start(now)
        since = current if self._interval is None else min(self._interval, current)
        spent: dict[StaffKey, list[float]] = {}
        in_current: dict[StaffKey, list[float]] = {}
        for channel, queue, start, tally in window.interval_tallies(since, current + INTERVAL_SECONDS, now):
            seconds = [getattr(tally, f"{state}_seconds") for state in AGENT_SECONDS_STATES]
            if not any(seconds):
                continue
            key = (channel.value, queue)
            _add(spent.setdefault(key, [0.0] * len(seconds)), seconds)
            if start == current:
                _add(in_current.setdefault(key, [0.0] * len(seconds)), seconds)
        for key, values in spent.items():
            totals = self.totals.get(key)
            if totals is None:
                self.totals[key] = [0.0] * len(values)
                continue
            before = self._upto_last.get(key, [0.0] * len(values))
            for index, value in enumerate(values):
                totals[index] += max(0.0, value - before[index])
        self._upto_last = in_current
        self._interval = current
        return self.totals


def _add(into: list[float], values: Sequence[float]) -> None:
    for index, value in enumerate(values):
        into[index] += value


def staff_metrics(window: Window, now: float, seconds: AgentSeconds) -> Iterator[Metric]:
    """Agents and desks by state now, occupancy over each window, and the seconds counter, per queue."""
    labels = ["channel", "queue"]
    agents = GaugeMetricFamily(
        "queuepulse_agents",
        "Agents (phone) or desks (visit) logged in to the queue now, by state; the states add up to the "
        "staffed count. An agent in two queues counts in both.",
        labels=[*labels, "state"],
    )
    occupancy = GaugeMetricFamily(
        "queuepulse_agent_occupancy_ratio",
        "Handling time over handling plus available time of the queue's agents over the window (0..1).",
        labels=[*labels, "window"],
    )
    counter = CounterMetricFamily(
        "queuepulse_agent_seconds",
        "Agent-seconds this process saw go by in each state (staffed, available, handling = on contact or "
        "after-contact work, paused); rate() gives the average number of agents in it. An agent in k "
        "queues gives each 1/k of its seconds, so the queues add up to the channel.",
        labels=[*labels, "state"],
    )
    snapshots = {name: window.staff(name, now) for name in WINDOWS}
    for channel, part in snapshots["15m"].channels.items():
        for queue, figures in part.queues.items():
            for state in AGENT_GAUGE_STATES:
                agents.add_metric([channel, queue, state], getattr(figures, state))
    for name, snapshot in snapshots.items():
        for channel, part in snapshot.channels.items():
            for queue, figures in part.queues.items():
                if figures.occupancy is not None:
                    occupancy.add_metric([channel, queue, name], figures.occupancy)
    totals = seconds.observe(window, now)
    for (channel, queue), values in sorted(totals.items()):
        for state, total in zip(AGENT_SECONDS_STATES, values, strict=True):
            counter.add_metric([channel, queue, state], total)
    yield agents
    yield occupancy
    yield counter


class _WriterView(Protocol):
    @property
    def stats(self) -> WriterStats: ...


class CollectorSources(Protocol):
    """What the collector reads at a scrape, and nothing more (app/services.py's Services has it all)."""

    @property
    def ready(self) -> bool: ...
    @property
    def replay_seconds(self) -> float: ...
    @property
    def replayed_events(self) -> int: ...
    @property
    def writer(self) -> _WriterView: ...
    @property
    def window(self) -> Window: ...
    @property
    def clock(self) -> Callable[[], float]: ...
    @property
    def queues(self) -> QueueRegistry: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def tail(self) -> Tail | None: ...
    @property
    def waits(self) -> WaitFeed | None: ...


def _tail_state(tail: Tail) -> Iterator[Metric]:
    """The log tail (app/db/tail.py): how far behind the events table this instance's window is."""
    yield GaugeMetricFamily(
        "queuepulse_tail_lag_seconds",
        "Time since the tail last found every commit below the oldest running transaction applied.",
        tail.lag_seconds(),
    )
    yield GaugeMetricFamily(
        "queuepulse_tail_position_txid",
        "The transaction id of the last events-table row the tail took (its log position).",
        tail.position.txid,
    )
    yield GaugeMetricFamily(
        "queuepulse_tail_position_id",
        "The row id of the last events-table row the tail took (its log position, with the txid).",
        tail.position.id,
    )
    yield CounterMetricFamily(
        "queuepulse_tail_applied_events",
        "Events other instances committed that the tail applied to this instance's window.",
        tail.stats.applied,
    )
    yield CounterMetricFamily(
        "queuepulse_tail_errors", "Tail polls that failed (retried).", tail.stats.errors
    )


class WindowCollector(Collector):
    """Queue figures and service state, read from the live objects at scrape time."""

    def __init__(self, services: CollectorSources, wait_bounds: Sequence[int]) -> None:
        self.services = services
        self.wait_bounds = tuple(wait_bounds)
        self.agent_seconds = AgentSeconds()

    def describe(self) -> Iterable[Metric]:
        # Names are dynamic in labels only; describing nothing keeps registration from collecting early.
        return []

    def collect(self) -> Iterable[Metric]:
        yield from self._service_state()
        # During replay the window is half built; reading it then would also slide it to the wall
        # clock under the replay's feet, so queue figures appear only once the service is ready.
        if self.services.ready:
            yield from self._queue_figures()
            yield from staff_metrics(self.services.window, self.services.clock(), self.agent_seconds)
            yield from self._staffing()

    def _staffing(self) -> Iterator[Metric]:
        """Agents needed per queue and the lobby's expected wait with its score (app/staffing_metrics.py)."""
        services = self.services
        window = services.window
        now = services.clock()
        keys, _ = exported_queues(window, services.settings.max_queues)
        yield from agents_needed(window, now, services.settings.max_occupancy_pct, keys)
        feed = services.waits
        visits = {queue for channel, queue in keys if channel is Channel.VISIT}
        yield from lobby_waits(None if feed is None else feed.ledger, window, now, visits)

    def _service_state(self) -> Iterator[Metric]:
        services = self.services
        yield GaugeMetricFamily(
            "queuepulse_ready", "1 once today's events are replayed and ingest is open.", int(services.ready)
        )
        yield GaugeMetricFamily(
            "queuepulse_replay_duration_seconds",
            "Time the start-up replay of stored events took.",
            services.replay_seconds,
        )
        yield GaugeMetricFamily(
            "queuepulse_replayed_events",
            "Stored events replayed into the window at start-up.",
            services.replayed_events,
        )
        stats = services.writer.stats
        yield CounterMetricFamily(
            "queuepulse_database_errors",
            "Group commits that failed (their requests got a 503).",
            stats.errors,
        )
        yield GaugeMetricFamily(
            "queuepulse_writer_pending_events",
            "Events waiting for the next group commit.",
            stats.pending_rows,
        )
        if services.tail is not None:
            yield from _tail_state(services.tail)

    def _queue_figures(self) -> Iterator[Metric]:
        services = self.services
        window = services.window
        now = services.clock()
        registry = services.queues
        # A window rebuilt since the last scrape may still hold a queue retired during its replay.
        registry.hide_retired(window)
        keys, left_out = exported_queues(window, services.settings.max_queues)
        yield GaugeMetricFamily(
            "queuepulse_queues_not_exported",
            "Queues with no per-queue metrics: named by events refused by a queue cap since start-up "
            f"(distinct, counted up to {REFUSED_KEPT}), or held beyond QUEUEPULSE_MAX_QUEUES.",
            left_out + len(registry.refused),
        )
        registered = GaugeMetricFamily(
            "queuepulse_queues",
            "Registered queues: admitted (counted against QUEUEPULSE_MAX_QUEUES) or retired by an admin.",
            labels=["state"],
        )
        registered.add_metric(["admitted"], len(registry.admitted))
        registered.add_metric(["retired"], len(registry.retired))
        yield registered
        queue_labels = ["channel", "queue"]
        window_labels = ["channel", "queue", "window"]
        level = GaugeMetricFamily(
            "queuepulse_service_level_ratio",
            "Share of contacts started within target, by the queue's formula, over the window (0..1).",
            labels=window_labels,
        )
        channel_level = GaugeMetricFamily(
            "queuepulse_channel_service_level_ratio",
            "Service level of the whole channel over the window (0..1), against the channel target.",
            labels=["channel", "window"],
        )
        snapshots = {name: window.snapshot(name, now) for name in WINDOWS}
        for name, snapshot in snapshots.items():
            for channel, queue in keys:
                ratio = _ratio(snapshot.channels[channel.value].queues[queue])
                if ratio is not None:
                    level.add_metric([channel.value, queue, name], ratio)
            for channel in Channel:
                ratio = _ratio(snapshot.channels[channel.value].total)
                if ratio is not None:
                    channel_level.add_metric([channel.value, name], ratio)
        yield level
        yield channel_level

        goal = GaugeMetricFamily(
            "queuepulse_service_level_goal_ratio",
            "The queue's service-level goal (0..1).",
            labels=queue_labels,
        )
        threshold = GaugeMetricFamily(
            "queuepulse_service_level_target_seconds", "The queue's target wait.", labels=queue_labels
        )
        waiting = GaugeMetricFamily(
            "queuepulse_contacts_waiting", "Contacts waiting now.", labels=queue_labels
        )
        past = GaugeMetricFamily(
            "queuepulse_contacts_waiting_past_target",
            "Contacts waiting now that have already waited longer than the target (misses in the making).",
            labels=queue_labels,
        )
        longest = GaugeMetricFamily(
            "queuepulse_longest_wait_seconds",
            "How long the longest-waiting contact has waited so far (0 when nobody waits).",
            labels=queue_labels,
        )
        counters = {
            name: CounterMetricFamily(name, help_text, labels=queue_labels)
            for name, (_, help_text) in QUEUE_COUNTERS.items()
        }
        histogram = HistogramMetricFamily(
            "queuepulse_wait_seconds",
            "Waits of started contacts; buckets are exact (a wait of 60.4 s is not within le=60).",
            labels=queue_labels,
        )
        for channel, queue in keys:
            labels = [channel.value, queue]
            target = window.targets(channel, queue)
            kpis = snapshots["15m"].channels[channel.value].queues[queue]
            goal.add_metric(labels, target.goal_pct / 100.0)
            threshold.add_metric(labels, target.threshold_seconds)
            waiting.add_metric(labels, kpis.waiting_now)
            past.add_metric(labels, kpis.waiting_past_target)
            longest.add_metric(labels, kpis.longest_wait_now_seconds or 0.0)
            lifetime = window.lifetime_counts(channel, queue)
            for counter, (attribute, _) in QUEUE_COUNTERS.items():
                counters[counter].add_metric(labels, getattr(lifetime.tally, attribute))
            histogram.add_metric(
                labels, cumulative_buckets(lifetime.waits, self.wait_bounds), lifetime.tally.wait_sum
            )
        yield goal
        yield threshold
        yield waiting
        yield past
        yield longest
        yield from counters.values()
        yield histogram

        quality = GaugeMetricFamily(
            "queuepulse_data_quality_issues",
            "Data-quality findings since start-up, replayed events included (see /v1/kpis data_quality).",
            labels=["kind"],
        )
        for kind, count in window.data_quality.items():
            quality.add_metric([kind], count)
        yield quality


class Metrics:
    """One app's registry and the health instruments the writer and the ingest middleware feed."""

    def __init__(self, settings: Settings | None = None) -> None:
        # No *_created series: Prometheus does not use them, and they would double every series count.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        thresholds: list[float] = []
        if settings is not None:
            thresholds = [settings.phone_threshold_seconds, settings.visit_threshold_seconds]
            thresholds += [target.threshold_seconds for target in settings.queue_targets.values()]
        self.wait_bounds = wait_buckets(thresholds)
        self.events = Counter(
            "queuepulse_events",
            "Events posted, by type and result: accepted (new), duplicate (seen before), rejected (refused "
            "with 413/422 once the token was accepted, nothing stored), conflict (its event_id was stored, "
            "or given earlier in the request, with another payload: the request was refused with 409).",
            ["type", "result"],
            registry=self.registry,
        )
        # Every series exists from the start, so increase() sees the first event and "no events" alerts.
        for event_type in EVENT_SPECS:
            for result in RESULTS:
                self.events.labels(event_type, result)
        self.events.labels(UNKNOWN_TYPE, "rejected")
        self.ingest_seconds = Histogram(
            "queuepulse_ingest_request_duration_seconds",
            "Time to answer POST /v1/events, by HTTP status (499: the client left before the answer).",
            ["status"],
            buckets=INGEST_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.commit_events = Histogram(
            "queuepulse_commit_batch_events",
            "Events per group commit.",
            buckets=COMMIT_EVENTS_BUCKETS,
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "queuepulse_commit_duration_seconds",
            "Time one group commit took, insert to window update.",
            buckets=COMMIT_SECONDS_BUCKETS,
            registry=self.registry,
        )
        Info("queuepulse_build", "Version of queuepulse and Python.", registry=self.registry).info(
            {"version": _package_version(), "python": platform.python_version()}
        )

    def watch(self, services: CollectorSources) -> None:
        """Start reading the live window and service state at each scrape."""
        self.registry.register(WindowCollector(services, self.wait_bounds))

    def flushed(self, rows: int, seconds: float) -> None:
        self.commit_events.observe(rows)
        self.commit_seconds.observe(seconds)

    def committed(self, events: Sequence[Event], new: list[Event]) -> None:
        """One committed request: `new` were accepted, the rest of `events` were duplicates."""
        accepted = collections.Counter(event.type for event in new)
        offered = accepted if len(new) == len(events) else collections.Counter(event.type for event in events)
        for event_type, count in accepted.items():
            self.events.labels(event_type, "accepted").inc(count)
        for event_type, count in (offered - accepted).items():
            self.events.labels(event_type, "duplicate").inc(count)

    def conflicted(self, event_types: Iterable[str]) -> None:
        """Count the events, by type, whose event_id a refused request reused for another payload."""
        for event_type, count in collections.Counter(event_types).items():
            self.events.labels(event_type, "conflict").inc(count)

    def rejected(self, body: bytes) -> None:
        """Count the events of a refused request body by type (unknown when the body does not say)."""
        try:
            parsed: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        items = parsed if isinstance(parsed, list) and parsed else [parsed]
        counts: dict[str, int] = {}
        for item in items:
            event_type = item.get("type") if isinstance(item, dict) else None
            label = event_type if isinstance(event_type, str) and event_type in EVENT_SPECS else UNKNOWN_TYPE
            counts[label] = counts.get(label, 0) + 1
        for label, count in counts.items():
            self.events.labels(label, "rejected").inc(count)


def _metrics_of(scope: Scope) -> Metrics | None:
    services = getattr(scope["app"].state, "services", None)
    metrics: Metrics | None = None if services is None else services.metrics
    return metrics


class IngestTimer:
    """ASGI middleware for POST /v1/events: times every answer and counts refused events by type.

    It sits outside the route so answers decided before the handler runs (401, 403) are timed too. Only a
    413 or 422 counts events as rejected, and the route gives those only after the token was accepted
    (BodySizeLimit raises its 413 when the route reads the body, after the token check), so a client
    without a token never moves the rejected count. A client that goes away before its body is in is
    timed as 499, not as a server error: there is no answer to give, and no 5xx alert to raise.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != INGEST_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        chunks: list[bytes] = []
        status: int | None = None
        gone = False

        async def receiving() -> Message:
            nonlocal gone
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            elif message["type"] == "http.disconnect":
                gone = True
            return message

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        failed = True
        try:
            await self.app(scope, receiving, sending)
            failed = False
        except ClientDisconnect:
            # Raised by the route's read of the body; the client is gone, so there is nobody to answer.
            if not gone or status is not None:
                raise
            failed = False
        finally:
            if status is None:
                status = CLIENT_CLOSED if gone and not failed else 500
            metrics = _metrics_of(scope)
            if metrics is not None:
                metrics.ingest_seconds.labels(str(status)).observe(time.perf_counter() - started)
                if status in (413, 422):
                    metrics.rejected(b"".join(chunks))
