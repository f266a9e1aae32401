"""DSQL reference: the talk's published figures (loadgen.report.reference) beside the cells that replay it, and what differs."""

from __future__ import annotations

from typing import Any

from loadgen.model.baseline import TALK_CONDITIONS
from loadgen.report.cells import Cell, find_baseline
from loadgen.report.html import esc, ms, num, section, table
from loadgen.report.modelfit import cc_mode
from loadgen.report.reference import (
    HOT_KEY_SOURCE,
    SOURCE,
    TALK_LARGE,
    TALK_NO_RETRY,
    TALK_REPLAY,
    TALK_RETRY,
    Reference,
    replay_checks,
)
from loadgen.results.metrics import CONFLICT_RATE, CONFLICT_RATE_DEFINITION, percent

__all__ = ["reference_section"]


def _ref_row(r: Reference) -> list[str]:
    return [
        esc(r.label),
        num(r.accounts),
        num(r.concurrency),
        num(r.calls),
        percent(r.conflict_rate),
        percent(r.retried_share),
        num(r.attempts_per_commit, 4) if r.attempts_per_commit else "-",
        num(r.calls_per_s, 0),
        ms(r.mean_ms),
        esc(r.note),
    ]


def _differences(base: Cell | None) -> list[str]:
    """What differs between the baseline cell and the talk, per concurrency mode; its lambda x D is the model table's."""
    talk_ld = TALK_NO_RETRY.calls_per_s * TALK_NO_RETRY.mean_ms / 1000
    out = [
        "The talk ran 10 batches of 1,000 parallel AWS Lambda calls against a multi-AZ DSQL cluster: 908 calls/s of "
        f"about 20 ms, so about {talk_ld:.0f} in flight at the database (lambda x D = {TALK_NO_RETRY.calls_per_s:.0f}/s x "
        f"{TALK_NO_RETRY.mean_ms} ms = {talk_ld:.1f}). loadgen replays that load from one machine."
    ]
    if base is None:
        return out + ["These runs have no cell with the talk's conditions, so the comparison above is only with the published figure."]
    kind = base.run.target.get("kind", "unknown")
    server = esc(str(base.run.versions.get("server", "")).split(" on ")[0] or "server unknown")
    how = f" ({esc(base.run.sections.cc.how)})" if base.run.sections.cc.how else ""
    mode = cc_mode(base.run)
    if kind == "dsql":
        out.append("Your target is Aurora DSQL, as in the talk: no row locks, conflicts decided at COMMIT (first committer wins).")
    elif mode == "locking":
        out.append(
            f"Your target is {esc(kind)} ({server}) in cc locking mode: "
            "writers wait on row locks (and may deadlock, 40P01) before PostgreSQL reports 40001, where DSQL never waits; "
            "the model does not apply to such cells."
        )
    elif mode == "nowait":
        out.append(
            f"Your target is {esc(kind)} ({server}) in cc nowait mode{how}: no "
            "writer waits on a row lock, but the later *writer* fails at its statement (55P03), where DSQL fails the later "
            f"*committer* at COMMIT (40001); the {CONFLICT_RATE} counts both kinds the same way."
        )
    else:
        out.append(
            f"Your target is {esc(kind)} ({server}) in cc occ mode{how}: "
            "first committer wins, as on DSQL: reads at the snapshot, writes applied with COMMIT, the later committer "
            f"fails at COMMIT with 40001; the {CONFLICT_RATE} counts every contention failure whatever its SQLSTATE."
        )
    f = base.fit
    h = base.headline
    if f is not None and f.commit_rate is not None and f.window_ms is not None:
        out.append(
            f"Your lambda x D = {f.commit_rate:,.1f}/s x {f.window_ms:.1f} ms = {f.commit_rate * f.window_ms / 1000:.1f} "
            "(the model table's, lambda and D as defined there, D the snapshot-to-COMMIT window), "
            f"against the talk's {talk_ld:.1f}; your mean committed attempt took "
            f"{ms(f.attempt_ms)} ms against the talk's {TALK_NO_RETRY.mean_ms} ms. By the model a larger lambda x D means "
            "more conflicts."
        )
    why = f.not_applicable if f is not None else None
    if why:
        out.append(f"The model does not apply to this cell: {esc(why)}.")
    scen = base.run.scenario
    retry = scen.get("retry") if isinstance(scen.get("retry"), dict) else {}
    if retry:
        out.append(
            f"Retry policy: backoff {esc(retry.get('backoff', '?'))}, at most {esc(retry.get('max_attempts', '?'))} "
            "attempts; the talk retried immediately and without bound."
        )
    if scen.get("duration_s"):
        out.append(f"Your cell ran for {h['elapsed_s']:.0f} s; the talk's 10,000 calls took about 11 s.")
    return out


