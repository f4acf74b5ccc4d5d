"""Every setting in one typed place: environment variables prefixed QUEUEPULSE_ and an optional .env; and
the core's configuration (targets, window) made from them, for the service and the commands alike."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.events import Channel
from app.core.kpis import Target
from app.core.targets import TargetBook
from app.core.window import WindowConfig

Formula = Literal["offered", "answered", "abandons_excluded"]


class QueueTarget(BaseModel):
    """One entry of QUEUEPULSE_QUEUE_TARGETS: the queue's threshold and goal, and optionally its formula."""

    # A misspelt key would otherwise be dropped and its queue silently given the inherited value.
    model_config = ConfigDict(extra="forbid")

    # The bounds PUT /v1/targets takes: finite, at most a day.
    threshold_seconds: float = Field(gt=0, le=86_400)
    goal_pct: float = Field(ge=0, le=100)
    # None: the queue keeps QUEUEPULSE_FORMULA, as it keeps every setting it does not name.
    formula: Formula | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUEUEPULSE_", env_file=".env", extra="ignore")

    database_url: str | None = None
    data_dir: Path = Path("./var")
    host: str = "127.0.0.1"
    port: int = 8000
    # Tokens come from these or from the files the *_token_file settings name (Docker/Kubernetes secrets);
    # repr=False keeps them out of any log line that prints the settings.
    ingest_token: str | None = Field(default=None, repr=False)
    read_token: str | None = Field(default=None, repr=False)
    admin_token: str | None = Field(default=None, repr=False)
    ingest_token_file: Path | None = None
    read_token_file: Path | None = None
    admin_token_file: Path | None = None
    # Events older than this many days are deleted by `queuepulse prune`; None keeps them forever.
    retention_days: int | None = Field(default=None, ge=1)
    time_zone: str = "Europe/Copenhagen"

    phone_threshold_seconds: float = 60.0
    phone_goal_pct: float = 90.0
    visit_threshold_seconds: float = 300.0
    visit_goal_pct: float = 70.0
    formula: Formula = "offered"
    # Per-queue overrides keyed "channel/queue", e.g.
    # QUEUEPULSE_QUEUE_TARGETS='{"phone/borgerservice": {"threshold_seconds": 30, "goal_pct": 95}}'
    queue_targets: dict[str, QueueTarget] = Field(default_factory=dict)
    first_contact_resolution_goal_pct: float = 80.0
    warning_margin_pct: float = 5.0
    # Callers who hang up within a few seconds usually dialled wrong; the "offered" formula leaves them out.
    short_abandon_seconds: float = 5.0
    # A contact whose hang-up was lost must not stay "waiting now" forever.
    max_wait_seconds: float = 4 * 3600.0
    # Events this much older than their arrival are counted as late (they still count where they belong).
    late_after_seconds: float = 60.0
    max_future_seconds: float = 300.0
    # How far back an event may be dated: ten years of backfill. Older ones are refused (422), so no typo
    # or zero date reaches the store; the schema's own floor (1970 in UTC) holds whatever this is set to.
    max_past_days: float = Field(default=3660.0, gt=0)
    max_batch: int = 1000
    max_body_bytes: int = 1_048_576
    # The request line and headers of one request (app/server.py); over it: 431 and the connection closed.
    # Browsers and curl send well under 8 KiB; the limit keeps an endless header from being buffered.
    max_header_bytes: int = Field(default=65_536, ge=1024)
    # From a request's first byte to the end of its headers, and from there to the end of its body (a
    # 1 MiB body at 1 Mbit/s takes 8 s): a client that trickles either is disconnected.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=60.0, gt=0)
    max_queues: int = 200
    # Queues one ingest token may admit (app/core/queues.py): half the cap, so a source gone wrong leaves
    # the other half to the rest, while one source alone still gets several times the 5 to 30 queues a
    # citizen-service centre runs. Set it to max_queues to let one source take the whole cap.
    max_queues_per_source: int = Field(default=100, ge=1)
    # Staffing advice (app/core/staffing.py) never plans agents busier than this share of their time.
    max_occupancy_pct: float = Field(default=85.0, gt=0, le=100)
    # The staffing plan's contact pattern: the same weekday of this many past weeks (the usual WFM baseline).
    staffing_history_weeks: int = Field(default=8, ge=1, le=52)
    # Agents and desks (app/core/staff.py): after-contact work after each contact served, ended early by
    # agent.ready; 0 counts none (a source reporting agent.ready sets it to its longest wrap-up).
    wrap_up_seconds: float = Field(default=0.0, ge=0, le=86_400)
    # Per-person states (GET /v1/staff "members") are off: the staff are watched by these screens too.
    per_agent_figures: bool = False

    # Under heavy batch load a cap below the events in flight splits them into two flushes, so one
    # inserts while the other commits and the process parses the next requests (measured: 2000 → 800
    # raised batch ingest by about a tenth, loadtests/optimisations.md).
    writer_max_batch: int = 800
    writer_queue_limit: int = 50_000
    database_pool_size: int = 5
    # Replicas (app/db/tail.py): how often each instance reads the other instances' commits from the events
    # table, and how far behind it may fall before /readyz fails (the load balancer then sends elsewhere).
    tail_poll_seconds: float = Field(default=0.025, gt=0)
    tail_max_lag_seconds: float = Field(default=10.0, gt=0)
    # How often the rollup writer stores the window checkpoint a joining instance starts from.
    checkpoint_seconds: float = Field(default=30.0, gt=0)
    # Encode the checkpoint in a forked child, so the event loop stalls for the fork only
    # (app/db/checkpoint.py); the child holds about as much memory again as the window while it runs. Off:
    # encoded on the loop, which then stalls for the encoding.
    checkpoint_fork: bool = True
    # Mounts /bench/* ceiling endpoints for `make bench`; never on in production.
    bench_endpoints: bool = False

    def resolved_ingest_token(self) -> str:
        """The configured ingest token, or one generated once and kept in the data directory."""
        configured = self.token("ingest")
        if configured:
            return configured
        path = self.data_dir / "ingest_token"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(24)
        path.write_text(token + "\n")
        path.chmod(0o600)
        return token

    def token(self, scope: Literal["ingest", "read", "admin"]) -> str | None:
        """A scope's token: the variable itself, else the file it names; None (or empty) means not set."""
        value: str | None = getattr(self, f"{scope}_token")
        path: Path | None = getattr(self, f"{scope}_token_file")
        if not value and path is not None:
            value = path.read_text().strip()
        return value or None


def target_book(settings: Settings) -> TargetBook:
    defaults = {
        Channel.PHONE: Target(settings.phone_threshold_seconds, settings.phone_goal_pct, settings.formula),
        Channel.VISIT: Target(settings.visit_threshold_seconds, settings.visit_goal_pct, settings.formula),
    }
    overrides = {}
    for name, target in settings.queue_targets.items():
        channel, _, queue = name.partition("/")
        overrides[(Channel(channel), queue)] = Target(
            target.threshold_seconds, target.goal_pct, target.formula or settings.formula
        )
    return TargetBook(defaults, overrides)


def window_config(settings: Settings) -> WindowConfig:
    return WindowConfig(
        time_zone=settings.time_zone,
        short_abandon_seconds=settings.short_abandon_seconds,
        max_wait_seconds=settings.max_wait_seconds,
        late_after_seconds=settings.late_after_seconds,
        warning_margin_pct=settings.warning_margin_pct,
        fcr_goal_pct=settings.first_contact_resolution_goal_pct,
        wrap_up_seconds=settings.wrap_up_seconds,
    )
