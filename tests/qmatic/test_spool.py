"""The relay's spool on its own: what survives a crash, what an acknowledgement removes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.forwarding import DeliveryError
from app.qmatic.relay import ACKED_FILE, Spool, offline_status


def bodies(spool: Spool, most: int = 100) -> list[bytes]:
    return [record.body for record in spool.take(most, timeout=0)]


def test_records_survive_a_reopen_until_acknowledged(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_records=3)
    spool.open()
    seqs = [spool.append(json.dumps({"n": n}).encode()) for n in range(7)]
    assert seqs == list(range(1, 8))
    spool.acknowledge(4)
    spool.close()
    # Segments of three: 1-3 is gone (all acknowledged); 4-6 holds one still to forward; 7 is current.
    assert sorted(path.name for path in tmp_path.glob("spool-*")) == [
        "spool-000000000004.jsonl",
        "spool-000000000007.jsonl",
    ]

    again = Spool(tmp_path, segment_records=3)
    again.open()
    assert bodies(again) == [json.dumps({"n": n}).encode() for n in range(4, 7)]
    assert again.append(b"{}") == 8
    assert offline_status(tmp_path)["backlog"] == 4
    again.acknowledge(8)
    assert again.backlog() == (0, None)
    assert json.loads((tmp_path / ACKED_FILE).read_text())["acked"] == 8


def test_a_record_cut_short_by_a_crash_is_cut_off(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append(b'{"a": 1}')
    spool.close()
    segment = next(tmp_path.glob("spool-*"))
    with segment.open("ab") as out:
        out.write(b'{"seq": 2, "received_at": "2026-')

    again = Spool(tmp_path)
    again.open()
    assert bodies(again) == [b'{"a": 1}']
    assert again.append(b'{"b": 2}') == 2
    again.close()
    assert [json.loads(line)["seq"] for line in segment.read_text().splitlines()] == [1, 2]


def test_damage_before_the_last_record_is_not_papered_over(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append(b"{}")
    spool.append(b"[]")
    spool.close()
    segment = next(tmp_path.glob("spool-*"))
    segment.write_bytes(b"garbage\n" + segment.read_bytes().split(b"\n", 1)[1])

    with pytest.raises(DeliveryError, match="unreadable spool record"):
        Spool(tmp_path).open()
