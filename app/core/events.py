"""The event vocabulary: call.* and ticket.* mapped onto one arrive/start/leave/finish lifecycle, plus a
clear step for contacts a source's restart ended without an outcome."""

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


EVENT_TYPES: dict[str, tuple[Channel, Step]] = {
    "call.offered": (Channel.PHONE, Step.ARRIVE),
    "call.answered": (Channel.PHONE, Step.START),
    "call.abandoned": (Channel.PHONE, Step.LEAVE),
    "call.ended": (Channel.PHONE, Step.FINISH),
    "call.transferred": (Channel.PHONE, Step.FINISH),
    "call.cleared": (Channel.PHONE, Step.CLEAR),
    "ticket.issued": (Channel.VISIT, Step.ARRIVE),
    "ticket.called": (Channel.VISIT, Step.START),
    "ticket.cancelled": (Channel.VISIT, Step.LEAVE),
    "ticket.completed": (Channel.VISIT, Step.FINISH),
    "ticket.no_show": (Channel.VISIT, Step.FINISH),
    "ticket.cleared": (Channel.VISIT, Step.CLEAR),
}

# Each type's channel as a plain str, for hot paths: an Enum member's .value is a property lookup, and
# a plain str in a tuple lets the garbage collector stop tracking the tuple.
CHANNEL_NAMES: dict[str, str] = {
    event_type: str(channel.value) for event_type, (channel, _) in EVENT_TYPES.items()
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
        return EVENT_TYPES[self.type][0]

    @property
    def step(self) -> Step:
        return EVENT_TYPES[self.type][1]
