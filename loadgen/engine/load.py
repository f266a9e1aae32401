"""Load models: how transactions arrive at the database.

- closed: each user runs transactions back to back (optional think time between).
- batches: as the talk ran it: ``users`` transactions in parallel, wait for all of
  them, repeat ``batches`` times; the run ends when the last batch is done.
- open: transactions start at ``arrival_rate`` per second whatever their latency;
  ``users`` is the most that can be in flight. When every user is busy, arrivals
  start late; the lag is measured and the run says when it could not keep up.
  Across worker processes each takes every N-th arrival of the one schedule
  (:meth:`WorkloadStats.split`); the master adds their figures up and names a worker
  that could not keep its share (:func:`combine_open_loads`). A transaction's latency
  is also taken from its intended start, so a late start is not hidden.

Every model runs the scenario's transaction shape and read mix. ``workload_for``
gives the Locust user class for one run and a function returning what the run
adds to run.json (reads, audits, batches, arrival lag).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
from locust.exception import StopUser

from loadgen.db.classify import classify
from loadgen.db.shapes import JointRequest, MultiLegRequest, audit, joint_customers_accounts, read_balance
from loadgen.db.transfer import TransferRequest, new_txn_id
from loadgen.engine.users import AttemptFailed, TransferUser
from loadgen.model.scenario import Scenario
from loadgen.results.sketch import LogHistogram

__all__ = ["workload_for", "ScenarioUser", "BatchUser", "OpenLoopUser", "WorkloadStats", "READ", "combine_open_loads"]

#: Locust request type of the read mix's read-only transactions (name: balance or audit).
READ = "read"
#: Open loop: an arrival that starts this late counts as late.
LATE_S = 0.1


class _Barrier:
    """A reusable barrier for greenlets: the last to arrive releases the others."""

    def __init__(self, parties: int, on_release: Callable[[], None]) -> None:
        self.parties = parties
        self.waiting = 0
        self.event = gevent.event.Event()
        self.on_release = on_release

    def wait(self) -> None:
        event = self.event
        self.waiting += 1
        if self.waiting >= self.parties:
            # Cooperative scheduling: no other greenlet runs between these lines.
            self.waiting = 0
            self.event = gevent.event.Event()
            self.on_release()
            event.set()
        else:
            event.wait()


class WorkloadStats:
    """What one run's users observe beyond the attempt table (shared by the users of one run)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        # Per-transaction figures in bounded memory (loadgen.results.sketch): a run of hours holds millions.
        self.reads: dict[str, LogHistogram] = {"balance": LogHistogram(), "audit": LogHistogram()}
        self.read_failures: dict[str, int] = {}
        self.audit_mismatches = 0
        self.audit_mismatch_examples: list[str] = []
        # batches
        self.barrier = _Barrier(scenario.users, self._batch_released)
        self.batch_marks: list[float] = []
        # open loop
        self.t0: float | None = None
        self.next_arrival = 0
        self.lags = LogHistogram()  # seconds late
        #: Each transaction's latency from its intended start (its arrival's due time): no coordinated omission.
        self.from_intended = LogHistogram()  # ms
        #: Arrivals that started more than LATE_S late.
        self.late = 0
        self.quitting = False
        self.last_start = 0.0
        #: This process's share of the open loop's arrivals: every ``stride``-th from ``slot`` (a worker's).
        self.slot, self.stride = 0, 1
        #: A distributed master's view: each worker's own ``load`` figures, by worker id.
        self.workers: dict[str, dict[str, Any]] = {}

    def split(self, slot: int, stride: int) -> None:
        """Take arrivals ``slot``, ``slot + stride``, ... of the whole schedule: one worker's share of ``arrival_rate``."""
        self.slot, self.stride = slot % max(stride, 1), max(stride, 1)

    def add_worker(self, worker: str, load: dict[str, Any]) -> None:
        """A worker's own open-loop figures (a distributed master: the users ran there)."""
        self.workers[worker] = load

    def _batch_released(self) -> None:
        self.batch_marks.append(time.perf_counter())

    def arrival(self) -> float:
        """The due time (perf_counter seconds) of the next arrival of the open loop."""
        now = time.perf_counter()
        if self.t0 is None:
            self.t0 = now
        due = self.t0 + (self.slot + self.next_arrival * self.stride) / self.scenario.arrival_rate
        self.next_arrival += 1
        return due

    def to_dict(self) -> dict[str, Any]:
        s = self.scenario
        doc: dict[str, Any] = {"load": {"model": s.load}}
        if s.read_mix > 0:
            doc["reads"] = {
                "kind": s.read_kind,
                "share": s.read_mix,
                "count": sum(len(v) for v in self.reads.values()),
                "by_kind": {k: len(v) for k, v in self.reads.items() if v},
                "latency_ms": {k: v.summary() for k, v in self.reads.items() if v},
                "failures": dict(self.read_failures),
                "audits": len(self.reads["audit"]),
                "audit_mismatches": self.audit_mismatches,
                "audit_mismatch_examples": self.audit_mismatch_examples,
            }
        if s.load == "batches":
            marks = self.batch_marks
            durations = [(b - a) * 1000.0 for a, b in zip(marks, marks[1:])]
            doc["load"].update(
                batch_size=s.users,
                batches_planned=s.batches,
                batches_completed=len(durations),
                batch_ms=durations,
            )
        if s.load == "open" and self.workers:
            doc["load"].update(combine_open_loads(s, self.workers))
        elif s.load == "open":
            rate = s.arrival_rate / self.stride
            started = len(self.lags)
            # Starts per second over the span they covered (one arrival interval per start).
            span = (self.last_start - self.t0 + 1.0 / rate) if self.t0 is not None else 0.0
            achieved = started / span if span > 0 else 0.0
            late = self.late
            kept_up = started > 0 and late <= 0.01 * started and achieved >= 0.95 * rate
            doc["load"].update(
                arrival_rate=rate,
                max_in_flight=s.users,
                started=started,
                achieved_rate=achieved,
                late=late,
                late_threshold_ms=LATE_S * 1000.0,
                start_lag_ms={p: None if v is None else v * 1000.0 for p, v in self.lags.summary().items()},
                latency_from_intended_ms=self.from_intended.summary(),
                kept_up=bool(kept_up),
            )
            if self.stride > 1:
                doc["load"].update(share=f"arrivals {self.slot + 1}, {self.slot + 1 + self.stride}, ... of every {self.stride}")
        return doc


