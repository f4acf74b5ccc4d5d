"""The whole state of a Window as bytes, and back: what a checkpoint stores (app/db/checkpoint.py).

Generic on purpose: every attribute of the window goes in (a part added to Window later is covered with
no change here), except what belongs to the live process rather than to the state: the target lookup the
routes change (kept by reference, so a restored state reads the live targets), the configuration and
time zone (the restoring process's own), and the version and generation counters (they only ever grow in
the window a state is adopted into). Pickle is only ever read back from the service's own database, and
a state written by other code is refused before it is unpickled: see app/db/checkpoint.py's fingerprint.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from app.core.window import Window

PROTOCOL = 5
# Attributes of Window that are the process's, not the state's.
NOT_STATE = frozenset({"targets", "config", "tz", "version", "generation"})
_TARGETS = "targets"


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, targets: object) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self._targets = targets

    def persistent_id(self, obj: Any) -> str | None:
        # Parts that hold the window's target lookup keep holding the restoring window's.
        return _TARGETS if obj is self._targets else None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, targets: object) -> None:
        super().__init__(file)
        self._targets = targets

    def persistent_load(self, pid: Any) -> object:
        if pid != _TARGETS:
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        return self._targets


def dump_state(window: Window) -> bytes:
    """The window's state; call with nothing applied to it meanwhile (no await in between)."""
    state = {name: value for name, value in vars(window).items() if name not in NOT_STATE}
    buffer = io.BytesIO()
    _Pickler(buffer, window.targets).dump(state)
    return buffer.getvalue()


def load_state(window: Window, data: bytes) -> None:
    """Give a fresh window (same configuration) the state dump_state took; then adopt() it as after a
    replay."""
    state = _Unpickler(io.BytesIO(data), window.targets).load()
    if not isinstance(state, dict) or not NOT_STATE.isdisjoint(state):
        raise ValueError("not a window state")
    missing = set(vars(window)) - NOT_STATE - set(state)
    if missing:
        raise ValueError(f"window state lacks {', '.join(sorted(missing))}")
    vars(window).update(state)
