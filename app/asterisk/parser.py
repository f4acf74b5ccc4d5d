"""Asterisk queue_log lines onto the call lifecycle. Pure: standard library only, no clock, no I/O.

A line is `time|uniqueid|queue|agent|VERB|data1|data2|...`. The time is Unix seconds, or a date some
writers put there instead; the number of data fields grew over Asterisk versions, so every field past
the ones a verb has always had is optional, and a missing wait is left for the window to compute from
the arrival.

Member lines become staff events: ADDMEMBER and REMOVEMEMBER log a member in to and out of the line's
queue, PAUSE (its first data field is the reason) and UNPAUSE pause and resume them there. PAUSEALL and
UNPAUSEALL are only markers: app_queue writes one PAUSE or UNPAUSE per queue right after them, so they
count nothing themselves. AGENTLOGIN and AGENTLOGOFF (and the 1.4 callback forms) name no queue (the
queue column is NONE): they are an `AgentSession`, which app/asterisk/members.py spreads over the agent's
queues.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

SOURCE = "asterisk"
EVENT_ID_PREFIX = "ast-"
# 160 bits of SHA-256: collisions among the lines of any real log are out of reach.
EVENT_ID_HEX_CHARS = 40
QUEUE_SLUG_MAX = 64
# A long queue name is cut and given a hash suffix, so two names sharing a long prefix stay apart.
QUEUE_HASH_CHARS = 8
AGENT_MAX = 128
CONTACT_ID_MAX = 128
VERB_REPORT_MAX = 32
# Asterisk writes "NONE" where a line has no call, queue or agent.
NONE = "NONE"
FIXED_FIELDS = 5
ENTERQUEUE_CALLER_ID_FIELD = 6

# Recognised, and carrying nothing the figures need: ringing members, the pause-everywhere markers, and
# the markers written at reload. AGENTDUMP and RINGCANCELED end one agent's attempt, not the call: the
# caller goes on waiting and the queue rings the next member. PAUSEALL and UNPAUSEALL are each followed
# by one PAUSE or UNPAUSE per queue the member is in (app_queue's set_member_paused), which are counted.
IGNORED_VERBS = frozenset(
    {
        "RINGNOANSWER",
        "RINGCANCELED",
        "AGENTDUMP",
        "PAUSEALL",
        "UNPAUSEALL",
        "PAUSECUSTOM",
        "CONFIGRELOAD",
        "SYSCOMPAT",
        "DID",
        "INFO",
    }
)
# Member verbs that name their queue -> the staff event type. ADDMEMBER's first data field is "PAUSED"
# when the member was added paused (Asterisk 13 and later); PAUSE's first data field is the reason.
MEMBER_VERBS = {
    "ADDMEMBER": "agent.logged_in",
    "REMOVEMEMBER": "agent.logged_out",
    "PAUSE": "agent.paused",
    "UNPAUSE": "agent.resumed",
}
ADDED_PAUSED = "PAUSED"
# The agent-pool verbs, written with queue NONE: True for a login. AGENTCALLBACK* are Asterisk 1.4's.
SESSION_VERBS = {
    "AGENTLOGIN": True,
    "AGENTCALLBACKLOGIN": True,
    "AGENTLOGOFF": False,
    "AGENTCALLBACKLOGOFF": False,
}
PAUSE_REASON_MAX = 64
# The queue_log documents no outcome beyond these; a completed call was not transferred, which is what
# the quality contract means by resolved at first contact ("straksafklaret ... uden at borgeren stilles om").
COMPLETE_VERBS = frozenset({"COMPLETECALLER", "COMPLETEAGENT"})
TRANSFER_VERBS = frozenset({"TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER"})
# verb -> index (among the data fields) of the wait in seconds; the verb itself is kept as the reason.
LEAVE_WAIT_FIELD = {"ABANDON": 2, "EXITWITHTIMEOUT": 2, "EXITEMPTY": 2, "EXITWITHKEY": 3}
CALL_VERBS = frozenset({"ENTERQUEUE", "CONNECT", *LEAVE_WAIT_FIELD, *COMPLETE_VERBS, *TRANSFER_VERBS})
# Written when app_queue loads, so after every start of Asterisk: the callers queued before it were cut off.
RESTART_VERB = "QUEUESTART"

_EPOCH = re.compile(r"^\d{1,12}(\.\d+)?$")
_NOT_SLUG = re.compile(r"[^a-z0-9_-]+")
_DASHES = re.compile(r"-{2,}")
# Letters NFKD does not take apart, spelled the way Danish, Norwegian and German write them in ASCII.
_TRANSLITERATION = str.maketrans(
    {"æ": "ae", "ø": "oe", "å": "aa", "ß": "ss", "đ": "d", "ð": "d", "þ": "th", "ł": "l", "œ": "oe"}
)


@dataclass(frozen=True, slots=True)
class Parsed:
    """A call line as keyword arguments for EventIn."""

    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Ignored:
    """A verb that is recognised and carries nothing the KPIs need."""

    verb: str


@dataclass(frozen=True, slots=True)
class Unknown:
    """A verb this parser does not know: counted and reported, never guessed at."""

    verb: str


@dataclass(frozen=True, slots=True)
class Restart:
    """Asterisk started (QUEUESTART) at `at`, Unix seconds; `line_id` is the line's event id."""

    at: float
    line_id: str