def reference_section(cells: list[Cell], p: str) -> str:
    base = find_baseline(cells)
    rows = [_ref_row(TALK_NO_RETRY), _ref_row(TALK_RETRY), _ref_row(TALK_LARGE)]
    classes = ["", "", ""]
    # Every cell that replays the talk (the baseline, a talk-replay run) beside the published rows, checked against them.
    replays = [c for c in cells if c.is_baseline or str(c.run.scenario.get("name", "")).startswith(TALK_REPLAY)]
    checks = ""
    for c in replays:
        h = c.headline
        measured = h["conflict_rate"]
        scen = c.run.scenario
        emulated = f"emulated {_fmt_ms(scen.get('rtt_ms'))} ms per round trip, COMMIT {_fmt_ms(scen.get('commit_ms'))} ms more"
        what = "your baseline cell" if c is base else f"{c.run.run_id} (talk-replay)"
        rows.insert(
            0,
            [
                f"{esc(what)}, measured here",
                num(c.accounts),
                num(c.users),
                num(h["transactions"]),
                percent(measured),
                percent(h["retried_share"]),
                num(h["attempts_per_commit"], 4),
                num(h["transactions"] / h["elapsed_s"] if h["elapsed_s"] else None, 0),
                ms(h["mean_attempt_ms"]),
                esc(f"{c.load}, at most {c.users:,} in flight; {emulated}; at most {h['max_attempts']} attempts for one"),
            ],
        )
        classes.insert(0, "baseline")
        results = replay_checks(measured, h["retried_share"], h["max_attempts"])
        checks += table(
            [f"{esc(what)}: {esc(c.run.run_id)}", "measured", "published (immediate retry)", "target", "met"],
            [
                [
                    esc(r.name),
                    (str(int(r.measured)) if r.measured is not None else "-") if r.name.startswith("most") else percent(r.measured),
                    str(int(r.published)) if r.name.startswith("most") else percent(r.published),
                    esc(r.tolerance),
                    '<span class="ok">yes</span>' if r.ok else '<span class="bad">no</span>',
                ]
                for r in results
            ],
        )
    t = table(
        ["", "accounts", "concurrency", "calls", CONFLICT_RATE, "retried", "attempts/commit", "calls/s", "mean ms", "note"], rows, classes
    )
    t += (
        f'<p class="muted">{CONFLICT_RATE}: {esc(CONFLICT_RATE_DEFINITION)}, here as in every section; the published '
        "figures count every failed call the same way. calls/s counts transactions started per second of the run.</p>" + checks
    )
    conditions = f"<p>{esc(TALK_CONDITIONS)}</p>"
    diffs = "<ul>" + "".join(f"<li>{d}</li>" for d in _differences(base)) + "</ul>"
    src = f'<p class="muted">Source: {esc(SOURCE)}. Also: {esc(HOT_KEY_SOURCE)}.</p>'
    return section(f"{p}reference", "Published Aurora DSQL reference", conditions + t + src + "<h3>What differs</h3>" + diffs)


def _fmt_ms(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "0"
