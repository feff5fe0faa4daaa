"""Row fingerprints for change detection, computed over Arrow buffers rather than per Python value."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from portal.catalog.arrow import arrow_text, string_bytes, text_series

SEPARATOR = "\x1f"  # the ASCII unit separator: it never appears in a merchant's cell, and when it does, see below
_KEY = "portal-catalog-1"  # SipHash key (16 bytes); changing it makes every stored hash differ once


def row_hashes(frame: pd.DataFrame, columns: list[str], prefix: str = "") -> pd.Series:
    """A 64-bit fingerprint of each row's cells (and ``prefix``), as 16 hex digits.

    The cells are joined with a separator in Arrow (C++), the joined rows hashed by pandas' SipHash over
    their bytes. A cell holding the separator itself would make two different rows join alike, so such
    a chunk is joined with each cell's length in front instead: exact, and only a little slower.
    """
    if frame.empty:
        return pd.Series([], index=frame.index, dtype=str)
    arrays = [arrow_text(frame[c]) for c in columns]
    kind = pa.large_string()
    parts: list[pa.ChunkedArray | pa.Array | pa.Scalar] = [pa.scalar(prefix, kind), *arrays]
    joined = pc.binary_join_element_wise(*parts, pa.scalar(SEPARATOR, kind))
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    if np.count_nonzero(string_bytes(joined) == ord(SEPARATOR)) != len(frame) * len(arrays):
        framed = [pa.scalar(prefix, kind)]
        for array in arrays:
            framed += [pc.cast(pc.binary_length(array), kind), array]
        joined = pc.binary_join_element_wise(*framed, pa.scalar(SEPARATOR, kind))
        if isinstance(joined, pa.ChunkedArray):
            joined = joined.combine_chunks()
    blobs = joined.cast(pa.large_binary()).to_numpy(zero_copy_only=False)
    hashes = pd.util.hash_array(blobs, hash_key=_KEY.ljust(16)[:16], categorize=False)
    return text_series(_hex(hashes), frame.index)


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE_SHIFTS = np.arange(60, -4, -4, dtype=np.uint64)


def _hex(hashes: np.ndarray) -> pa.Array:
    """Each 64-bit hash as 16 lowercase hex digits, without a Python string per hash."""
    nibbles = (hashes[:, None] >> _NIBBLE_SHIFTS) & np.uint64(15)
    digits = np.ascontiguousarray(_HEX_DIGITS[nibbles.astype(np.intp)])
    return pa.array(digits.view("S16").ravel(), type=pa.binary(16)).cast(pa.large_string())
