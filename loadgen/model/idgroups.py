"""Transfer ids in groups by their last byte: equal ids always fall in one group.

Comparing or encoding millions of ids at once (a set, a hash table) costs about 100
bytes an id at its peak, which the end of a run of hours cannot afford. Done a group at
a time it costs a sixteenth of that: loadgen's ids are UUIDs, whose last hex digit is
as good as random (a counter's last digit, for loadgen.db.transfer's ids). Any text
works: the grouping only has to put equal ids together, however uneven the groups.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

__all__ = ["last_bytes", "id_groups"]


def last_bytes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Each id's last byte (-1 for an empty or missing id), read from the string buffers: a byte an id, no copy of the text."""
    chunks = ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids]
    keys = [np.empty(0, dtype=np.int16)]
    for chunk in chunks:
        if pa.types.is_large_string(chunk.type):
            chunk = chunk.cast(pa.string())
        _, offsets_buf, data_buf = chunk.buffers()
        offsets = (
            np.frombuffer(offsets_buf, dtype=np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
            if offsets_buf
            else np.zeros(1, np.int32)
        )
        data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, dtype=np.uint8)
        ends = offsets[1:]
        key = np.full(len(chunk), -1, dtype=np.int16)
        present = ends > offsets[:-1]
        if chunk.null_count:
            present &= chunk.is_valid().to_numpy(zero_copy_only=False)
        key[present] = data[ends[present] - 1]
        keys.append(key)
    return np.concatenate(keys)


def id_groups(keys: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(key, the rows holding it, ascending) for each key of :func:`last_bytes`, one group at a time."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    values, starts = np.unique(ordered, return_index=True)
    del ordered
    ends = np.r_[starts[1:], len(order)]
    for value, start, end in zip(values.tolist(), starts.tolist(), ends.tolist()):
        yield value, order[start:end]