@dataclass(frozen=True, slots=True)
class Member:
    """A member line as staff events (as keyword arguments for EventIn): one, or two for ADDMEMBER|PAUSED."""

    events: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class AgentSession:
    """An agent-pool login (`login`) or logoff at `at`, Unix seconds, of `agent` in no queue named."""

    login: bool
    agent: str
    at: float
    line_id: str
    verb: str


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str


ParseResult = Parsed | Member | AgentSession | Restart | Ignored | Unknown | Malformed


class _LineError(ValueError):
    pass


def slugify_queue(name: str) -> str:
    """A queue name as a slug (`^[a-z0-9_-]{1,64}$`); the same name always gives the same slug."""
    folded = unicodedata.normalize("NFKD", name.strip().lower().translate(_TRANSLITERATION))
    ascii_only = folded.encode("ascii", "ignore").decode("ascii")
    slug = _DASHES.sub("-", _NOT_SLUG.sub("-", ascii_only)).strip("-")
    digest = hashlib.sha256(name.encode("utf-8", "backslashreplace")).hexdigest()[:QUEUE_HASH_CHARS]
    if not slug:
        return f"queue-{digest}"
    if len(slug) > QUEUE_SLUG_MAX:
        return f"{slug[: QUEUE_SLUG_MAX - QUEUE_HASH_CHARS - 1].rstrip('-')}-{digest}"
    return slug


def event_id(fields: list[str]) -> str:
    """The line's id: re-reading a file, or one line in two files, yields the same id.

    The caller id is blanked first: an unsalted hash of a line holding a phone number would let anyone
    with the stored ids recover the number by trying them all.
    """
    if len(fields) > ENTERQUEUE_CALLER_ID_FIELD and fields[4] == "ENTERQUEUE":
        fields = [*fields[:ENTERQUEUE_CALLER_ID_FIELD], "", *fields[ENTERQUEUE_CALLER_ID_FIELD + 1 :]]
    digest = hashlib.sha256("|".join(fields).encode("utf-8", "backslashreplace")).hexdigest()
    return EVENT_ID_PREFIX + digest[:EVENT_ID_HEX_CHARS]


def cleared_event_id(line_id: str, contact_id: str) -> str:
    """The id of the clear a QUEUESTART line makes for one contact: the same line and contact, the same id."""
    digest = hashlib.sha256(f"{line_id}|{contact_id}".encode("utf-8", "backslashreplace")).hexdigest()
    return EVENT_ID_PREFIX + digest[:EVENT_ID_HEX_CHARS]


def derived_event_id(line_id: str, *parts: str) -> str:
    """The id of an event a line makes beside its own (a member's logout at a QUEUESTART, the pause of
    ADDMEMBER|PAUSED, an agent-pool login per queue): the same line and parts, the same id."""
    return cleared_event_id(line_id, "|".join(parts))


def _occurred_at(value: str, tz: tzinfo) -> datetime:
    try:
        if _EPOCH.match(value):
            return datetime.fromtimestamp(float(value), UTC)
        parsed = datetime.fromisoformat(value)
    except (ValueError, OverflowError, OSError) as error:
        raise _LineError("time: neither Unix seconds nor a date") from error
    # A date without an offset is wall-clock time where the PBX runs.
    local = parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed
    try:
        # A date with no UTC equivalent (year 1 east of Greenwich is year 0 in UTC, year 9999 west of it
        # year 10000) is this line's error here rather than the store's later.
        local.astimezone(UTC)
    except (ValueError, OverflowError) as error:
        raise _LineError("time: a date outside the years 1 to 9999 in UTC") from error
    return local


def _seconds(data: list[str], index: int, name: str, required: bool) -> float | None:
    value = data[index].strip() if index < len(data) else ""
    if not value:
        if required:
            raise _LineError(f"{name}: missing")
        return None
    try:
        seconds = float(value)
    except ValueError as error:
        raise _LineError(f"{name}: not a number") from error
    if not 0 <= seconds < float("inf"):
        raise _LineError(f"{name}: must be a finite number of seconds, at least 0")
    return seconds


