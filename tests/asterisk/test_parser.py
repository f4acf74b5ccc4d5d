from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from app.api.schemas import SLUG_PATTERN, single_event
from app.asterisk.parser import (
    IGNORED_VERBS,
    AgentSession,
    Ignored,
    Malformed,
    Member,
    Parsed,
    ParseResult,
    Restart,
    Unknown,
    decode_line,
    parse_line,
    slugify_queue,
)
from tests.asterisk.logs import CALLER_ID, centre_log

T = 1_718_000_000  # 2024-06-10T06:13:20Z
AT = datetime.fromtimestamp(T, UTC)
NOT_SECONDS = "must be a finite number of seconds, at least 0"


def event(result: ParseResult | None) -> dict[str, Any]:
    assert isinstance(result, Parsed), result
    return result.event


def line(verb: str, *data: object, agent: str = "NONE", queue: str = "Borgerservice") -> str:
    return "|".join([str(T), "1718000000.42", queue, agent, verb, *map(str, data)])


def test_enterqueue_is_an_offered_call_without_the_caller_id() -> None:
    parsed = event(parse_line(line("ENTERQUEUE", "", CALLER_ID, 3)))

    assert parsed == {
        "event_id": parsed["event_id"],
        "type": "call.offered",
        "contact_id": "1718000000.42@borgerservice",
        "queue": "borgerservice",
        "occurred_at": AT,
        "source": "asterisk",
    }
    assert CALLER_ID not in repr(parsed)


def test_connect_is_an_answer_with_the_hold_time_as_wait() -> None:
    parsed = event(parse_line(line("CONNECT", 42, "1718000000.43", 7, agent="SIP/anna")))

    assert (parsed["type"], parsed["wait_seconds"], parsed["agent"]) == ("call.answered", 42.0, "SIP/anna")


@pytest.mark.parametrize(
    ("verb", "data", "wait"),
    [
        ("ABANDON", (2, 4, 77), 77.0),
        ("EXITWITHTIMEOUT", (1, 3, 300), 300.0),
        ("EXITEMPTY", (1, 1, 2), 2.0),
        ("EXITWITHKEY", (5, 1, 2, 45), 45.0),  # the key comes first
        # Older versions: no wait field, so the window takes the wait from the arrival.
        ("EXITWITHTIMEOUT", (1,), None),
        ("EXITWITHKEY", (0, 2), None),
    ],
)
def test_leaving_verbs_are_abandons_keeping_the_reason(
    verb: str, data: tuple[object, ...], wait: float | None
) -> None:
    parsed = event(parse_line(line(verb, *data)))

    assert (parsed["type"], parsed["wait_seconds"], parsed["reason"]) == ("call.abandoned", wait, verb)


@pytest.mark.parametrize(
    ("verb", "data", "kind"),
    [
        ("COMPLETECALLER", (20, 180, 1), "call.ended"),
        ("COMPLETEAGENT", (20, 180), "call.ended"),
        ("TRANSFER", (2000, "from-internal", 20, 180, 1), "call.transferred"),
        ("BLINDTRANSFER", (2000, "from-internal", 20, 180, 1), "call.transferred"),
        ("ATTENDEDTRANSFER", ("BRIDGE", "1718000000.50", 20, 180, 1), "call.transferred"),
    ],
)
def test_finishing_verbs(verb: str, data: tuple[object, ...], kind: str) -> None:
    parsed = event(parse_line(line(verb, *data, agent="SIP/bo")))

    assert (parsed["type"], parsed["agent"]) == (kind, "SIP/bo")
    # Completed without a transfer is resolved at first contact; a transfer is not.
    assert parsed.get("resolved") is (True if kind == "call.ended" else None)


@pytest.mark.parametrize("verb", sorted(IGNORED_VERBS))
def test_ringing_marker_and_config_verbs_are_ignored(verb: str) -> None:
    assert parse_line(f"{T}|NONE|Borgerservice|SIP/anna|{verb}|x") == Ignored(verb)


