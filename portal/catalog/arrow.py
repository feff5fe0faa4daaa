"""Small bridges between pandas text columns and Arrow arrays, shared by the checks and the fingerprints."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa


def arrow_text(values: pd.Series) -> pa.Array:
    """A text column as one Arrow large_string array (zero-copy for Arrow-backed columns)."""
    array = pa.array(values.astype(str))
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(pa.large_string()) if array.type != pa.large_string() else array


def text_series(array: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    """Arrow strings as a pandas text column, without copying them."""
    if isinstance(array, pa.Array):
        array = pa.chunked_array([array])
    return pd.Series(pd.arrays.ArrowStringArray(array), index=index).astype(str)


def string_bytes(array: pa.Array) -> np.ndarray:
    """The UTF-8 bytes of all of a string array's values, end to end, as a read-only view."""
    data = array.buffers()[2]
    if len(array) == 0 or data is None:
        return np.empty(0, dtype=np.uint8)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64 if pa.types.is_large_string(array.type) else np.int32)
    start, end = int(offsets[array.offset]), int(offsets[array.offset + len(array)])
    return np.frombuffer(data, dtype=np.uint8)[start:end]
