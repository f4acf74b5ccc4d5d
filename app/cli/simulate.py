"""`queuepulse simulate`: post a live demo stream of calls and tickets (the simulation is app/simulate.py)."""

from __future__ import annotations

import argparse
import logging
import math
import random
import secrets
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from app.simulate import Poster, PostRefused, Simulation

HELP = "post a live demo stream of calls and tickets"


def cmd_simulate(args: argparse.Namespace) -> int:
    # The poster's retries are warnings, on stderr beside this command's own lines.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        return _simulate(args)
    except PostRefused as error:
        print(f"simulate: {error}", file=sys.stderr)
        return 1


def _simulate(args: argparse.Namespace) -> int:
    tz = ZoneInfo(args.time_zone)
    rng = random.Random(args.seed)
    started = time.time()
    if args.backfill > 0:
        local_midnight = datetime.fromtimestamp(started, tz).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        begin = max(started - args.backfill * 3600, local_midnight.timestamp())
    else:
        begin = started
    simulation = Simulation(
        agents=args.agents,
        desks=args.desks,
        load=args.load,
        tz=tz,
        rng=rng,
        run_id=secrets.token_hex(4),
        now=begin,
    )
    poster = Poster(args.url, args.token)
    if begin < started:
        # The earlier part of today, played fast in ten-minute steps; then on in real time.
        at = begin
        while at < started:
            at = min(at + 600, started)
            poster.post(simulation.run_until(at))
        since = datetime.fromtimestamp(begin, tz)
        print(f"simulate: backfilled {sum(simulation.counts.values())} events since {since:%H:%M}")
    print(f"simulate: posting to {poster.endpoint} ({args.agents} agents, {args.desks} desks); Ctrl-C stops")
    deadline = started + args.duration if args.duration else math.inf
    next_report = time.time() + args.report_seconds
    try:
        while True:
            now = time.time()
            if now >= deadline:
                break
            events = simulation.run_until(now)
            if events:
                poster.post(events)
            if now >= next_report:
                next_report = now + args.report_seconds
                counts = ", ".join(f"{name} {count}" for name, count in sorted(simulation.counts.items()))
                waiting = f"{len(simulation.queue_phone)} calls, {len(simulation.queue_visit)} tickets"
                print(f"simulate: {counts}; waiting: {waiting}", flush=True)
            time.sleep(max(0.0, min(args.tick, deadline - time.time())))
    except KeyboardInterrupt:
        pass
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="base URL of a running queuepulse")
    parser.add_argument(
        "--token", required=True, help="the ingest token (make run prints it; see var/ingest_token)"
    )
    parser.add_argument("--agents", type=int, default=8, help="phone agents answering calls (default 8)")
    parser.add_argument("--desks", type=int, default=6, help="lobby desks calling tickets (default 6)")
    parser.add_argument(
        "--load", type=float, default=1.0, help="arrival rate relative to a normal day (default 1.0)"
    )
    parser.add_argument(
        "--backfill", type=float, default=0.0, help="first simulate this many hours before now (within today)"
    )
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (default: run until Ctrl-C)"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable stream")
    parser.add_argument("--time-zone", default="Europe/Copenhagen", help="for the time-of-day profile")
    parser.add_argument("--tick", type=float, default=0.5, help="seconds between posts (default 0.5)")
    parser.add_argument("--report-seconds", type=float, default=30.0, help=argparse.SUPPRESS)
