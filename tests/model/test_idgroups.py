"""Transfer ids grouped by last byte: equal ids together, every row once; and the codes built on them. No database."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from loadgen.model.idgroups import id_groups, last_bytes
from loadgen.results.metrics import transfer_codes


def _ids() -> pa.ChunkedArray:
    texts = ["a1", "b1", "", "a1", "zz", "é", "b2", None, "", "b1"]
    whole = pa.array(texts, pa.string())
    # Chunks that are slices of one buffer (offsets not starting at 0), as Parquet row groups may be.
    return pa.chunked_array([whole.slice(0, 3), whole.slice(3, 4), whole.slice(7)])


def test_equal_ids_share_a_group_and_every_row_is_in_one() -> None:
    ids = _ids()
    keys = last_bytes(ids)
    assert keys.tolist() == [ord("1"), ord("1"), -1, ord("1"), ord("z"), 0xA9, ord("2"), -1, -1, ord("1")]
    seen = np.concatenate([rows for _, rows in id_groups(keys)])
    assert sorted(seen.tolist()) == list(range(len(ids)))
    texts = ids.to_pylist()
    for _, rows in id_groups(keys):
        assert list(rows) == sorted(rows)
    group_of = {i: k for k, rows in id_groups(keys) for i in rows.tolist()}
    for i, a in enumerate(texts):
        for j, b in enumerate(texts):
            if a == b:
                assert group_of[i] == group_of[j]


def test_transfer_codes_are_equal_exactly_for_equal_ids() -> None:
    ids = _ids().fill_null("")
    codes = transfer_codes(ids)
    texts = ids.to_pylist()
    for i, a in enumerate(texts):
        for j, b in enumerate(texts):
            assert (codes[i] == codes[j]) == (a == b), (a, b)
    assert len(transfer_codes(pa.chunked_array([], pa.string()))) == 0