def test_unknown_verbs_are_reported_not_guessed() -> None:
    assert parse_line(line("HOLDMUSICCHANGED", 1)) == Unknown("HOLDMUSICCHANGED")
    assert parse_line(line("x" * 200)) == Unknown("X" * 32)


def test_blank_lines_are_skipped() -> None:
    assert parse_line("") is None
    assert parse_line("  \r\n") is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("no pipes at all", "expected at least 5 |-separated fields, found 1"),
        (f"{T}|1.1|q|NONE", "expected at least 5 |-separated fields, found 4"),
        (f"{T}|1.1|q|NONE|", "verb: missing"),
        ("soon|1.1|q|NONE|ENTERQUEUE||", "ENTERQUEUE: time: neither Unix seconds nor a date"),
        (f"{'9' * 13}|1.1|q|NONE|ENTERQUEUE||", "ENTERQUEUE: time: neither Unix seconds nor a date"),
        (f"{T}|NONE|q|NONE|ENTERQUEUE||", "ENTERQUEUE: uniqueid: missing on a call line"),
        (f"{T}||q|NONE|ENTERQUEUE||", "ENTERQUEUE: uniqueid: missing on a call line"),
        (f"{T}|1.1|NONE|NONE|ABANDON|1|1|3", "ABANDON: queue: missing on a call line"),
        (f"{T}|1.1|q|a|CONNECT", "CONNECT: hold time: missing"),
        (f"{T}|1.1|q|a|CONNECT|soon", "CONNECT: hold time: not a number"),
        (f"{T}|1.1|q|a|CONNECT|-4", f"CONNECT: hold time: {NOT_SECONDS}"),
        (f"{T}|1.1|q|a|CONNECT|inf", f"CONNECT: hold time: {NOT_SECONDS}"),
        (f"{T}|1.1|q|a|ABANDON|1|1|nan", f"ABANDON: wait time: {NOT_SECONDS}"),
        (f"{T}|{'9' * 130}|q|a|ENTERQUEUE||", "ENTERQUEUE: uniqueid: longer than 126 characters"),
    ],
)
def test_malformed_lines_say_why(text: str, reason: str) -> None:
    assert parse_line(text) == Malformed(reason)


def test_a_date_without_offset_is_wall_clock_time_where_the_pbx_runs() -> None:
    copenhagen = ZoneInfo("Europe/Copenhagen")

    summer = event(parse_line("2024-06-10 08:13:20|1.1|q|NONE|ENTERQUEUE||", copenhagen))
    winter = event(parse_line("2024-01-10 08:13:20|1.1|q|NONE|ENTERQUEUE||", copenhagen))
    with_offset = event(parse_line("2024-06-10T08:13:20+02:00|1.1|q|NONE|ENTERQUEUE||", UTC))
    in_utc = event(parse_line("2024-06-10 06:13:20|1.1|q|NONE|ENTERQUEUE||"))

    assert summer["occurred_at"] == AT
    assert winter["occurred_at"] == datetime(2024, 1, 10, 7, 13, 20, tzinfo=UTC)
    assert with_offset["occurred_at"] == AT
    assert with_offset["occurred_at"].utcoffset() == timedelta(hours=2)
    assert in_utc["occurred_at"] == AT


def test_epoch_may_carry_a_fraction() -> None:
    parsed = event(parse_line(f"{T}.250|1.1|q|NONE|ENTERQUEUE||"))
    assert parsed["occurred_at"] == AT + timedelta(milliseconds=250)
    assert parsed["occurred_at"].tzinfo is UTC


def test_event_ids_come_from_the_line_alone() -> None:
    enter = line("ENTERQUEUE", "", CALLER_ID, 1)
    first = event(parse_line(enter))["event_id"]

    assert re.fullmatch(r"ast-[0-9a-f]{40}", first)
    assert event(parse_line(enter))["event_id"] == first
    assert event(parse_line(f"  {enter}\r\n"))["event_id"] == first
    assert event(parse_line(enter.replace(str(T), str(T + 1), 1)))["event_id"] != first
    assert event(parse_line(enter.replace("|1", "|2")))["event_id"] != first
    # The caller id is not part of the id: an id must not let anyone recover the number by trying them all.
    assert event(parse_line(enter.replace(CALLER_ID, "004599999999")))["event_id"] == first


