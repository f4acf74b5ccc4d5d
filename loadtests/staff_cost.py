"""Apply and snapshot cost with 50 agents in 10 queues, beside the code before agents existed (issue 15).

    .venv/bin/python -m loadtests.staff_cost [--rounds 5] [--commit fd60f74]

The code before agents and desks (commit fd60f74) is extracted with `git archive` into a temporary
directory; then, in one run, child processes alternate between that tree and this one, each timing one
case with time.process_time (CPU, so a busy machine slows both sides alike), best of --rounds. The cases
are built by tests/bench/test_core_bench.py's own builders (this tree's, loaded in the child whichever
tree's `app` it imports), so both sides measure the same events:

- apply 100k: the replay's inner loop, 100,000 events of a day into an empty window;
- apply 100k, 50 agents: the same contact events moved onto 10 phone queues and 50 agents, each agent
  logging into two queues, pausing three times and logging out;
- 100 snapshots (today, 1h) of a window holding 300,000 such events.

The goal is each ratio (now / fd60f74) within 1.5x. Two ceilings stand beside it, in this tree: the same
events with the part measured taken out (agents, desks and staff events stripped, so the staff book never
runs), and for apply the bare loop (each event passed to a function that does nothing), the floor of any
replay written in Python. The staff book's own first read after the replay (GET /v1/staff's reader) is
shown too: steps are walked when a subject is next read or folded, and that read walks the last few.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BEFORE_COMMIT = "fd60f74"
GOAL_RATIO = 1.5
APPLY_EVENTS = 100_000
SNAPSHOT_EVENTS = 300_000
SNAPSHOTS = 100
# case -> what it is, as the table shows it
CASES: dict[str, str] = {
    "apply_plain": f"apply {APPLY_EVENTS // 1000}k events",
    "apply_agents": f"apply {APPLY_EVENTS // 1000}k events, 50 agents in 10 queues",
    "snapshot_today": f"{SNAPSHOTS} snapshots today, 50 agents, {SNAPSHOT_EVENTS // 1000}k events",
    "snapshot_1h": f"{SNAPSHOTS} snapshots 1h, 50 agents, {SNAPSHOT_EVENTS // 1000}k events",
}
# One child per (family, side) per round; a snapshot child times both windows on the window it built.
FAMILIES: dict[str, tuple[str, ...]] = {
    "apply_plain": ("apply_plain",),
    "apply_agents": ("apply_agents",),
    "snapshots": ("snapshot_today", "snapshot_1h"),
}
SIDES = ("before", "after", "stripped")


class StaffCostError(RuntimeError):
    pass


# ---- the trees -------------------------------------------------------------------------------------


def extract(commit: str, dest: Path) -> Path:
    """`git archive` of the commit into dest; a clear error when git or the commit is missing."""
    git = shutil.which("git")
    if git is None:
        raise StaffCostError("git is not installed: the code before agents is taken from the history")
    found = subprocess.run(
        [git, "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        raise StaffCostError(
            f"commit {commit} is not in the history of {ROOT} (a shallow clone? fetch with --unshallow)"
        )
    archive = subprocess.run([git, "-C", str(ROOT), "archive", "--format=tar", commit], capture_output=True)
    if archive.returncode != 0:
        raise StaffCostError(f"git archive {commit} failed: {archive.stderr.decode(errors='replace')}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    if not (dest / "app" / "core" / "window.py").exists():
        raise StaffCostError(f"commit {commit} has no app/core/window.py")
    return dest


def _child(tree: Path, family: str, side: str) -> dict[str, float]:
    """Run one family of cases in a fresh interpreter importing `app` from `tree`; its CPU seconds."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        family,
        "--side",
        side,
        "--tree",
        str(tree),
    ]
    result = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StaffCostError(f"{family} ({side}) failed in {tree}:\n{result.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


# ---- in the child ------------------------------------------------------------------------------------


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise StaffCostError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _builders(tree: Path) -> ModuleType:
    """This tree's tests/bench/test_core_bench.py over the `app` of `tree` (checked), with this tree's
    loadtests/dataset.py, so both sides build the very same events."""
    sys.path.insert(0, str(tree))
    import app

    if not Path(app.__file__).resolve().is_relative_to(tree.resolve()):
        raise StaffCostError(f"app was imported from {app.__file__}, not from {tree}")
    import loadtests

    _load("loadtests.dataset", ROOT / "loadtests" / "dataset.py")
    loadtests.dataset = sys.modules["loadtests.dataset"]  # type: ignore[attr-defined]
    return _load("_staff_cost_builders", ROOT / "tests" / "bench" / "test_core_bench.py")


Events = list[tuple[Any, float]]


def _events(bench: ModuleType, family: str, count: int) -> Events:
    if family == "apply_plain":
        rows = bench.day_of_events(count, bench.DAY_START, bench.DAY_END)
        return [(bench._event(row), row.received_at) for row in rows]
    staffed: Events = bench._staffed_day(count)
    return staffed


def _stripped(bench: ModuleType, events: Events) -> Events:
    """The part measured taken out: no agent or desk named, no staff event."""
    contact_types = bench.EVENT_TYPES
    return [
        (dataclasses.replace(event, agent=None, desk=None), received)
        for event, received in events
        if event.type in contact_types
    ]


def _fill(bench: ModuleType, events: Events) -> Any:
    window = bench._new_window()
    apply = window.apply
    for event, received in events:
        apply(event, received)
    return window


def _timed(work: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    started = time.process_time()
    result = work()
    return time.process_time() - started, result


def run_child(family: str, side: str, tree: Path) -> dict[str, float]:
    bench = _builders(tree)
    figures: dict[str, float] = {}
    if family in ("apply_plain", "apply_agents"):
        events = _events(bench, family, APPLY_EVENTS)
        if side == "stripped":
            events = _stripped(bench, events)

            def bare() -> None:
                def sink(event: Any, received: float) -> None:
                    return None

                for event, received in events:
                    sink(event, received)

            figures["bare"], _ = _timed(bare)
        seconds, window = _timed(lambda: _fill(bench, events))
        figures[family] = seconds
        kinds = bench.EVENT_TYPES
        arrivals = sum(
            event.type in kinds and kinds[event.type][1] is bench.Step.ARRIVE for event, _ in events
        )
        if bench._arrived(window.snapshot("today", bench.NOW)) != arrivals:
            raise StaffCostError("the window does not hold the arrivals it was given")
        if hasattr(window, "staff") and side == "after":
            figures[f"{family}_first_staff_read"], _ = _timed(lambda: window.staff("today", bench.NOW))
        return figures
    events = _events(bench, family, SNAPSHOT_EVENTS)
    if side == "stripped":
        events = _stripped(bench, events)
    window = _fill(bench, events)
    # Not timed, on both sides: the first read catches up with time (housekeeping, and the staff book's
    # walk of its last steps); the figure is the snapshot of a window already read, as the wallboard's.
    window.snapshot("today", bench.NOW)
    for case, name in (("snapshot_today", "today"), ("snapshot_1h", "1h")):

        def snapshots(name: str = name) -> Any:
            for _ in range(SNAPSHOTS):
                snapshot = window.snapshot(name, bench.NOW)
            return snapshot

        figures[case], snapshot = _timed(snapshots)
        if bench._arrived(snapshot) <= 0:
            raise StaffCostError("the snapshot counts no arrival")
    return figures


# ---- in the parent -----------------------------------------------------------------------------------


def measure(
    rounds: int = 5, commit: str = BEFORE_COMMIT, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Extract `commit`, alternate child processes of both trees over every case, best of `rounds`."""
    samples: dict[str, dict[str, list[float]]] = {}
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qp-staff-cost-") as temporary:
        before = extract(commit, Path(temporary) / "before")
        trees = {"before": before, "after": ROOT, "stripped": ROOT}
        for round_number in range(rounds):
            # The order flips every round, so a machine slowing down or speeding up favours neither side.
            sides = SIDES if round_number % 2 == 0 else tuple(reversed(SIDES))
            for family in FAMILIES:
                for side in sides:
                    if log is not None:
                        log(f"round {round_number + 1}/{rounds}: {family} ({side})")
                    for name, seconds in _child(trees[side], family, side).items():
                        key = side if name in CASES else name
                        case = name if name in CASES else family
                        samples.setdefault(case, {}).setdefault(key, []).append(seconds)
    best = {case: {key: min(values) for key, values in by_key.items()} for case, by_key in samples.items()}
    return {
        "commit": commit,
        "rounds": rounds,
        "best": best,
        "samples": samples,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "wall_s": time.perf_counter() - started,
    }


def ratios(result: dict[str, Any]) -> dict[str, float]:
    """case -> now / before, for every case measured on both sides."""
    found = {}
    for case in CASES:
        figures = result["best"].get(case, {})
        if figures.get("before") and figures.get("after"):
            found[case] = figures["after"] / figures["before"]
    return found


def _cell(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:,.0f} ms"


def render(result: dict[str, Any]) -> list[str]:
    best = result["best"]
    measured = ratios(result)
    rows = []
    for case, label in CASES.items():
        figures = best.get(case, {})
        before, after, ratio = figures.get("before"), figures.get("after"), measured.get(case)
        met = "yes" if ratio is not None and ratio <= GOAL_RATIO else "no"
        rows.append(
            f"| {label} | {_cell(before)} | {_cell(after)} | "
            f"{'—' if ratio is None else f'{ratio:.2f}x'} | {met} | {_cell(figures.get('stripped'))} | "
            f"{_cell(figures.get('bare'))} |"
        )
    load_before = ", ".join(f"{value:.2f}" for value in result["load_before"])
    load_after = ", ".join(f"{value:.2f}" for value in result["load_after"])
    lines = [
        "## Apply and snapshot cost with 50 agents (issue 15)",
        "",
        f"`loadtests/staff_cost.py`: CPU seconds (time.process_time in the child), best of "
        f"{result['rounds']} child processes per side, alternating with the code before agents "
        f"(commit {result['commit']}, `git archive`); load average before: {load_before}, "
        f"after: {load_after}.",
        "",
        f"| case | {result['commit']} | now | ratio | within {GOAL_RATIO}x | ceiling: part measured stripped "
        "| ceiling: bare loop |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    first_read = best.get("apply_agents", {}).get("apply_agents_first_staff_read")
    lines.append("")
    if first_read is not None:
        lines.append(
            "- The staff book's first read after the 50-agent apply (it walks the steps of the last "
            f"minutes, which the apply left for it): {_cell(first_read)}."
        )
    lines += [
        "- Ceilings, in this tree: the same events with agents, desks and staff events stripped (the "
        "route minus the part measured: for a pure-core loop that is the plain apply without agents), and "
        "for apply the bare loop passing each event to a function that does nothing.",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="child processes per case and side (best of)")
    parser.add_argument("--commit", default=BEFORE_COMMIT, help="the code to compare with")
    parser.add_argument("--child", choices=sorted(FAMILIES), help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args.child, args.side, args.tree)))
        return 0
    try:
        result = measure(args.rounds, args.commit, lambda line: print(line, file=sys.stderr))
    except StaffCostError as error:
        print(f"staff_cost: {error}", file=sys.stderr)
        return 2
    print("\n".join(render(result)))
    measured = ratios(result)
    return 0 if len(measured) == len(CASES) and max(measured.values()) <= GOAL_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
