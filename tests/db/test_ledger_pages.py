"""Reading the ledger back after a run (loadgen.db.schema): every id once, each page walking the primary key."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from loadgen.db import schema
from loadgen.db.schema import LEDGER_FIRST_PAGE, LEDGER_NEXT_PAGE, READ_PAGE_ROWS, reset


def _plan_nodes(plan: dict[str, Any]) -> list[str]:
    return [plan["Node Type"], *(n for child in plan.get("Plans", []) for n in _plan_nodes(child))]


def test_each_page_walks_the_primary_key_and_every_id_comes_once(conn: psycopg.Connection) -> None:
    reset(conn, 10, 100)
    rows = 2 * READ_PAGE_ROWS + 123  # three pages, the last a short one
    conn.execute("INSERT INTO transfers (id, payer, payee, amount) SELECT gen_random_uuid(), 1, 2, 1 FROM generate_series(1, %s)", (rows,))
    conn.execute("ANALYZE transfers")
    expected = sorted(r[0] for r in conn.execute("SELECT id::text FROM transfers"))

    pages = list(schema._ledger_pages(conn))
    got = [s for page in pages for s in page.to_pylist()]
    assert sorted(got) == expected and len(got) == len(set(got))
    assert len(pages) == 3

    # A page costs its own rows, not the ledger's: an index walk, never a scan and sort of every id
    # (sorting the text output instead made an hour's ledger take hours to read back).
    for sql, params in ((LEDGER_FIRST_PAGE, (READ_PAGE_ROWS,)), (LEDGER_NEXT_PAGE, (expected[rows // 2], READ_PAGE_ROWS))):
        (doc,) = conn.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
        doc = doc if isinstance(doc, list) else json.loads(doc)
        nodes = _plan_nodes(doc[0]["Plan"])
        assert "Sort" not in nodes and any("Index" in n for n in nodes), nodes
    reset(conn, 10, 100)
