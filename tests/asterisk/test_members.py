"""Asterisk member lines as staff events: the parser, and the resolver that places agent-pool lines in
queues and ends the sessions a QUEUESTART cut off.

The lines are laid out as Asterisk writes them: app_queue.c logs `queue|callid|member|ADDMEMBER|` (callid
the dialplan channel's uniqueid, MANAGER, CLI or REALTIME; `PAUSED` as data when added paused),
`queue|NONE|member|PAUSE|reason` from set_queue_member_pause, and from set_member_paused without a queue
`NONE|NONE|member|PAUSEALL|` before one PAUSE per queue; chan_agent and app_agent_pool log
`NONE|uniqueid|Agent/N|AGENTLOGIN|channel` and `...|AGENTLOGOFF|channel|logintime`; Asterisk 1.4's callback
agents `AGENTCALLBACKLOGOFF|exten@context|logintime|reason` (as in Wazo's queue_log samples)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from app.api.schemas import single_event
from app.asterisk import members
from app.asterisk.parser import (
    IGNORED_VERBS,
    AgentSession,
    Ignored,
    Malformed,
    Member,
    Parsed,
    ParseResult,
    Restart,
    parse_line,
)
from app.core.events import Event

T = 1_718_000_000  # 2024-06-10T06:13:20Z
AT = datetime.fromtimestamp(T, UTC)


def staff(result: ParseResult | None) -> list[dict[str, Any]]:
    assert isinstance(result, Member), result
    return list(result.events)


def test_addmember_logs_the_member_in_to_the_lines_queue() -> None:
    # AddQueueMember() from the dialplan writes the uniqueid of the channel that ran it; the manager
    # writes MANAGER, the CLI writes CLI, realtime writes REALTIME.
    for callid in ("1718000000.12", "MANAGER", "CLI", "REALTIME", "NONE"):
        (event,) = staff(parse_line(f"{T}|{callid}|Borgerservice|PJSIP/anna|ADDMEMBER|"))
        assert event == {
            "event_id": event["event_id"],
            "type": "agent.logged_in",
            "queue": "borgerservice",
            "occurred_at": AT,
            "agent": "PJSIP/anna",
            "source": "asterisk",
        }
        validated = single_event.validate_python(event)
        # The subject of a staff event is its agent, in contact_id.
        assert (validated.contact_id, validated.agent, validated.type) == (
            "PJSIP/anna",
            "PJSIP/anna",
            event["type"],
        )


def test_a_member_added_paused_is_logged_in_and_paused() -> None:
    login, pause = staff(parse_line(f"{T}|MANAGER|Pas og Kørekort|PJSIP/bo|ADDMEMBER|PAUSED"))

    assert (login["type"], pause["type"]) == ("agent.logged_in", "agent.paused")
    assert login["queue"] == pause["queue"] == "pas-og-koerekort"
    assert login["event_id"] != pause["event_id"]
    assert "reason" not in pause
    # The same line again: the same two ids.
    again = staff(parse_line(f"{T}|MANAGER|Pas og Kørekort|PJSIP/bo|ADDMEMBER|PAUSED"))
    assert [event["event_id"] for event in again] == [login["event_id"], pause["event_id"]]


def test_pause_carries_its_reason_and_unpause_resumes() -> None:
    (pause,) = staff(parse_line(f"{T}|NONE|Borgerservice|PJSIP/anna|PAUSE|Frokost"))
    (bare,) = staff(parse_line(f"{T}|NONE|Borgerservice|PJSIP/anna|PAUSE|"))
    (old,) = staff(parse_line(f"{T}|NONE|Borgerservice|PJSIP/anna|PAUSE"))
    (resume,) = staff(parse_line(f"{T + 60}|NONE|Borgerservice|PJSIP/anna|UNPAUSE|"))
    (removed,) = staff(parse_line(f"{T + 90}|NONE|Borgerservice|PJSIP/anna|REMOVEMEMBER|"))

    assert (pause["type"], pause["reason"]) == ("agent.paused", "Frokost")
    assert single_event.validate_python(pause).reason == "Frokost"
    assert "reason" not in bare
    assert "reason" not in old
    assert resume["type"] == "agent.resumed"
    assert removed["type"] == "agent.logged_out"
    # A long reason is cut to what the event schema stores.
    (long,) = staff(parse_line(f"{T}|NONE|Borgerservice|PJSIP/anna|PAUSE|{'x' * 100}"))
    assert single_event.validate_python(long).reason == "x" * 64


def test_pauseall_is_only_a_marker_before_the_pause_per_queue() -> None:
    """PauseQueueMember() without a queue: app_queue writes PAUSEALL, then one PAUSE per queue."""
    lines = [
        f"{T}|NONE|NONE|PJSIP/anna|PAUSEALL|",
        f"{T}|NONE|Borgerservice|PJSIP/anna|PAUSE|Møde",
        f"{T}|NONE|Pas og Kørekort|PJSIP/anna|PAUSE|Møde",
        f"{T + 600}|NONE|NONE|PJSIP/anna|UNPAUSEALL|",
        f"{T + 600}|NONE|Borgerservice|PJSIP/anna|UNPAUSE|",
        f"{T + 600}|NONE|Pas og Kørekort|PJSIP/anna|UNPAUSE|",
    ]
    results = [parse_line(text) for text in lines]

    assert results[0] == Ignored("PAUSEALL")
    assert results[3] == Ignored("UNPAUSEALL")
    paused = [event for result in results if isinstance(result, Member) for event in result.events]
    assert [(event["type"], event["queue"]) for event in paused] == [
        ("agent.paused", "borgerservice"),
        ("agent.paused", "pas-og-koerekort"),
        ("agent.resumed", "borgerservice"),
        ("agent.resumed", "pas-og-koerekort"),
    ]
    assert {"PAUSEALL", "UNPAUSEALL"} <= IGNORED_VERBS


@pytest.mark.parametrize(
    ("text", "login", "agent"),
    [
        # app_agent_pool (Asterisk 12+) and chan_agent: queue NONE, the login channel as data.
        (f"{T}|1718000000.7|NONE|Agent/1001|AGENTLOGIN|PJSIP/1001-00000007", True, "Agent/1001"),
        (f"{T}|1718000000.7|NONE|Agent/1001|AGENTLOGOFF|PJSIP/1001-00000007|3600", False, "Agent/1001"),
        # Asterisk 1.4's callback agents: exten@context, and on logoff the time logged in and why.
        (f"{T}|1718000000.4|NONE|Agent/3001|AGENTCALLBACKLOGIN|1002@pcm-dev", True, "Agent/3001"),
        (f"{T}|NONE|NONE|Agent/3001|AGENTCALLBACKLOGOFF|1002@pcm-dev|43|CommandLogoff", False, "Agent/3001"),
    ],
)
def test_agent_pool_lines_are_sessions_without_a_queue(text: str, login: bool, agent: str) -> None:
    result = parse_line(text)

    assert isinstance(result, AgentSession)
    assert (result.login, result.agent, result.at) == (login, agent, float(T))
    assert result.line_id == parse_line(text).line_id  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"{T}|NONE|NONE|PJSIP/anna|ADDMEMBER|", "ADDMEMBER: queue: missing on a member line"),
        (f"{T}|NONE||PJSIP/anna|PAUSE|x", "PAUSE: queue: missing on a member line"),
        (f"{T}|NONE|Borgerservice|NONE|UNPAUSE|", "UNPAUSE: agent: missing on a member line"),
        (f"{T}|NONE|Borgerservice||REMOVEMEMBER|", "REMOVEMEMBER: agent: missing on a member line"),
        (f"{T}|1.1|NONE|NONE|AGENTLOGIN|SIP/1", "AGENTLOGIN: agent: missing on a member line"),
        ("soon|NONE|q|PJSIP/a|ADDMEMBER|", "ADDMEMBER: time: neither Unix seconds nor a date"),
        ("soon|1.1|NONE|Agent/1|AGENTLOGOFF|SIP/1|4", "AGENTLOGOFF: time: neither Unix seconds nor a date"),
    ],
)
def test_malformed_member_lines_say_why(text: str, reason: str) -> None:
    assert parse_line(text) == Malformed(reason)


def test_connect_and_complete_name_the_agent_for_the_staff_state() -> None:
    connect = parse_line(f"{T}|1718000000.42|Borgerservice|Agent/1001|CONNECT|20|1718000000.43|4")
    complete = parse_line(f"{T + 180}|1718000000.42|Borgerservice|Agent/1001|COMPLETECALLER|20|180|1")
    nobody = parse_line(f"{T + 180}|1718000000.42|Borgerservice|NONE|COMPLETEAGENT|20|180|1")

    assert isinstance(connect, Parsed)
    assert isinstance(complete, Parsed)
    assert isinstance(nobody, Parsed)
    assert (connect.event["type"], connect.event["agent"]) == ("call.answered", "Agent/1001")
    assert (complete.event["type"], complete.event["agent"]) == ("call.ended", "Agent/1001")
    assert nobody.event["agent"] is None


# ---- the resolver --------------------------------------------------------------------------------


@dataclass
class Live:
    """A window that knows some open sessions (with their start) and some agents' queues."""

    sessions: dict[tuple[str, str], float] = field(default_factory=dict)
    queues: dict[str, list[str]] = field(default_factory=dict)

    def open_sessions(self, began_before: float) -> Sequence[tuple[str, str]]:
        return sorted(key for key, at in self.sessions.items() if at < began_before)

    def queues_of(self, agent: str) -> Sequence[str]:
        return self.queues.get(agent, [])


