"""The whole state of a Window as bytes, and back: what a checkpoint stores (app/db/checkpoint.py).

Generic on purpose: every attribute of the window goes in (a part added to Window later is covered with
no change here), except what belongs to the live process rather than to the state: the target lookup the
routes change (kept by reference, so a restored state reads the live targets), the configuration and
time zone (the restoring process's own), and the version and generation counters (they only ever grow in
the window a state is adopted into). Pickle is only ever read back from the service's own database, and
a state written by other code is refused before it is unpickled: see app/db/checkpoint.py's fingerprint.

The core's module-level constants the state refers to (state names, shared vectors, zero sums) come back
as the restoring process's own objects, not as equal copies: the core compares some of them by identity
(`state is AVAILABLE`, `vectors[-1] is _OFFLINE_VECTOR`), and a copy would read as another value.
"""

from __future__ import annotations

import io
import pickle
import sys
import types
from typing import Any

from app.core.window import Window

PROTOCOL = 5
# Attributes of Window that are the process's, not the state's.
NOT_STATE = frozenset({"targets", "config", "tz", "version", "generation"})
_TARGETS = "targets"
# The modules whose constants keep their identity; a constant is named "module:attribute".
_CORE = "app.core."
# Values pickle keeps apart by value anyway, or that are the code rather than the state.
_NOT_CONSTANTS = (type(None), bool, int, float, complex, type, types.ModuleType, types.FunctionType)


def _core_constants() -> dict[int, str]:
    """id -> name of every module-level value of the loaded core modules (those alive for the process)."""
    found: dict[int, str] = {}
    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith(_CORE) or module is None:
            continue
        for name, value in vars(module).items():
            if not name.startswith("__") and not isinstance(value, _NOT_CONSTANTS) and not callable(value):
                found.setdefault(id(value), f"{module_name}:{name}")
    return found


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, targets: object) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self._persistent = _core_constants()
        # Parts that hold the window's target lookup keep holding the restoring window's.
        self._persistent[id(targets)] = _TARGETS

    def persistent_id(self, obj: Any) -> str | None:
        return self._persistent.get(id(obj))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, targets: object) -> None:
        super().__init__(file)
        self._targets = targets

    def persistent_load(self, pid: Any) -> object:
        if pid == _TARGETS:
            return self._targets
        module_name, _, name = str(pid).partition(":")
        module = sys.modules.get(module_name) if module_name.startswith(_CORE) else None
        if module is None or not hasattr(module, name):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        return getattr(module, name)


def dump_state(window: Window, beside: object = None) -> bytes:
    """The window's state, and `beside` it any other state of the same moment (the caller's: the lobby's
    wait ledger); call with nothing applied to either meanwhile (no await in between)."""
    state = {name: value for name, value in vars(window).items() if name not in NOT_STATE}
    buffer = io.BytesIO()
    _Pickler(buffer, window.targets).dump((state, beside))
    return buffer.getvalue()


def load_state(window: Window, data: bytes) -> object:
    """Give a fresh window (same configuration) the state dump_state took, and return what was beside it;
    then adopt() the window as after a replay."""
    loaded = _Unpickler(io.BytesIO(data), window.targets).load()
    if not isinstance(loaded, tuple) or len(loaded) != 2:
        raise ValueError("not a window state")
    state, beside = loaded
    if not isinstance(state, dict) or not NOT_STATE.isdisjoint(state):
        raise ValueError("not a window state")
    missing = set(vars(window)) - NOT_STATE - set(state)
    if missing:
        raise ValueError(f"window state lacks {', '.join(sorted(missing))}")
    vars(window).update(state)
    return beside
