"""The `queuepulse` command: one module of this package per subcommand, listed in COMMANDS."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from app.cli import (
    db,
    follow_queue_log,
    import_events,
    import_queue_log,
    migrate,
    prune,
    queues,
    rebuild_rollups,
    relay_qmatic,
    run,
    simulate,
    tokens,
)

DESCRIPTION = "The `queuepulse` command: `run` serves the API, `migrate` upgrades the database."

Handler = Callable[[argparse.Namespace], int]
# name -> (help, add arguments, handler); a new subcommand is one more module and one more entry.
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {
    "run": (run.HELP, run.add_arguments, run.cmd_run),
    "migrate": (migrate.HELP, migrate.add_arguments, migrate.cmd_migrate),
    "follow-queue-log": (follow_queue_log.HELP, follow_queue_log.add_arguments, follow_queue_log.cmd_follow),
    "prune": (prune.HELP, prune.add_arguments, prune.cmd_prune),
    "simulate": (simulate.HELP, simulate.add_arguments, simulate.cmd_simulate),
    "rebuild-rollups": (
        rebuild_rollups.HELP,
        rebuild_rollups.add_arguments,
        rebuild_rollups.cmd_rebuild_rollups,
    ),
    "relay-qmatic": (relay_qmatic.HELP, relay_qmatic.add_arguments, relay_qmatic.cmd_relay),
    "queues": (queues.HELP, queues.add_arguments, queues.cmd_queues),
    "tokens": (tokens.HELP, tokens.add_arguments, tokens.cmd_tokens),
    "db": (db.HELP, db.add_arguments, db.cmd_db),
    "import": (import_events.HELP, import_events.add_arguments, import_events.cmd_import),
    "import-queue-log": (
        import_queue_log.HELP,
        import_queue_log.add_arguments,
        import_queue_log.cmd_import_queue_log,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="queuepulse", description=DESCRIPTION)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, _handler) in COMMANDS.items():
        add_arguments(subparsers.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command][2](args)