def read(*texts: str) -> list[tuple[int, Event | AgentSession | Restart]]:
    lines: list[tuple[int, Event | AgentSession | Restart]] = []
    for number, text in enumerate(texts, start=1):
        result = parse_line(text)
        if isinstance(result, Member):
            lines.extend((number, single_event.validate_python(event)) for event in result.events)
        elif isinstance(result, Parsed):
            lines.append((number, single_event.validate_python(result.event)))
        elif isinstance(result, AgentSession | Restart):
            lines.append((number, result))
    return lines


def summary(resolution: members.Resolution) -> list[tuple[int, str, str, str, float]]:
    return [
        (number, event.type, event.contact_id, event.queue, event.at - T)
        for number, event in resolution.events
    ]


def test_queuestart_ends_every_session_begun_before_it_in_every_queue() -> None:
    """anna is in two queues (one from an earlier request), bo in one; carl was added after the restart."""
    live = Live(sessions={("PJSIP/anna", "pas"): T - 3600.0})
    lines = read(
        f"{T}|MANAGER|Borgerservice|PJSIP/anna|ADDMEMBER|",
        f"{T + 5}|MANAGER|Borgerservice|PJSIP/bo|ADDMEMBER|",
        f"{T + 9}|MANAGER|Borgerservice|PJSIP/dorte|ADDMEMBER|",
        f"{T + 10}|MANAGER|Borgerservice|PJSIP/dorte|REMOVEMEMBER|",
        f"{T + 100}|NONE|NONE|NONE|QUEUESTART|",
        f"{T + 100}|MANAGER|Borgerservice|PJSIP/carl|ADDMEMBER|",
    )

    resolution = members.resolve(lines, live)

    assert summary(resolution) == [
        (1, "agent.logged_in", "PJSIP/anna", "borgerservice", 0),
        (2, "agent.logged_in", "PJSIP/bo", "borgerservice", 5),
        (3, "agent.logged_in", "PJSIP/dorte", "borgerservice", 9),
        (4, "agent.logged_out", "PJSIP/dorte", "borgerservice", 10),
        (5, "agent.logged_out", "PJSIP/anna", "borgerservice", 100),
        (5, "agent.logged_out", "PJSIP/anna", "pas", 100),
        (5, "agent.logged_out", "PJSIP/bo", "borgerservice", 100),
        (6, "agent.logged_in", "PJSIP/carl", "borgerservice", 100),
    ]
    restart_ids = [event.event_id for number, event in resolution.events if number == 5]
    assert len(set(restart_ids)) == 3
    # The same lines again make the same ids: stored once.
    assert [event.event_id for _, event in members.resolve(lines, live).events] == [
        event.event_id for _, event in resolution.events
    ]