def test_one_channel_in_two_queues_is_two_contacts() -> None:
    first = event(parse_line(line("ENTERQUEUE", "", "", 1, queue="Borgerservice")))
    second = event(parse_line(line("ENTERQUEUE", "", "", 1, queue="Overflow")))

    assert first["contact_id"] != second["contact_id"]
    assert first["event_id"] != second["event_id"]


def test_every_line_of_a_realistic_log_passes_the_event_schema() -> None:
    zone = ZoneInfo("Etc/GMT-2")
    kinds: dict[str, int] = {}
    for text in centre_log(T).lines:
        result = parse_line(text, zone)
        assert result is not None
        assert not isinstance(result, Malformed), (text, result)
        events = [result.event] if isinstance(result, Parsed) else []
        events += list(result.events) if isinstance(result, Member) else []
        for one in events:
            validated = single_event.validate_python(one)
            kinds[validated.type] = kinds.get(validated.type, 0) + 1
            assert validated.at >= AT.timestamp()
    assert kinds == {
        "call.offered": 19,
        "call.answered": 10,
        "call.abandoned": 9,
        "call.ended": 7,
        "call.transferred": 3,
        "agent.logged_in": 2,
        "agent.paused": 1,
        "agent.resumed": 1,
        "agent.logged_out": 1,
    }


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Borgerservice", "borgerservice"),
        ("Pas og Kørekort", "pas-og-koerekort"),
        ("Ældre & Sundhed", "aeldre-sundhed"),
        ("Café Åbent", "cafe-aabent"),
        ("  support_2nd-line  ", "support_2nd-line"),
        ("queue.with.dots", "queue-with-dots"),
    ],
)
def test_queue_names_become_slugs(name: str, slug: str) -> None:
    assert slugify_queue(name) == slug


def test_queue_names_with_nothing_to_keep_or_too_long_get_a_hash() -> None:
    assert re.fullmatch(r"queue-[0-9a-f]{8}", slugify_queue("!!!"))
    assert slugify_queue("!!!") != slugify_queue("???")
    long_a, long_b = "a" * 70 + "1", "a" * 70 + "2"
    assert len(slugify_queue(long_a)) == 64
    assert slugify_queue(long_a) != slugify_queue(long_b)


@given(st.text(max_size=200))
def test_any_queue_name_gives_a_valid_slug_and_always_the_same(name: str) -> None:
    slug = slugify_queue(name)
    assert re.fullmatch(SLUG_PATTERN, slug)
    assert slugify_queue(name) == slug


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=300))
def test_no_line_crashes_the_parser(text: str) -> None:
    result = parse_line(text)
    assert result is None or isinstance(
        result, Parsed | Member | AgentSession | Restart | Ignored | Unknown | Malformed
    )
    for one in (
        [result.event] if isinstance(result, Parsed) else result.events if isinstance(result, Member) else []
    ):
        with contextlib.suppress(ValidationError):
            single_event.validate_python(one)


def test_lines_decode_as_utf8_or_else_latin1() -> None:
    assert decode_line("Kørekort".encode()) == "Kørekort"
    assert decode_line("Kørekort".encode("latin-1")) == "Kørekort"


def test_reason_is_allowed_only_on_leave_events() -> None:
    base = {"event_id": "e", "contact_id": "c", "queue": "q", "occurred_at": AT}

    left = single_event.validate_python({**base, "type": "call.abandoned", "reason": "EXITWITHTIMEOUT"})
    assert left.reason == "EXITWITHTIMEOUT"
    with pytest.raises(ValidationError, match="reason: only allowed on leave events"):
        single_event.validate_python({**base, "type": "call.answered", "reason": "ABANDON"})
    with pytest.raises(ValidationError, match="at most 64 characters"):
        single_event.validate_python({**base, "type": "call.abandoned", "reason": "x" * 65})
    with pytest.raises(ValidationError, match="NUL"):
        single_event.validate_python({**base, "type": "ticket.cancelled", "reason": "a\x00b"})
