"""DSQL's rules for statements and transactions: what a cluster refuses, said once.

The ``--dialect dsql`` rehearsal (loadgen.targets.rehearsal) refuses a statement that
breaks them before it is sent, as a cluster would; the statement audit
(loadgen.targets.audit) checks afterwards what actually went over the wire, the
transaction-level rules (one DDL, DDL alone, at most 3,000 rows) included.
"""

from __future__ import annotations

import re

import psycopg
import psycopg.errors as pg_errors

from loadgen.targets.base import DSQL_MAX_ROWS_PER_TRANSACTION

__all__ = [
    "STATEMENT_RULES",
    "FOR_UPDATE_RULE",
    "DSQL_CONFLICT_MESSAGE",
    "REFUSED_MARKER",
    "check_statement",
    "transaction_rules_broken",
    "refusal",
    "split_statements",
    "shorten",
    "is_transaction_control",
]

_I = re.IGNORECASE | re.DOTALL
#: Statement-level rules: (rule, pattern that breaks it).
STATEMENT_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "no isolation level but DSQL's own (BEGIN, or BEGIN ISOLATION LEVEL REPEATABLE READ)",
        re.compile(
            r"^\s*(SET\s+(SESSION\s+CHARACTERISTICS|TRANSACTION)"
            r"|(BEGIN|START\s+TRANSACTION)\b.*\bISOLATION\s+LEVEL\s+(?!REPEATABLE\s+READ\b))"
            r"|default_transaction_isolation",
            _I,
        ),
    ),
    ("no TRUNCATE", re.compile(r"^\s*TRUNCATE\b", _I)),
    ("no SAVEPOINT", re.compile(r"^\s*(SAVEPOINT|RELEASE\b|ROLLBACK\s+(WORK\s+|TRANSACTION\s+)?TO\b)", _I)),
    (
        "no temporary tables",
        re.compile(r"^\s*CREATE\s+((GLOBAL|LOCAL)\s+)?(TEMP|TEMPORARY|UNLOGGED)\s+TABLE\b|\bINTO\s+TEMP(ORARY)?\b", _I),
    ),
    ("no extensions", re.compile(r"^\s*CREATE\s+EXTENSION\b", _I)),
    (
        "no SET of a setting DSQL does not allow (e.g. lock_timeout)",
        re.compile(
            r"^\s*(SET|RESET)\s+(SESSION\s+|LOCAL\s+)?(?!(application_name|search_path|time\s*zone|timezone|client_encoding|datestyle|extra_float_digits)\b)\w"
            r"|\bset_config\s*\(\s*'(?!(application_name|search_path|timezone|client_encoding|datestyle|extra_float_digits)')",
            _I,
        ),
    ),
    ("no pg_stat_activity (not known to work on DSQL; AWS's own tests avoid it)", re.compile(r"\bpg_stat_activity\b", _I)),
    ("no LOCK TABLE (DSQL: unsupported statement: Lock)", re.compile(r"^\s*LOCK\b", _I)),
    (
        "no FOR SHARE or FOR NO KEY UPDATE (DSQL locks only FOR UPDATE and FOR KEY SHARE)",
        re.compile(r"\bFOR\s+(NO\s+KEY\s+UPDATE|SHARE)\b", _I),
    ),
)
#: DSQL takes ``SELECT ... FOR UPDATE`` only with an equality predicate on the primary key.
_FOR_UPDATE = re.compile(r"\bFOR\s+UPDATE\b", _I)
_FOR_UPDATE_BY_KEY = re.compile(r"\bWHERE\s+id\s*=\s*(\$\d+|%s|\d+)\s+FOR\s+UPDATE\s*$", _I)
FOR_UPDATE_RULE = "FOR UPDATE only with an equality predicate on the primary key (WHERE id = ...)"
#: The conflict text DSQL sends with SQLSTATE 40001 (its current wording; older clusters said
#: "change conflicts with another transaction, please retry: (OC000)").
DSQL_CONFLICT_MESSAGE = "mutation conflicts with another transaction, retry as needed (OC000)"
#: Sent by the rehearsal in place of a refused statement inside a transaction: the server then
#: fails the statement and aborts the transaction itself, as DSQL does (later statements 25P02,
#: COMMIT answers ROLLBACK). The audit skips it: it stands for a statement that was never sent.
REFUSED_MARKER = "DO $$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'refused by the --dialect dsql rehearsal'; END$$"
_DDL = re.compile(r"^\s*(CREATE|ALTER|DROP)\b", re.IGNORECASE)
_TXN_CONTROL = re.compile(r"^\s*(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT)\b", re.IGNORECASE)


def check_statement(sql: str) -> list[str]:
    """The statement-level DSQL rules ``sql`` (one statement) breaks."""
    broken = [rule for rule, pattern in STATEMENT_RULES if pattern.search(sql)]
    if _FOR_UPDATE.search(sql) and not _FOR_UPDATE_BY_KEY.search(sql.strip().rstrip(";")):
        broken.append(FOR_UPDATE_RULE)
    return broken


def is_transaction_control(sql: str) -> bool:
    """BEGIN, COMMIT, ROLLBACK and their spellings: no work of the transaction's own."""
    return bool(_TXN_CONTROL.match(sql))


def transaction_rules_broken(work: list[str], rows_written: int) -> list[tuple[str, str]]:
    """The transaction-level DSQL rules one transaction broke, as (rule, the statements shown).

    ``work``: its statements in order, transaction control left out; ``rows_written``: the
    rows its statements reported written.
    """
    broken: list[tuple[str, str]] = []
    ddl = [s for s in work if _DDL.match(s)]
    if len(ddl) > 1:
        broken.append(("one DDL statement per transaction", shorten(" ; ".join(ddl))))
    if ddl and len(work) > len(ddl):
        others = [s for s in work if not _DDL.match(s)]
        broken.append(("DDL never mixed with other statements", shorten(ddl[0] + " ; " + others[0])))
    if rows_written > DSQL_MAX_ROWS_PER_TRANSACTION:
        broken.append(
            (
                f"at most {DSQL_MAX_ROWS_PER_TRANSACTION} rows written per transaction ({rows_written} written)",
                shorten(" ; ".join(work[:3])),
            )
        )
    return broken


def refusal(sql: str) -> psycopg.Error | None:
    """The error a DSQL cluster would answer ``sql`` with, or None: one line, SQLSTATE 0A000."""
    broken = [rule for stmt in split_statements(sql) for rule in check_statement(stmt)]
    if not broken:
        return None
    return pg_errors.lookup("0A000")(f"not supported: DSQL refuses this statement (--dialect dsql rehearsal): {broken[0]}: {shorten(sql)}")


def split_statements(sql: str) -> list[str]:
    """The statements of one simple-protocol Query (loadgen's carry no ';' in literals)."""
    return [s.strip() for s in sql.split(";") if s.strip()]


def shorten(sql: str) -> str:
    """A statement on one line, at most 200 characters, as findings show it."""
    flat = " ".join(sql.split())
    return flat if len(flat) <= 200 else flat[:197] + "..."
