"""A scenario: every setting of one run, validated once, eagerly, before any database work."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from loadgen.errors import ConfigError
from loadgen.model.latency import Latency
from loadgen.model.retry import RetryPolicy
from loadgen.model.shapes import SHAPE_NAMES

__all__ = [
    "Scenario",
    "parse_duration",
    "DISTRIBUTIONS",
    "SHAPES",
    "READ_KINDS",
    "LOAD_MODELS",
    "ISOLATION_LEVELS",
    "CC_MODES",
    "NOWAIT_LOCK_TIMEOUT_MS",
    "OCC_COMMIT_LOCK_TIMEOUT_MS",
]

DISTRIBUTIONS: tuple[str, ...] = ("uniform", "zipf", "hotspot", "hotset")
#: Transaction shapes by name (the registry: loadgen.model.shapes).
SHAPES: tuple[str, ...] = SHAPE_NAMES
#: PostgreSQL isolation levels a run may ask for (DSQL has one: snapshot isolation).
ISOLATION_LEVELS: tuple[str, ...] = ("repeatable-read", "read-committed", "serializable")
#: Concurrency control on PostgreSQL targets (loadgen.db.cc). occ: first committer wins, as
#: on DSQL (snapshot reads, writes applied with COMMIT, the later committer fails there);
#: nowait: PostgreSQL's own writes with no lock wait (the later *writer* fails at once, 55P03);
#: locking: PostgreSQL's own row-lock waits (and deadlocks). DSQL is always occ.
CC_MODES: tuple[str, ...] = ("occ", "nowait", "locking")
#: nowait mode's lock_timeout: PostgreSQL's smallest (it counts whole milliseconds; 0 means wait forever).
NOWAIT_LOCK_TIMEOUT_MS = 1
#: occ mode's safety net: the longest a COMMIT waits for a row another COMMIT holds (its
#: pipeline holds it for microseconds; longer means the server stalled).
OCC_COMMIT_LOCK_TIMEOUT_MS = 50
#: What a read-only transaction of the read mix does.
READ_KINDS: tuple[str, ...] = ("balance", "audit")
#: How transactions arrive (loadgen.engine.load).
LOAD_MODELS: tuple[str, ...] = ("closed", "batches", "open")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str | float | int, *, allow_zero: bool = False) -> float:
    """Seconds from ``90``, ``"90"``, ``"30s"``, ``"2m"``, ``"1h"`` (and ``0`` when ``allow_zero``)."""
    if isinstance(text, bool):
        raise ConfigError(f"duration must be a number of seconds or like 30s, 2m: got {text!r}")
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        m = _DURATION.match(text)
        if not m:
            raise ConfigError(f"duration must be a number of seconds or like 30s, 2m: got {text!r}")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ConfigError(f"duration must be {'zero or more' if allow_zero else 'positive'}, got {text!r}")
    return seconds


@dataclass(frozen=True)
class Scenario:
    """What one run does. The defaults are a short, hot run that shows conflicts quickly."""

    name: str = "hot-quick"
    accounts: int = 10
    users: int = 50
    spawn_rate: float = 50.0
    duration_s: float = 20.0
    initial_balance: int = 100
    amount: int = 1
    distribution: str = "uniform"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Concurrency control: occ (default, what DSQL does) or locking (PostgreSQL's row-lock waits).
    cc: str = "occ"
    #: cc locking only: stop waiting on row locks after this many ms (None or 0: wait).
    lock_timeout_ms: float | None = None
    seed: int | None = None
    # Key distribution parameters (loadgen.model.keys), used by the distribution named above.
    zipf_s: float = 1.0
    hot_ops: float = 0.8  # hotspot: this share of operations ...
    hot_keys: float = 0.2  # ... goes to this share of the accounts (YCSB's 80/20)
    hotset_p: float = 0.9  # hotset: probability of choosing among ...
    hotset_k: int = 10  # ... the first k accounts
    #: Amounts drawn uniformly from amount..amount_max (None: always ``amount``).
    amount_max: int | None = None
    transaction: str = "update-returning"
    #: multi-leg: payees per transaction.
    legs: int = 2
    #: Share of transactions that only read; ``read_kind`` says what they read.
    read_mix: float = 0.0
    read_kind: str = "balance"
    load: str = "closed"
    #: closed loop: pause between one user's transactions.
    think_ms: float = 0.0
    #: batches: ``users`` parallel transactions, all awaited, this many times.
    batches: int = 10
    #: open loop: transactions started per second, whatever their latency.
    arrival_rate: float = 100.0
    #: PostgreSQL targets: the transactions' isolation level (repeatable-read is what DSQL gives).
    isolation: str = "repeatable-read"
    #: Emulated latency (loadgen.model.latency): added to every round trip, client-side ...
    rtt_ms: float = 0.0
    #: ... plus a random extra of this mean (exponential) ...
    rtt_jitter_ms: float = 0.0
    #: ... and this much more on COMMIT.
    commit_ms: float = 0.0
    #: Gates for CI (loadgen.results.gates): the run exits 3 when its conflict rate, retries per
    #: commit or transaction p99 (ms) is above one of these (None: no gate).
    max_conflict_rate: float | None = None
    max_retries_per_commit: float | None = None
    max_txn_p99_ms: float | None = None

    def __post_init__(self) -> None:
        if self.accounts < 2:
            raise ConfigError(f"accounts must be at least 2 (a transfer needs a payer and a payee), got {self.accounts}")
        if self.users < 1:
            raise ConfigError(f"users must be at least 1, got {self.users}")
        if not self.spawn_rate > 0:
            raise ConfigError(f"spawn rate must be positive, got {self.spawn_rate}")
        if not self.duration_s > 0:
            raise ConfigError(f"duration must be positive, got {self.duration_s}")
        if self.initial_balance < 0:
            raise ConfigError(f"initial balance must not be negative, got {self.initial_balance}")
        if self.amount < 1:
            raise ConfigError(f"amount must be at least 1, got {self.amount}")
        if self.distribution not in DISTRIBUTIONS:
            raise ConfigError(f"key distribution must be one of {', '.join(DISTRIBUTIONS)}, got {self.distribution!r}")
        if self.cc not in CC_MODES:
            raise ConfigError(f"concurrency control (cc) must be one of {', '.join(CC_MODES)}, got {self.cc!r}")
        if self.lock_timeout_ms is not None:
            if not self.lock_timeout_ms >= 0:
                raise ConfigError(f"lock timeout must not be negative milliseconds, got {self.lock_timeout_ms}")
            if self.cc != "locking":
                raise ConfigError(f"lock_timeout_ms is for cc = locking; cc = {self.cc} sets its own lock_timeout")
        Latency(self.rtt_ms, self.rtt_jitter_ms, self.commit_ms)  # checks the three
        if self.max_conflict_rate is not None and not 0 <= self.max_conflict_rate <= 1:
            raise ConfigError(f"max conflict rate must be a share from 0 to 1, got {self.max_conflict_rate}")
        for name, limit in (("max retries per commit", self.max_retries_per_commit), ("max txn p99 ms", self.max_txn_p99_ms)):
            if limit is not None and not limit >= 0:
                raise ConfigError(f"{name} must not be negative, got {limit}")
        self._check_workload()

    def _check_workload(self) -> None:
        for name, value, choices in (
            ("transaction shape", self.transaction, SHAPES),
            ("read kind", self.read_kind, READ_KINDS),
            ("load model", self.load, LOAD_MODELS),
            ("isolation level", self.isolation, ISOLATION_LEVELS),
        ):
            if value not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        if self.cc == "occ" and self.isolation != "repeatable-read":
            raise ConfigError(
                f"cc = occ reads at a snapshot (isolation repeatable-read), so it cannot run isolation {self.isolation}; "
                "use cc = nowait or locking for it"
            )
        if not self.zipf_s > 0:
            raise ConfigError(f"zipf exponent must be positive, got {self.zipf_s}")
        for name, share in (("hotspot operation share", self.hot_ops), ("hotspot key share", self.hot_keys)):
            if not 0 < share <= 1:
                raise ConfigError(f"{name} must be in (0, 1], got {share}")
        if not 0 <= self.hotset_p <= 1:
            raise ConfigError(f"hot set probability must be in [0, 1], got {self.hotset_p}")
        if self.distribution == "hotset" and not 2 <= self.hotset_k < self.accounts:
            raise ConfigError(f"hot set size must be from 2 to accounts - 1 ({self.accounts - 1}), got {self.hotset_k}")
        if self.amount_max is not None and self.amount_max < self.amount:
            raise ConfigError(f"amount max ({self.amount_max}) is below amount ({self.amount})")
        if self.legs < 1 or (self.transaction == "multi-leg" and self.legs > self.accounts - 1):
            raise ConfigError(f"legs must be from 1 to accounts - 1 ({self.accounts - 1}), got {self.legs}")
        if self.transaction.startswith("joint-withdrawal") and self.accounts < 4:
            raise ConfigError(f"joint withdrawals need at least 4 accounts (customers and merchants), got {self.accounts}")
        if not 0 <= self.read_mix <= 1:
            raise ConfigError(f"read mix must be a share in [0, 1], got {self.read_mix}")
        if self.think_ms < 0:
            raise ConfigError(f"think time must not be negative, got {self.think_ms} ms")
        if self.batches < 1:
            raise ConfigError(f"batches must be at least 1, got {self.batches}")
        if not self.arrival_rate > 0:
            raise ConfigError(f"arrival rate must be positive, got {self.arrival_rate}")

    @property
    def latency(self) -> Latency:
        """The emulated latency added to each round trip."""
        return Latency(self.rtt_ms, self.rtt_jitter_ms, self.commit_ms)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
