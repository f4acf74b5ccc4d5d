"""What the lifespan builds and every layer uses: the settings, the store, the window, the writer, the
tokens and the queue registry, as one typed object (routes get it through app/api/deps.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.queues import QueueRegistry
from app.core.targets import TargetBook
from app.core.window import Window
from app.db.rollup import RollupWriter
from app.db.tail import Tail
from app.db.tokens import DEFAULT_TOKEN_NAME, token_digest
from app.db.waits import WaitFeed
from app.db.writer import GroupCommitWriter
from app.metrics import Metrics
from app.settings import Settings


@dataclass
class Tokens:
    """The configured secrets and the SHA-256 digests checked against; kept out of repr (never logged).

    `ingest` is the configured ingest token, named "default"; `named` maps the digest of every ingest token
    in force (it and the stored ones not revoked, app/db/tokens.py) to its name, and is replaced whole
    when the stored ones are reloaded.
    """

    ingest: str = field(repr=False)
    read: str | None = field(repr=False)
    admin: str | None = field(repr=False)
    read_digest: bytes | None = field(init=False, repr=False)
    admin_digest: bytes | None = field(init=False, repr=False)
    named: dict[bytes, str] = field(init=False, repr=False)
    # False until the stored tokens are first read: until then an unknown token may be a stored one.
    stored_loaded: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.read_digest = None if self.read is None else token_digest(self.read)
        self.admin_digest = None if self.admin is None else token_digest(self.admin)
        self.named = {token_digest(self.ingest): DEFAULT_TOKEN_NAME}

    def use_stored(self, stored: dict[bytes, str]) -> None:
        """Take the stored tokens in force (digest -> name); the configured one keeps its name."""
        self.named = {**stored, token_digest(self.ingest): DEFAULT_TOKEN_NAME}
        self.stored_loaded = True


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    window: Window
    targets: TargetBook
    writer: GroupCommitWriter
    tokens: Tokens
    clock: Callable[[], float] = time.time
    ready: bool = False
    replayed_events: int = 0
    replay_seconds: float = 0.0
    rollup: RollupWriter | None = None
    # Other instances' commits, read from the events table (app/db/tail.py).
    tail: Tail | None = None
    # Whether start-up loaded the window checkpoint (and replayed only the log after it).
    joined_from_checkpoint: bool = False
    # The lobby's expected-wait ledger and its score (app/db/waits.py).
    waits: WaitFeed | None = None
    kpi_query_cache: dict[bytes, tuple[tuple[int, int], bytes]] = field(default_factory=dict)
    # Queues admitted, held by requests in flight, and retired (app/core/queues.py, app/api/queues.py).
    queues: QueueRegistry = field(default_factory=QueueRegistry)
    # Serialises retiring, restoring and the refresh that applies the CLI's changes (app/api/queues.py).
    admin_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # This app's own Prometheus registry and instruments (a registry per app, so tests never share one).
    metrics: Metrics = field(default_factory=Metrics)