def _agent(value: str) -> str | None:
    value = value.strip()
    return None if not value or value == NONE else value[:AGENT_MAX]


def _call_event(fields: list[str], verb: str, tz: tzinfo) -> dict[str, Any]:
    uniqueid, queue_name, agent = fields[1].strip(), fields[2].strip(), fields[3]
    data = fields[FIXED_FIELDS:]
    if not uniqueid or uniqueid == NONE:
        raise _LineError("uniqueid: missing on a call line")
    if not queue_name or queue_name == NONE:
        raise _LineError("queue: missing on a call line")
    queue = slugify_queue(queue_name)
    # One channel can leave a queue and enter another (an overflow): each queue visit is its own contact.
    contact_id = f"{uniqueid}@{queue}"
    if len(contact_id) > CONTACT_ID_MAX:
        raise _LineError(f"uniqueid: longer than {CONTACT_ID_MAX - len(queue) - 1} characters")
    event: dict[str, Any] = {
        "event_id": event_id(fields),
        "contact_id": contact_id,
        "queue": queue,
        "occurred_at": _occurred_at(fields[0].strip(), tz),
        "source": SOURCE,
    }
    if verb == "ENTERQUEUE":
        event["type"] = "call.offered"
    elif verb == "CONNECT":
        event.update(
            type="call.answered", agent=_agent(agent), wait_seconds=_seconds(data, 0, "hold time", True)
        )
    elif verb in LEAVE_WAIT_FIELD:
        wait = _seconds(data, LEAVE_WAIT_FIELD[verb], "wait time", False)
        event.update(type="call.abandoned", wait_seconds=wait, reason=verb)
    elif verb in COMPLETE_VERBS:
        event.update(type="call.ended", agent=_agent(agent), resolved=True)
    else:
        event.update(type="call.transferred", agent=_agent(agent))
    return event


def _member(value: str) -> str:
    agent = _agent(value)
    if agent is None:
        raise _LineError("agent: missing on a member line")
    return agent


def _member_events(fields: list[str], verb: str, tz: tzinfo) -> tuple[dict[str, Any], ...]:
    queue_name = fields[2].strip()
    if not queue_name or queue_name == NONE:
        raise _LineError("queue: missing on a member line")
    agent = _member(fields[3])
    data = fields[FIXED_FIELDS:]
    first = data[0].strip() if data else ""
    line_id = event_id(fields)
    event: dict[str, Any] = {
        "event_id": line_id,
        "type": MEMBER_VERBS[verb],
        "queue": slugify_queue(queue_name),
        "occurred_at": _occurred_at(fields[0].strip(), tz),
        "agent": agent,
        "source": SOURCE,
    }
    if verb == "PAUSE" and first:
        event["reason"] = first[:PAUSE_REASON_MAX]
    if verb == "ADDMEMBER" and first.upper() == ADDED_PAUSED:
        paused = {**event, "event_id": derived_event_id(line_id, "agent.paused"), "type": "agent.paused"}
        return event, paused
    return (event,)


def parse_line(line: str, tz: tzinfo = UTC) -> ParseResult | None:
    """One queue_log line; None for a blank line. `tz` is where a date without an offset was written."""
    text = line.strip()
    if not text:
        return None
    fields = text.split("|")
    if len(fields) < FIXED_FIELDS:
        return Malformed(f"expected at least {FIXED_FIELDS} |-separated fields, found {len(fields)}")
    verb = fields[4].strip().upper()
    fields[4] = verb
    if verb in IGNORED_VERBS:
        return Ignored(verb)
    if verb == RESTART_VERB:
        try:
            at = _occurred_at(fields[0].strip(), tz).timestamp()
        except _LineError as error:
            return Malformed(f"{verb}: {error}")
        return Restart(at, event_id(fields))
    if verb in MEMBER_VERBS:
        try:
            return Member(_member_events(fields, verb, tz))
        except _LineError as error:
            return Malformed(f"{verb}: {error}")
    if verb in SESSION_VERBS:
        try:
            agent = _member(fields[3])
            at = _occurred_at(fields[0].strip(), tz).timestamp()
        except _LineError as error:
            return Malformed(f"{verb}: {error}")
        return AgentSession(SESSION_VERBS[verb], agent, at, event_id(fields), verb)
    if verb not in CALL_VERBS:
        if not verb:
            return Malformed("verb: missing")
        return Unknown(verb[:VERB_REPORT_MAX])
    try:
        return Parsed(_call_event(fields, verb, tz))
    except _LineError as error:
        return Malformed(f"{verb}: {error}")


def decode_line(raw: bytes) -> str:
    """UTF-8, or Latin-1 for the older systems that write it: every byte string decodes, the same way."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
