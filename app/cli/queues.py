"""`queuepulse queues list | retire CHANNEL/QUEUE | restore CHANNEL/QUEUE`: the queue registry.

Retiring a queue refuses its later events (422), frees its place under QUEUEPULSE_MAX_QUEUES and its source's
QUEUEPULSE_MAX_QUEUES_PER_SOURCE, and leaves it out of the screens, /metrics and the reports; its stored
events are kept, and `restore` brings them back. A running service takes changes up within REFRESH_SECONDS
(POST /v1/queues/{channel}/{queue}/retire applies at once).
"""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.database import run_on_database
from app.settings import Settings

HELP = "list, retire or restore the tracked queues"


def _queue(text: str) -> tuple[str, str]:
    channel, slash, queue = text.partition("/")
    if not slash or channel not in ("phone", "visit") or not queue:
        raise argparse.ArgumentTypeError(f"{text!r}: give CHANNEL/QUEUE, e.g. phone/borgerservice")
    return channel, queue


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every registered queue: who admitted it, and whether it is retired")
    retire = actions.add_parser("retire", help="refuse a queue's events and hide it; frees its place")
    retire.add_argument("queue", type=_queue, metavar="CHANNEL/QUEUE")
    restore = actions.add_parser("restore", help="admit a retired queue's events again")
    restore.add_argument("queue", type=_queue, metavar="CHANNEL/QUEUE")


def cmd_queues(args: argparse.Namespace) -> int:
    from app.api.queues import REFRESH_SECONDS
    from app.core.events import Channel
    from app.db.queues import load_queues, restore_queue, retire_queue

    settings = Settings()

    async def work(engine: Any) -> int:
        records = await load_queues(engine)
        if args.action == "list":
            admitted = sum(1 for record in records if record.retired_at is None)
            print(f"{admitted} of at most {settings.max_queues} queues admitted")
            print(f"{'QUEUE':<40} {'STATE':<9} {'ADMITTED BY':<24} {'ADMITTED':<25} RETIRED")
            for record in records:
                state = "admitted" if record.retired_at is None else "retired"
                retired = (
                    "-" if record.retired_at is None else record.retired_at.isoformat(timespec="seconds")
                )
                print(
                    f"{record.channel.value + '/' + record.queue:<40} {state:<9} "
                    f"{record.admitted_by or '-':<24} {record.admitted_at.isoformat(timespec='seconds'):<25} "
                    f"{retired}"
                )
            return 0
        channel, queue = args.queue
        key = (Channel(channel), queue)
        found = next((record for record in records if record.key == key), None)
        if found is None:
            print(f"error: no queue {channel}/{queue} is registered (see queuepulse queues list)")
            return 1
        if args.action == "retire":
            await retire_queue(engine, key, found.admitted_by)
            print(f"retired {channel}/{queue}; a running service applies it within {REFRESH_SECONDS:g} s")
            return 0
        admitted = sum(1 for record in records if record.retired_at is None)
        if found.retired_at is not None and admitted >= settings.max_queues:
            print(f"error: {admitted} queues are admitted (QUEUEPULSE_MAX_QUEUES); retire one first")
            return 1
        await restore_queue(engine, key)
        print(f"restored {channel}/{queue}; a running service applies it within {REFRESH_SECONDS:g} s")
        return 0

    return run_on_database(work)