def combine_open_loads(scenario: Scenario, workers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The open loop across workers: counts and rates added up, kept up only if every worker kept its schedule.

    Percentiles cannot be added: the lag and latency figures are the worst worker's (each
    worker's own are under ``workers``).
    """
    loads = list(workers.values())

    def worst(key: str, p: str) -> float | None:
        values = [w.get(key, {}).get(p) for w in loads]
        present = [float(v) for v in values if v is not None]
        return max(present) if present else None

    started = sum(int(w.get("started", 0)) for w in loads)
    achieved = sum(float(w.get("achieved_rate", 0.0)) for w in loads)
    late = sum(int(w.get("late", 0)) for w in loads)
    return {
        "arrival_rate": scenario.arrival_rate,
        "max_in_flight": scenario.users,
        "started": started,
        "achieved_rate": achieved,
        "late": late,
        "late_threshold_ms": LATE_S * 1000.0,
        "start_lag_ms": {p: worst("start_lag_ms", p) for p in ("p50", "p99", "max")},
        "latency_from_intended_ms": {p: worst("latency_from_intended_ms", p) for p in ("p50", "p99", "max")},
        "percentiles_of": "the worst worker",
        "kept_up": bool(loads) and all(bool(w.get("kept_up")) for w in loads) and achieved >= 0.95 * scenario.arrival_rate,
        "workers": [{"id": worker, **load} for worker, load in sorted(workers.items())],
    }


class ScenarioUser(TransferUser):
    """Closed loop: the scenario's transactions (shape, amounts, read mix) back to back."""

    stats: WorkloadStats  # set per run by workload_for

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        s = self.bench.scenario
        self.scenario = s
        self.shape = self.bench.transaction  # the scenario's shape (loadgen.db.shapes)
        self.think_s = s.think_ms / 1000.0 if s.load == "closed" else 0.0

    def wait_time(self) -> float:
        return self.think_s

    def step(self) -> None:
        self.one_transaction()

    def one_transaction(self) -> None:
        s = self.scenario
        if s.read_mix > 0 and self.rng.random() < s.read_mix:
            self.read()
        else:
            self.transfer_with_shape()

    def transfer_with_shape(self) -> None:
        bench, s, rng = self.bench, self.scenario, self.rng
        amount = s.amount if s.amount_max is None else rng.randint(s.amount, s.amount_max)
        req: TransferRequest
        if s.transaction == "multi-leg":
            ids = bench.keys.distinct(rng, s.legs + 1)
            req = MultiLegRequest(new_txn_id(), ids[0], ids[1], amount, tuple(ids[1:]))
        elif s.transaction.startswith("joint-withdrawal"):
            # Customers own the first half of the accounts (two each) and pay merchants, the second half.
            half = joint_customers_accounts(s.accounts)
            payer, payee = bench.keys.pair(rng)
            payer = (payer - 1) % half + 1
            payee = half + (payee - 1) % (s.accounts - half) + 1
            req = JointRequest(new_txn_id(), payer, payee, amount, minimum=s.initial_balance)
        else:
            payer, payee = bench.keys.pair(rng)
            req = TransferRequest.new(payer, payee, amount)
        self.run_request(req, self.shape)

    def read(self) -> None:
        """One read-only transaction of the read mix (never retried: snapshot reads do not conflict)."""
        bench, s = self.bench, self.scenario
        kind = s.read_kind
        t0 = time.perf_counter()
        error: Exception | None = None
        slot = self.connection
        conn = None
        try:
            conn = slot.getconn()  # a refused connection is this read's failure
            if kind == "audit":
                total, count = audit(conn)
                expected = s.accounts * s.initial_balance
                if (total, count) != (expected, s.accounts):
                    self.stats.audit_mismatches += 1
                    if len(self.stats.audit_mismatch_examples) < 5:
                        self.stats.audit_mismatch_examples.append(
                            f"total {total} over {count} accounts, expected {expected} over {s.accounts}"
                        )
                    error = AttemptFailed("audit mismatch")
            else:
                read_balance(conn, bench.keys.draw(self.rng))
        except Exception as e:  # noqa: BLE001 - recorded as a failed read
            error = e
            outcome = classify(e).outcome
            self.stats.read_failures[outcome] = self.stats.read_failures.get(outcome, 0) + 1
            if conn is not None and not conn.closed:
                try:
                    conn.rollback()
                except Exception:  # noqa: BLE001 - putconn discards a broken connection
                    pass
        finally:
            if conn is not None:
                slot.putconn(conn)
        latency_ms = (time.perf_counter() - t0) * 1000.0
        self.stats.reads[kind].add(latency_ms)
        self._fire(request_type=READ, name=kind, response_time=latency_ms, response_length=0, exception=error, context={})


class BatchUser(ScenarioUser):
    """One of ``users`` parallel callers: a transaction per batch, all awaited, ``batches`` times."""

    def step(self) -> None:
        barrier = self.stats.barrier
        for _ in range(self.scenario.batches):
            barrier.wait()  # everyone starts the batch together, after everyone finished the last
            self.one_transaction()
        barrier.wait()  # the last batch is done for everyone
        if not self.stats.quitting:
            self.stats.quitting = True
            gevent.spawn(self.environment.runner.quit)
        raise StopUser()


class OpenLoopUser(ScenarioUser):
    """One of at most ``users`` in flight, starting arrivals due at ``arrival_rate`` per second."""

    def step(self) -> None:
        due = self.stats.arrival()
        delay = due - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        lag = max(0.0, -delay)
        self.stats.lags.add(lag)
        self.stats.late += lag > LATE_S
        self.stats.last_start = time.perf_counter()
        # Latency from the intended start: a late arrival's wait counts (no coordinated omission).
        self.intended_start = due
        try:
            self.one_transaction()
        finally:
            self.intended_start = None
        self.stats.from_intended.add((time.perf_counter() - due) * 1000.0)


# Every model runs the base class's loop (loadgen.engine.users.TransferUser.closed_loop) over its own step.


_MODELS: dict[str, type[ScenarioUser]] = {"closed": ScenarioUser, "batches": BatchUser, "open": OpenLoopUser}


def workload_for(scenario: Scenario) -> tuple[type[TransferUser], Callable[[], dict[str, Any]]]:
    """The user class of this scenario's load model (with fresh per-run stats), and its run.json additions."""
    stats = WorkloadStats(scenario)
    base = _MODELS[scenario.load]
    user_class = type(base.__name__, (base,), {"stats": stats, "__module__": __name__})
    return user_class, stats.to_dict
