"""Writing queue_log lines the way Asterisk does, at times relative to a base, for the tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo


@dataclass
class QueueLog:
    """Lines `time|uniqueid|queue|agent|VERB|data...` at `base + t` s, in time order as Asterisk writes."""

    base: int
    entries: list[tuple[int, str]] = field(default_factory=list)

    def add(self, t: int, uniqueid: str, queue: str, agent: str, verb: str, *data: object) -> None:
        line = "|".join([str(self.base + t), uniqueid, queue, agent, verb, *map(str, data)])
        self.entries.append((t, line))

    def add_dated(
        self, t: int, zone: str, uniqueid: str, queue: str, agent: str, verb: str, *data: object
    ) -> None:
        """A line from a writer that puts the local date and time, without an offset, first."""
        stamp = datetime.fromtimestamp(self.base + t, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")
        self.entries.append((t, "|".join([stamp, uniqueid, queue, agent, verb, *map(str, data)])))

    @property
    def lines(self) -> list[str]:
        return [line for _, line in sorted(self.entries, key=lambda entry: entry[0])]

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


# A time zone without daylight saving, so a dated line means the same instant on every day of the year.
DATED_ZONE = "Etc/GMT-2"
CALLER_ID = "004533669900"


def centre_log(base: int) -> QueueLog:
    """A morning in a citizen-service centre's three queues, as Asterisk 1.4 to 20 would log it.

    Times are seconds after `base`. The call ids name the call (cN) for the expectations in the tests.
    """
    log = QueueLog(base)
    bs, pas, over = "Borgerservice", "Pas og Kørekort", "Overflow"

    def uid(n: int) -> str:
        return f"{base}.{n}"

    log.add(0, "NONE", "NONE", "NONE", "QUEUESTART", "")
    log.add(1, "NONE", bs, "SIP/anna", "ADDMEMBER", "")
    log.add(1, "NONE", bs, "SIP/bo", "ADDMEMBER", "")
    log.add(2, "NONE", bs, "SIP/carl", "PAUSE", "Frokost")
    log.add(3, "NONE", bs, "SIP/carl", "UNPAUSE", "")
    # c1: answered after 20 s by anna, the caller hangs up after 180 s of talk.
    log.add(0, uid(1), bs, "NONE", "ENTERQUEUE", "", CALLER_ID, 1)
    log.add(20, uid(1), bs, "SIP/anna", "CONNECT", 20, f"{base}.501", 4)
    log.add(200, uid(1), bs, "SIP/anna", "COMPLETECALLER", 20, 180, 1)
    # c2: bo does not answer, carl answers after 85 s (outside 60 s) and hangs up after 300 s.
    log.add(10, uid(2), bs, "NONE", "ENTERQUEUE", "", "004512121212", 2)
    log.add(25, uid(2), bs, "SIP/bo", "RINGNOANSWER", 15000)
    log.add(95, uid(2), bs, "SIP/carl", "CONNECT", 85, f"{base}.502", 3)
    log.add(395, uid(2), bs, "SIP/carl", "COMPLETEAGENT", 85, 300, 2)
    # c3: hangs up after 3 s (a short abandon); c4 after 120 s.
    log.add(30, uid(3), bs, "NONE", "ENTERQUEUE", "", "004523232323", 1)
    log.add(33, uid(3), bs, "NONE", "ABANDON", 1, 1, 3)
    log.add(40, uid(4), bs, "NONE", "ENTERQUEUE", "", "004534343434", 2)
    log.add(160, uid(4), bs, "NONE", "ABANDON", 2, 2, 120)
    # c5: the queue's 300 s timeout sends the caller on; c6 presses 5 after 45 s.
    log.add(50, uid(5), bs, "NONE", "ENTERQUEUE", "", "004545454545", 3)
    log.add(350, uid(5), bs, "NONE", "EXITWITHTIMEOUT", 1, 3, 300)
    log.add(60, uid(6), bs, "NONE", "ENTERQUEUE", "", "004556565656", 4)
    log.add(105, uid(6), bs, "NONE", "EXITWITHKEY", 5, 1, 2, 45)
    # c7: answered after 30 s by bo, who transfers the caller after 150 s.
    log.add(70, uid(7), bs, "NONE", "ENTERQUEUE", "", "004567676767", 3)
    log.add(100, uid(7), bs, "SIP/bo", "CONNECT", 30, f"{base}.507", 2)
    log.add(250, uid(7), bs, "SIP/bo", "TRANSFER", 2000, "from-internal", 30, 150, 1)
    # c8: enters and no exit line follows: still waiting when the KPIs are read.
    log.add(400, uid(8), bs, "NONE", "ENTERQUEUE", "", "004578787878", 1)
    # c9: its ENTERQUEUE is missing (the log begins mid-call); CONNECT says it waited 40 s.
    log.add(500, uid(9), bs, "SIP/anna", "CONNECT", 40, f"{base}.509", 2)
    log.add(600, uid(9), bs, "SIP/anna", "COMPLETECALLER", 40, 100, 1)
    # c10 and c11: the same caller hangs up after 15 s, calls again and is answered after 10 s.
    log.add(600, uid(10), bs, "NONE", "ENTERQUEUE", "", CALLER_ID, 1)
    log.add(615, uid(10), bs, "NONE", "ABANDON", 1, 1, 15)
    log.add(700, uid(11), bs, "NONE", "ENTERQUEUE", "", CALLER_ID, 1)
    log.add(710, uid(11), bs, "SIP/bo", "CONNECT", 10, f"{base}.511", 3)
    log.add(900, uid(11), bs, "SIP/bo", "COMPLETECALLER", 10, 190, 1)
    # c12: times out of Borgerservice after 60 s; the dialplan puts the same channel in Overflow,
    # where dorte answers after 20 s and hangs up after 119 s.
    log.add(800, uid(12), bs, "NONE", "ENTERQUEUE", "", "004590909090", 2)
    log.add(860, uid(12), bs, "NONE", "EXITWITHTIMEOUT", 1, 2, 60)
    log.add(861, uid(12), over, "NONE", "ENTERQUEUE", "", "004590909090", 1)
    log.add(881, uid(12), over, "SIP/dorte", "CONNECT", 20, f"{base}.512", 6)
    log.add(1000, uid(12), over, "SIP/dorte", "COMPLETEAGENT", 20, 119, 1)
    # c13: nobody is logged in to Pas og Kørekort: the caller is let out after 2 s.
    log.add(300, uid(13), pas, "NONE", "ENTERQUEUE", "", "004511223344", 1)
    log.add(302, uid(13), pas, "NONE", "EXITEMPTY", 1, 1, 2)
    # c14 to c16: an Asterisk 1.4 writes fewer data fields: no position on ENTERQUEUE, no ring time on
    # CONNECT, no original position on COMPLETECALLER, and no wait on EXITWITHTIMEOUT and EXITWITHKEY.
    log.add(320, uid(14), pas, "NONE", "ENTERQUEUE", "", "004522334455")
    log.add(335, uid(14), pas, "Agent/1001", "CONNECT", 15, f"{base}.514")
    log.add(435, uid(14), pas, "Agent/1001", "COMPLETECALLER", 15, 100)
    log.add(340, uid(15), pas, "NONE", "ENTERQUEUE", "", "")
    log.add(440, uid(15), pas, "NONE", "EXITWITHTIMEOUT", 1)
    log.add(345, uid(16), pas, "NONE", "ENTERQUEUE", "", "")
    log.add(375, uid(16), pas, "NONE", "EXITWITHKEY", 0, 2)
    # c17: a writer that puts the local date first: answered after 90 s, ended after 110 s.
    log.add_dated(1100, DATED_ZONE, uid(17), pas, "NONE", "ENTERQUEUE", "", "004533445566", 1)
    log.add_dated(1190, DATED_ZONE, uid(17), pas, "SIP/erik", "CONNECT", 90, f"{base}.517", 7)
    log.add_dated(1300, DATED_ZONE, uid(17), pas, "SIP/erik", "COMPLETEAGENT", 90, 110, 1)
    # c18: blind transfer after 60 s of talk; c19: attended transfer after 60 s.
    log.add(1150, uid(18), pas, "NONE", "ENTERQUEUE", "", "004544556677", 1)
    log.add(1160, uid(18), pas, "SIP/erik", "CONNECT", 10, f"{base}.518", 2)
    log.add(1220, uid(18), pas, "SIP/erik", "BLINDTRANSFER", 3000, "from-internal", 10, 60, 1)
    log.add(1200, uid(19), pas, "NONE", "ENTERQUEUE", "", "004555667788", 1)
    log.add(1205, uid(19), pas, "SIP/fie", "CONNECT", 5, f"{base}.519", 2)
    log.add(1265, uid(19), pas, "SIP/fie", "ATTENDEDTRANSFER", "BRIDGE", f"{base}.520", 5, 60, 1)
    # Agents and configuration, and a verb from a newer Asterisk or a custom dialplan.
    log.add(1270, "NONE", pas, "SIP/fie", "RINGCANCELED", 1200)
    log.add(1280, "NONE", bs, "SIP/anna", "REMOVEMEMBER", "")
    log.add(1290, "NONE", "NONE", "NONE", "CONFIGRELOAD", "")
    log.add(1295, uid(19), pas, "SIP/fie", "WRAPUPSTART", 30)
    return log
