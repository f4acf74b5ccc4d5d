"""Which queues an Asterisk member line reaches, and which member sessions a restart ended. Pure.

Member lines that name their queue (ADDMEMBER, REMOVEMEMBER, PAUSE, UNPAUSE) are staff events as they
are. The agent-pool lines (AGENTLOGIN, AGENTLOGOFF) are written with queue NONE: the agent is a static
member of queues that only queues.conf lists. A logoff ends every session of the agent open at its
time; a login opens one in each queue the agent is known to belong to, from the window and from the
request's lines (member lines, and calls the agent answered or finished). A QUEUESTART ends every
member session of the source that began before it, as it clears the calls (app/asterisk/visits.py).

Each event made here has an id from the line and the queue (and agent), so a re-sent line makes the
same events, and a session a first delivery already ended is no longer open the second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from app.asterisk.parser import SOURCE, AgentSession, Restart, derived_event_id
from app.core.events import STAFF_TYPES, Event

LOGIN_TYPE = "agent.logged_in"
LOGOUT_TYPE = "agent.logged_out"
# Staff events that say the agent belongs to the queue, whether or not a session is open there now.
MEMBERSHIP_TYPES = frozenset({LOGIN_TYPE, LOGOUT_TYPE, "agent.paused", "agent.resumed"})
# Call events whose agent served the queue, so the agent belongs to it.
SERVING_TYPES = frozenset({"call.answered", "call.ended", "call.transferred"})
PLACING_TYPES = MEMBERSHIP_TYPES | SERVING_TYPES


class LiveMembers(Protocol):
    """What the live window knows of the Asterisk members (app/api/asterisk.py asks the Window)."""

    def open_sessions(self, began_before: float) -> Sequence[tuple[str, str]]:
        """(agent, queue) of each Asterisk member session open now that began before the time."""
        ...

    def queues_of(self, agent: str) -> Sequence[str]:
        """The queues the agent is known to belong to."""
        ...


@dataclass
class Resolution:
    # (line number, event), in the order of the lines.
    events: list[tuple[int, Event]] = field(default_factory=list)
    # (line number, reason) of lines that could not be placed in any queue.
    errors: list[tuple[int, str]] = field(default_factory=list)
    # Verbs of lines that had nothing to end (a logoff of an agent with no session open).
    ignored: list[str] = field(default_factory=list)


@dataclass
class _Session:
    open: bool
    at: float


def _made(session: AgentSession | Restart, event_type: str, agent: str, queue: str) -> Event:
    return Event(
        event_id=derived_event_id(session.line_id, event_type, agent, queue),
        type=event_type,
        contact_id=agent,
        queue=queue,
        at=session.at,
        agent=agent,
        source=SOURCE,
    )


class _Members:
    def __init__(self, live: LiveMembers) -> None:
        self.live = live
        # (agent, queue) -> the session as the request's earlier lines left it.
        self.local: dict[tuple[str, str], _Session] = {}
        # agent -> queues the request's earlier lines place the agent in.
        self.known: dict[str, set[str]] = {}

    def note(self, event: Event) -> None:
        agent = event.agent
        if agent is None:
            return
        self.known.setdefault(agent, set()).add(event.queue)
        if event.type == LOGIN_TYPE:
            self.local[(agent, event.queue)] = _Session(True, event.at)
        elif event.type == LOGOUT_TYPE:
            self.local[(agent, event.queue)] = _Session(False, event.at)

    def open_at(self, at: float, agent: str | None = None) -> list[tuple[str, str]]:
        """The sessions open that began before `at` (any, for an agent's own logoff): the window's, less
        those the request's earlier lines ended, plus those they opened."""
        candidates = {key for key in self.live.open_sessions(at) if agent is None or key[0] == agent}
        for key, session in self.local.items():
            if agent is not None and key[0] != agent:
                continue
            if not session.open:
                candidates.discard(key)
            elif session.at < at or agent is not None:
                candidates.add(key)
        return sorted(candidates)

    def queues_of(self, agent: str) -> list[str]:
        return sorted(set(self.live.queues_of(agent)) | self.known.get(agent, set()))


def resolve(lines: Sequence[tuple[int, Event | AgentSession | Restart]], live: LiveMembers) -> Resolution:
    """The staff events of the request's lines, in line order.

    `lines` are in the order of the request and hold every event of it: the staff events are kept, the
    call events only teach which queues their agent serves. Agent-pool lines become a login or logout per
    queue, each restart a logout per session it ended.
    """
    members = _Members(live)
    # Every queue the request places an agent in, earlier or later: a log read from its start meets
    # the AGENTLOGIN before the first call the agent answers.
    for _, item in lines:
        if isinstance(item, Event) and item.agent is not None and item.type in PLACING_TYPES:
            members.known.setdefault(item.agent, set()).add(item.queue)
    result = Resolution()
    for number, item in lines:
        if isinstance(item, Event):
            if item.type in MEMBERSHIP_TYPES:
                members.note(item)
            if item.type in STAFF_TYPES:
                result.events.append((number, item))
            continue
        if isinstance(item, Restart):
            for agent, queue in members.open_at(item.at):
                made = _made(item, LOGOUT_TYPE, agent, queue)
                members.note(made)
                result.events.append((number, made))
            continue
        if item.login:
            queues = members.queues_of(item.agent)
            if not queues:
                result.errors.append(
                    (number, f"{item.verb}: queue is NONE and {item.agent} is not yet known in any queue")
                )
            event_type = LOGIN_TYPE
        else:
            queues = [queue for _, queue in members.open_at(item.at, item.agent)]
            if not queues:
                result.ignored.append(item.verb)
            event_type = LOGOUT_TYPE
        for queue in queues:
            made = _made(item, event_type, item.agent, queue)
            members.note(made)
            result.events.append((number, made))
    return result
