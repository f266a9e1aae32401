"""libpq's protocol trace read back: what one connection sent, transaction by transaction.

A trace (``PQtrace`` with timestamps suppressed) holds every message the client sent
(``F``) and every reply (``B``), one per line. Statements come from ``Query``, and from
``Bind`` of a statement an earlier ``Parse`` prepared; a transaction ends at
``ReadyForQuery`` with status ``I`` (idle); rows written come from ``CommandComplete``
tags. Nothing here knows DSQL's rules: loadgen.targets.audit applies them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["TracedTransaction", "messages", "transactions"]

# A trace line: direction, length, message type, then the message's fields.
_MSG = re.compile(r"^([FB])\t\d+\t(\w+)\t?(.*)$", re.DOTALL)
_QUERY = re.compile(r'^ "(.*)"$', re.DOTALL)
_PARSE = re.compile(r'^ "([^"]*)" "(.*)" \d+(?: \S+)*$', re.DOTALL)
_BIND = re.compile(r'^ "([^"]*)" "([^"]*)"')
_TAG = re.compile(r'^ "(.*)"$')
_ROWS_TAG = re.compile(r"^(INSERT \d+|UPDATE|DELETE|MERGE|COPY) (\d+)$")


@dataclass
class TracedTransaction:
    """What a connection sent between two idle points: its queries as sent, and the rows they wrote."""

    #: Each Query's text or bound prepared statement, in order (a Query may hold several statements).
    queries: list[str] = field(default_factory=list)
    rows_written: int = 0


def messages(text: str) -> list[tuple[str, str, str]]:
    """(direction, type, fields) per message; a field may span lines (SQL with newlines)."""
    out: list[tuple[str, str, str]] = []
    for line in text.split("\n"):
        m = _MSG.match(line)
        if m:
            out.append((m.group(1), m.group(2), m.group(3)))
        elif out and line:
            d, t, f = out[-1]
            out[-1] = (d, t, f + "\n" + line)
    return out


def transactions(text: str) -> Iterator[TracedTransaction]:
    """The transactions of one connection's trace, in order; the last one may have been cut off
    (the connection ended inside it: it was rolled back)."""
    prepared: dict[str, str] = {}
    txn = TracedTransaction()
    for direction, kind, fields in messages(text):
        if direction == "F":
            if kind == "Query" and (m := _QUERY.match(fields)):
                txn.queries.append(m.group(1))
            elif kind == "Parse" and (m := _PARSE.match(fields)):
                prepared[m.group(1)] = m.group(2)
            elif kind == "Bind" and (m := _BIND.match(fields)):
                txn.queries.append(prepared.get(m.group(2), f"<unknown prepared statement {m.group(2)!r}>"))
        elif kind == "CommandComplete" and (m := _TAG.match(fields)):
            if r := _ROWS_TAG.match(m.group(1)):
                txn.rows_written += int(r.group(2))
        elif kind == "ReadyForQuery" and fields.strip() == "I":
            if txn.queries:
                yield txn
            txn = TracedTransaction()
    if txn.queries:
        yield txn
