"""The event vocabulary: call.* and ticket.* mapped onto one arrive/start/leave/finish lifecycle, plus a
clear step for contacts a source's restart ended without an outcome. Each type has a spec naming its
family, so events that are no contact step (agent states, say) can join without a step."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Channel(StrEnum):
    PHONE = "phone"
    VISIT = "visit"


class Step(StrEnum):
    ARRIVE = "arrive"
    START = "start"
    LEAVE = "leave"
    FINISH = "finish"
    # The source lost the contact (Asterisk restarted with the caller in queue): its wait, or its
    # service, ends without an outcome being counted.
    CLEAR = "clear"


class Family(StrEnum):
    """What an event is about. Only contact events move a contact through the lifecycle's steps; another
    family (agent and desk states, say) names its types here with no step, and the window leaves it be."""

    CONTACT = "contact"
    # Agents and desks logging in, pausing, opening (app/core/staff.py): no contact step.
    STAFF = "staff"


@dataclass(frozen=True, slots=True)
class EventSpec:
    family: Family
    channel: Channel
    # None for a type that is no step of a contact.
    step: Step | None = None


def _contact(channel: Channel, step: Step) -> EventSpec:
    return EventSpec(Family.CONTACT, channel, step)


# The whole vocabulary: every type the service knows, whatever its family.
EVENT_SPECS: dict[str, EventSpec] = {
    "call.offered": _contact(Channel.PHONE, Step.ARRIVE),
    "call.answered": _contact(Channel.PHONE, Step.START),
    "call.abandoned": _contact(Channel.PHONE, Step.LEAVE),
    "call.ended": _contact(Channel.PHONE, Step.FINISH),
    "call.transferred": _contact(Channel.PHONE, Step.FINISH),
    "call.cleared": _contact(Channel.PHONE, Step.CLEAR),
    "ticket.issued": _contact(Channel.VISIT, Step.ARRIVE),
    "ticket.called": _contact(Channel.VISIT, Step.START),
    "ticket.cancelled": _contact(Channel.VISIT, Step.LEAVE),
    "ticket.completed": _contact(Channel.VISIT, Step.FINISH),
    "ticket.no_show": _contact(Channel.VISIT, Step.FINISH),
    "ticket.cleared": _contact(Channel.VISIT, Step.CLEAR),
    # Staff events: the subject (agent or desk id) is the event's contact_id in the core and in the store.
    "agent.logged_in": EventSpec(Family.STAFF, Channel.PHONE),
    "agent.logged_out": EventSpec(Family.STAFF, Channel.PHONE),
    "agent.paused": EventSpec(Family.STAFF, Channel.PHONE),
    "agent.resumed": EventSpec(Family.STAFF, Channel.PHONE),
    "agent.ringing": EventSpec(Family.STAFF, Channel.PHONE),
    "agent.ready": EventSpec(Family.STAFF, Channel.PHONE),
    "desk.opened": EventSpec(Family.STAFF, Channel.VISIT),
    "desk.closed": EventSpec(Family.STAFF, Channel.VISIT),
}

# The staff types: agent.* name an agent, desk.* a desk (app/api/schemas.py holds each to its field).
STAFF_TYPES = frozenset(name for name, spec in EVENT_SPECS.items() if spec.family is Family.STAFF)

# The contact events as (channel, step), the form the window's hot path and the ingest checks read.
EVENT_TYPES: dict[str, tuple[Channel, Step]] = {
    event_type: (spec.channel, spec.step) for event_type, spec in EVENT_SPECS.items() if spec.step is not None
}

# Each type's channel as a plain str, for hot paths: an Enum member's .value is a property lookup, and
# a plain str in a tuple lets the garbage collector stop tracking the tuple.
CHANNEL_NAMES: dict[str, str] = {
    event_type: str(spec.channel.value) for event_type, spec in EVENT_SPECS.items()
}

TRANSFER_TYPES = frozenset({"call.transferred"})
# A no-show was called but never served: it finishes the contact without a handle time or a resolution.
UNSERVED_FINISH_TYPES = frozenset({"ticket.no_show"})


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which made building the
# million events of a start-up replay cost more than applying them. Nothing mutates an Event.
@dataclass(slots=True)
class Event:
    """One state change of one contact. `at` is the occurrence time in Unix seconds (UTC)."""

    event_id: str
    type: str
    contact_id: str
    queue: str
    at: float
    agent: str | None = None
    desk: str | None = None
    ticket_number: str | None = None
    wait_seconds: float | None = None
    resolved: bool | None = None
    to_queue: str | None = None
    source: str | None = None
    # Why a contact left the queue, as the source names it (Asterisk: ABANDON, EXITWITHTIMEOUT, ...).
    reason: str | None = None

    @property
    def channel(self) -> Channel:
        return EVENT_SPECS[self.type].channel

    @property
    def step(self) -> Step:
        return EVENT_TYPES[self.type][1]
