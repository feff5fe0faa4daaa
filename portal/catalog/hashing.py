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
    their bytes; a missing value counts as an empty cell. A row with a cell holding the separator itself
    could join like another row, so such a row (only it) is joined with each cell's length in front.
    """
    if frame.empty:
        return pd.Series([], index=frame.index, dtype=str)
    kind = pa.large_string()
    arrays = [arrow_text(frame[c]).fill_null("") for c in columns]
    separator = pa.scalar(SEPARATOR, kind)
    joined = _combined(pc.binary_join_element_wise(pa.scalar(prefix, kind), *arrays, separator))
    if np.count_nonzero(string_bytes(joined) == ord(SEPARATOR)) != len(frame) * len(arrays):
        framed = [pa.scalar(prefix, kind)]
        for array in arrays:
            framed += [pc.cast(pc.binary_length(array), kind), array]
        extra = pc.not_equal(pc.count_substring(joined, SEPARATOR), len(arrays))
        joined = _combined(pc.if_else(extra, pc.binary_join_element_wise(*framed, separator), joined))
    blobs = joined.cast(pa.large_binary()).to_numpy(zero_copy_only=False)
    hashes = pd.util.hash_array(blobs, hash_key=_KEY, categorize=False)
    return text_series(_hex(hashes), frame.index)


def _combined(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE_SHIFTS = np.arange(60, -4, -4, dtype=np.uint64)


def _hex(hashes: np.ndarray) -> pa.Array:
    """Each 64-bit hash as 16 lowercase hex digits, without a Python string per hash."""
    nibbles = (hashes[:, None] >> _NIBBLE_SHIFTS) & np.uint64(15)
    digits = np.ascontiguousarray(_HEX_DIGITS[nibbles.astype(np.intp)])
    return pa.array(digits.view("S16").ravel(), type=pa.binary(16)).cast(pa.large_string())