def test_a_restart_sent_again_once_its_logouts_are_stored_ends_nothing_new() -> None:
    restart = read(f"{T + 100}|NONE|NONE|NONE|QUEUESTART|")
    # The first delivery ended anna's session; only carl's, begun after the restart, is open now.
    live = Live(sessions={("PJSIP/carl", "borgerservice"): T + 100.0})

    assert members.resolve(restart, live).events == []


def test_agentlogin_opens_a_session_in_each_queue_the_agent_is_known_in() -> None:
    live = Live(queues={"Agent/1001": ["borgerservice"]})
    lines = read(
        f"{T}|1718000000.7|NONE|Agent/1001|AGENTLOGIN|PJSIP/1001-00000007",
        # The request's own lines place the agent in Pas og Kørekort too: a call the agent answers.
        f"{T + 30}|1718000000.9|Pas og Kørekort|Agent/1001|CONNECT|12|1718000000.10|3",
        f"{T + 40}|1718000000.8|NONE|Agent/2002|AGENTLOGIN|PJSIP/2002-00000008",
        f"{T + 3600}|1718000000.7|NONE|Agent/1001|AGENTLOGOFF|PJSIP/1001-00000007|3600",
        f"{T + 3700}|1718000000.8|NONE|Agent/2002|AGENTLOGOFF|PJSIP/2002-00000008|3660",
    )

    resolution = members.resolve(lines, live)

    assert summary(resolution) == [
        (1, "agent.logged_in", "Agent/1001", "borgerservice", 0),
        (1, "agent.logged_in", "Agent/1001", "pas-og-koerekort", 0),
        (4, "agent.logged_out", "Agent/1001", "borgerservice", 3600),
        (4, "agent.logged_out", "Agent/1001", "pas-og-koerekort", 3600),
    ]
    # Agent/2002 is in no queue the service knows: the login is reported, the logoff has nothing to end.
    unknown = "AGENTLOGIN: queue is NONE and Agent/2002 is not yet known in any queue"
    assert resolution.errors == [(3, unknown)]
    assert resolution.ignored == ["AGENTLOGOFF"]


def test_agentlogoff_ends_the_sessions_the_window_holds_open() -> None:
    live = Live(sessions={("Agent/1001", "borgerservice"): T - 60.0, ("Agent/1001", "pas"): T - 30.0})
    lines = read(
        f"{T}|NONE|Pas|Agent/1001|REMOVEMEMBER|",
        f"{T + 10}|1718000000.7|NONE|Agent/1001|AGENTLOGOFF|PJSIP/1001-00000007|70",
    )

    assert summary(members.resolve(lines, live)) == [
        (1, "agent.logged_out", "Agent/1001", "pas", 0),
        (2, "agent.logged_out", "Agent/1001", "borgerservice", 10),
    ]
