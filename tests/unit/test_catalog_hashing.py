"""Row fingerprints: equal rows hash alike, any difference in a cell (or the prefix) shows."""
from __future__ import annotations

import pandas as pd

from portal.catalog.hashing import SEPARATOR, row_hashes


def test_equal_rows_hash_alike_and_differences_show():
    frame = pd.DataFrame({"sku": ["A-1", "A-1", "A-1", "A-2"], "title": ["Кружка", "Кружка", "Кружка ", "Кружка"]})
    hashes = row_hashes(frame, ["sku", "title"]).tolist()
    assert hashes[0] == hashes[1]
    assert len(set(hashes[1:])) == 3
    assert all(len(h) == 16 and int(h, 16) >= 0 for h in hashes)


def test_cells_are_not_confused_when_one_holds_the_separator():
    frame = pd.DataFrame({"a": [f"x{SEPARATOR}y", "x"], "b": ["z", f"y{SEPARATOR}z"]})
    first, second = row_hashes(frame, ["a", "b"]).tolist()
    assert first != second


def test_cells_moved_between_columns_hash_differently():
    frame = pd.DataFrame({"a": ["ab", "a"], "b": ["c", "bc"]})
    first, second = row_hashes(frame, ["a", "b"]).tolist()
    assert first != second


def test_prefix_and_value_types_count():
    frame = pd.DataFrame({"a": ["1"], "b": [2]})
    plain = row_hashes(frame, ["a", "b"]).iloc[0]
    assert row_hashes(frame, ["a", "b"], prefix="mapping").iloc[0] != plain
    assert row_hashes(pd.DataFrame({"a": ["1"], "b": ["2"]}), ["a", "b"]).iloc[0] == plain  # text "2" and 2 alike


def test_an_empty_frame_has_no_hashes():
    assert row_hashes(pd.DataFrame({"a": pd.Series([], dtype=str)}), ["a"]).empty


def test_a_row_hashes_the_same_whatever_else_its_chunk_holds():
    alone = row_hashes(pd.DataFrame({"a": ["x"], "b": ["y"]}), ["a", "b"]).iloc[0]
    with_separator = pd.DataFrame({"a": ["x", f"p{SEPARATOR}q"], "b": ["y", "z"]})
    assert row_hashes(with_separator, ["a", "b"]).iloc[0] == alone


def test_a_missing_value_counts_as_an_empty_cell_not_as_a_null_row():
    frame = pd.DataFrame({"a": ["x", None, ""], "b": ["1", "2", "2"]})
    hashes = row_hashes(frame, ["a", "b"]).tolist()
    assert hashes[1] == hashes[2]
    assert hashes[0] != hashes[1]
