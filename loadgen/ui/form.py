"""The web UI's start form: loadgen's settings as Locust options, and the scenario they describe."""

from __future__ import annotations

from typing import Any

from loadgen.model.retry import BACKOFFS, RetryPolicy
from loadgen.model.scenario import DISTRIBUTIONS, Scenario
from loadgen.targets.base import CONNINFO_TARGETS

__all__ = ["FORM_TYPES", "STOP_TIMEOUT_S", "DEFAULT_WEB_HOST", "add_arguments", "scenario_from_options"]

#: Locust listens on every interface unless told otherwise; loadgen only on loopback.
DEFAULT_WEB_HOST = "127.0.0.1"
#: Seconds users get to finish their transaction when a test stops.
STOP_TIMEOUT_S = 3
#: Options the start form sends that are loadgen's, with how to read them back.
FORM_TYPES: dict[str, type] = {
    "accounts": int,
    "distribution": str,
    "initial_balance": int,
    "amount": int,
    "max_attempts": int,
    "retry_deadline": float,
    "backoff": str,
    "backoff_base_ms": float,
    "backoff_cap_ms": float,
    "lock_timeout_ms": float,
    "target": str,
    "seed": int,
}


def add_arguments(parser: Any) -> None:
    """loadgen's settings as Locust options; all but ``--out`` appear in the start form."""
    g = parser  # argument groups do not take include_in_web_ui / is_secret
    g.add_argument("--accounts", type=int, default=10, help="Accounts in the bank; the bank is re-seeded at every start")
    g.add_argument("--distribution", default="uniform", choices=list(DISTRIBUTIONS), help="How payer and payee are chosen")
    g.add_argument("--initial-balance", type=int, default=100, help="Each account's balance after seeding")
    g.add_argument("--amount", type=int, default=1, help="Amount of each transfer")
    g.add_argument("--max-attempts", type=int, default=100, help="Retry policy: tries per transaction")
    g.add_argument("--retry-deadline", type=float, default=10.0, help="Retry policy: give up on a transaction after this many seconds")
    g.add_argument("--backoff", default="none", choices=list(BACKOFFS), help="Retry policy: pause between tries")
    g.add_argument("--backoff-base-ms", type=float, default=5.0, help="Retry policy: first backoff pause (ms)")
    g.add_argument("--backoff-cap-ms", type=float, default=1000.0, help="Retry policy: longest backoff pause (ms)")
    g.add_argument(
        "--lock-timeout-ms",
        type=float,
        default=0.0,
        help="PostgreSQL lock mode: give up row-lock waits after this many ms (0: wait, the server's default)",
    )
    g.add_argument(
        "--target",
        default="embedded",
        choices=list(CONNINFO_TARGETS),
        help="Database: loadgen's embedded PostgreSQL or any PostgreSQL (--dsn)",
    )
    g.add_argument(
        "--dsn",
        default="",
        is_secret=True,
        help="Connection string for target postgres (kept out of pages and files; or set LOADGEN_DSN)",
    )
    g.add_argument("--seed", type=int, default=0, help="Random seed for reproducible key choices (0: random)")
    g.add_argument("--out", default="reports", include_in_web_ui=False, help="Each test's results go in a new directory under this one")
    # Safe by default: Locust's own default is every interface. And on Stop, give users
    # a moment to finish the transaction in hand rather than kill them mid-statement
    # (which leaves attempts "interrupted" and connections dirty). Kept short: in
    # distributed mode a worker rejoins the master only this long after a stop.
    parser.set_defaults(web_host=DEFAULT_WEB_HOST, stop_timeout=str(STOP_TIMEOUT_S))


def scenario_from_options(opts: Any, users: int) -> Scenario:
    """The scenario the start form describes (raises ConfigError on nonsense)."""
    retry = RetryPolicy(
        max_attempts=int(opts.max_attempts),
        deadline_s=float(opts.retry_deadline),
        backoff=opts.backoff,
        base_ms=float(opts.backoff_base_ms),
        cap_ms=float(opts.backoff_cap_ms),
    )
    run_time = getattr(opts, "run_time", None)
    spawn_rate = getattr(opts, "spawn_rate", None) or float(max(users, 1))
    return Scenario(
        name="web-ui",
        accounts=int(opts.accounts),
        users=max(int(users), 1),
        spawn_rate=float(spawn_rate),
        duration_s=float(run_time) if run_time else 3600.0,  # replaced by the real length at stop
        initial_balance=int(opts.initial_balance),
        amount=int(opts.amount),
        distribution=opts.distribution,
        retry=retry,
        lock_timeout_ms=float(opts.lock_timeout_ms) or None,
        seed=int(opts.seed) or None,
    )
