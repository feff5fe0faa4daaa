"""Reading values as merchants write them, and the row-level rules, vectorised over a chunk of rows."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from babel.numbers import list_currencies
from flask_babel import lazy_gettext as _l

from portal.catalog.arrow import arrow_text, string_bytes, text_series

ROW = "__row__"
MAX_LENGTH = {"sku": 128, "title": 500, "brand": 200, "category": 500, "description": 20000}
CURRENCIES = frozenset(list_currencies())
CURRENCY_ALIASES = {"РУБ": "RUB", "РУБ.": "RUB", "Р": "RUB", "Р.": "RUB", "₽": "RUB", "RUR": "RUB", "$": "USD", "€": "EUR"}
# Patterns are written for Arrow's RE2 engine, which pandas uses for them when they avoid \s, \d, \b and
# \u escapes (those send every value through Python's re): whitespace and digits are spelled out.
# Everything Python's \s matches: ASCII whitespace, the information separators, NEL, the Unicode spaces
# and the line and paragraph separators.
WHITESPACE = (" \t\n\r\f\v\x1c\x1d\x1e\x1f\x85\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
              "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_WS = f"[{WHITESPACE}]"
URL_PATTERN = f"^https?://[^{WHITESPACE}/$.?#][^{WHITESPACE}]*$"
URL_RE = re.compile(URL_PATTERN, re.IGNORECASE)
# A currency written before or after the amount (spaces already removed): "1299 руб.", "$1299", "1 299 RUB".
_MARK = r"(?:руб\.?|р\.?|rub|rur|usd|eur|₽|\$|€)"
_CURRENCY_MARKS = f"(?i)^{_MARK}|{_MARK}$"

# Stable codes -> message templates; rendered in the reader's language when shown.
MESSAGES: dict[str, Any] = {
    "sku_required": _l("The SKU is empty."),
    "sku_duplicate": _l("The SKU %(sku)s appears again; its first row is %(first_row)s."),
    "too_long": _l("The value is longer than %(max)s characters."),
    "title_required": _l("The title is empty; a new product needs one."),
    "price_required": _l("The price is empty; a new product needs one."),
    "price_invalid": _l("%(value)s is not a price: write it like 1299.00 or 1 299,00."),
    "price_ambiguous": _l("%(value)s is ambiguous (one thousand or one point?): write 1299 or 1,30."),
    "price_not_positive": _l("The price must be more than zero, got %(value)s."),
    "stock_invalid": _l("%(value)s is not a stock quantity: write a whole number, 0 or more."),
    "gtin_invalid": _l("%(value)s is not a barcode: a GTIN has 8, 12, 13 or 14 digits."),
    "gtin_check_digit": _l("The barcode %(value)s has a wrong check digit (expected %(expected)s)."),
    "gtin_mangled": _l("The barcode %(value)s was turned into a number by a spreadsheet and lost digits; enter it as text."),
    "image_url_invalid": _l("%(value)s is not an image link: it must start with http:// or https://."),
    "currency_invalid": _l("%(value)s is not a currency code (ISO 4217, like RUB or USD)."),
    "price_jump": _l("The price moves from %(old)s to %(new)s, more than by half: a typo?"),
    "stock_zeroed": _l("This file sets the stock of %(count)s products to zero."),
    "no_sku_column": _l("No column is mapped to the SKU: map one (Артикул, SKU, vendorCode…) and try again."),
    "field_mapped_twice": _l("Two columns are mapped to the same field."),
    "unknown_field": _l("The mapping names a field the portal does not know."),
}


def message(code: str, params: dict[str, Any] | None = None) -> str:
    template = MESSAGES.get(code)
    if template is None:
        return code
    return str(template) % (params or {}) if params else str(template)


@dataclass
class ChunkResult:
    """The chunk's valid rows as clean values, and the errors of the rows it rejects."""

    clean: pd.DataFrame  # index of the chunk; ROW, sku, the mapped fields, "attributes"
    rejected: pd.Index
    errors: list[dict[str, Any]] = field(default_factory=list)


def _col(frame: pd.DataFrame, column: str | None) -> pd.Series:
    if column is None:
        return pd.Series("", index=frame.index, dtype=object)
    return frame[column].astype(str).str.strip()


class _Errors:
    def __init__(self, rows: pd.Series) -> None:
        self.rows = rows
        self.items: list[dict[str, Any]] = []
        self.bad = pd.Series(False, index=rows.index)

    def add(self, mask: pd.Series, column: str, code: str, values: pd.Series | None = None, **extra: Any) -> None:
        mask = mask.fillna(False).astype(bool)
        if not mask.any():
            return
        self.bad |= mask
        picked_rows = self.rows[mask]
        picked_values = values[mask] if values is not None else None
        for position, row in enumerate(picked_rows.tolist()):
            params = {k: _plain(v[mask].iloc[position] if isinstance(v, pd.Series) else v) for k, v in extra.items()}
            if picked_values is not None:
                params["value"] = _plain(picked_values.iloc[position])
            self.items.append({"row": int(row), "column": column, "code": code, "params": params})


def _plain(value: Any) -> Any:
    """numpy scalars become Python ones, so issues serialise to JSON."""
    return value.item() if hasattr(value, "item") else value


def parse_prices(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Normalised "1299.00" strings, and an error code per value ("" when fine, NaN-free)."""
    text = raw.str.replace(f"[{WHITESPACE}']", "", regex=True).str.replace(_CURRENCY_MARKS, "", regex=True)
    commas = text.str.count(",")
    dots = text.str.count(r"\.")
    # Which separator comes last: the first one found in the reversed text.
    reversed_text = pc.utf8_reverse(pa.array(text))
    comma_from_end = pc.find_substring(reversed_text, ",").to_numpy(zero_copy_only=False)
    dot_from_end = pc.find_substring(reversed_text, ".").to_numpy(zero_copy_only=False)
    last_comma = pd.Series(comma_from_end < dot_from_end, index=raw.index)
    both = (commas > 0) & (dots > 0)
    out = text.copy()
    # Both separators: the last one is the decimal point, the other groups thousands.
    out = out.mask(both & last_comma, text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False))
    out = out.mask(both & ~last_comma, text.str.replace(",", "", regex=False))
    only_comma = (commas > 0) & (dots == 0)
    ambiguous = only_comma & (commas == 1) & text.str.fullmatch(r"[0-9]{1,3},[0-9]{3}")
    out = out.mask(only_comma & (commas == 1), text.str.replace(",", ".", regex=False))
    out = out.mask(only_comma & (commas > 1), text.str.replace(",", "", regex=False))
    only_dots = (dots > 1) & (commas == 0)
    out = out.mask(only_dots, text.str.replace(".", "", regex=False))
    valid = out.str.fullmatch(r"[0-9]+(\.[0-9]{1,2})?")
    parts = out.str.partition(".")
    whole = parts[0].str.lstrip("0").replace("", "0")
    frac = parts[2].str.pad(2, side="right", fillchar="0")
    normalised = (whole + "." + frac).where(valid, "")
    code = pd.Series("", index=raw.index, dtype=object)
    code = code.mask(~valid, "price_invalid")
    code = code.mask(ambiguous, "price_ambiguous")
    code = code.mask(valid & (normalised.str.fullmatch(r"0\.00")), "price_not_positive")
    return normalised, code


def gs1_check_digit_ok(digits: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Whether each 8/12/13/14-digit string has a valid GS1 check digit, and the expected digit."""
    padded = digits.str.zfill(14)
    array = np.frombuffer("".join(padded.tolist()).encode("ascii"), dtype=np.uint8).reshape(-1, 14) - 48
    weights = np.array([3, 1] * 6 + [3], dtype=np.int64)
    expected = (10 - (array[:, :13] @ weights) % 10) % 10
    ok = expected == array[:, 13]
    return pd.Series(ok, index=digits.index), pd.Series(expected.astype(str), index=digits.index)


def parse_gtins(raw: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Digits, an error code per value, and the expected check digit where it was wrong."""
    text = raw.str.replace(_WS, "", regex=True)
    # 4601234567893.0: a number cell written back with a decimal part.
    float_like = text.str.fullmatch(r"[0-9]+\.0+")
    if float_like.any():
        text = text.mask(float_like, text.str.replace(r"\.0+$", "", regex=True))
    digits = text.where(text.str.fullmatch(r"[0-9]+"), "")
    code = pd.Series("", index=raw.index, dtype=object)
    # 4.601234567893E+12: exact only when the mantissa holds every digit (regexes only if any is there).
    maybe_sci = text.str.contains("[eE]", regex=True)
    if maybe_sci.any():
        sci = text.str.extract(r"^([0-9])[.,]([0-9]+)[eE]\+?([0-9]+)$")
        is_sci = sci[0].notna()
    else:
        is_sci = maybe_sci
    if is_sci.any():
        frac_len = sci[1].str.len()
        exponent = pd.to_numeric(sci[2], errors="coerce")
        exact = is_sci & (frac_len == exponent)
        digits = digits.mask(exact, sci[0] + sci[1])
        code = code.mask(is_sci & ~exact, "gtin_mangled")
    present = text != ""
    shape_ok = digits.str.len().isin([8, 12, 13, 14])
    code = code.mask(present & (code == "") & ~shape_ok, "gtin_invalid")
    expected = pd.Series("", index=raw.index, dtype=object)
    check = present & (code == "") & shape_ok
    if check.any():
        ok, exp = gs1_check_digit_ok(digits[check])
        code.loc[ok[~ok].index] = "gtin_check_digit"
        expected.loc[exp.index] = exp
    return digits.where(present & (code == ""), ""), code, expected


def parse_stock(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    text = raw.str.replace(_WS, "", regex=True)
    whole = text.str.fullmatch(r"[0-9]+(?:[.,]0+)?")
    ok = whole | (text == "")
    number = text.str.replace(r"[.,]0+$", "", regex=True).where(whole, "0")
    values = pd.to_numeric(number, errors="coerce").fillna(0).astype("int64")
    too_big = values > 2_000_000_000
    code = pd.Series("", index=raw.index, dtype=object).mask(~ok | too_big, "stock_invalid")
    return values, code


def images_json(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Image lists as compact JSON arrays, and the first bad URL of each row ("" when all are fine).

    Split, checked and joined with Arrow's kernels: no Python object per link.
    """
    kind = pa.large_string()
    text = arrow_text(raw)
    text = pc.utf8_trim(text, " ,;\t\r\n")
    parts = pc.split_pattern_regex(_json_escaped(text), f"[,;{WHITESPACE}]+")
    links = pc.list_flatten(parts)
    owners = pc.list_parent_indices(parts).to_numpy()
    bad = pc.and_(pc.invert(pc.match_substring_regex(links, URL_PATTERN, ignore_case=True)),
                  pc.not_equal(links, pa.scalar("", kind))).to_numpy(zero_copy_only=False)
    first_bad = np.full(len(raw), "", dtype=object)
    if bad.any():
        rows, first = np.unique(owners[bad], return_index=True)
        bad_links = links.filter(pa.array(bad)).take(pa.array(first)).to_pylist()
        first_bad[rows] = [link.replace('\\"', '"') for link in bad_links]
    joined = pc.binary_join_element_wise(pa.scalar('["', kind), pc.binary_join(parts, pa.scalar('","', kind)),
                                         pa.scalar('"]', kind), pa.scalar("", kind))
    joined = pc.if_else(pc.equal(text, pa.scalar("", kind)), pa.scalar("[]", kind), joined)
    return text_series(joined, raw.index), pd.Series(first_bad, index=raw.index, dtype=str)


_ESCAPED_BYTES = np.zeros(256, dtype=bool)
_ESCAPED_BYTES[[*range(32), ord('"'), ord("\\")]] = True


def _needs_escaping(values: pa.ChunkedArray | pa.Array) -> bool:
    """Whether any value holds a quote, a backslash or a control character: one pass over the bytes."""
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    return any(_ESCAPED_BYTES[string_bytes(chunk)].any() for chunk in chunks)


def _json_escaped(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Arrow strings escaped for a JSON string; control characters other than \\n \\r \\t are dropped."""
    if not _needs_escaping(values):
        return values  # the usual case: nothing to escape
    for old, new in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        values = pc.replace_substring(values, old, new)
    return pc.replace_substring_regex(values, r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "")


def attributes_json(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """The attribute columns of each row as a compact JSON object of its non-empty values.

    Built in Arrow without a Python object per cell: every row becomes a list of pieces ("{", then
    '"name":"' or ',"name":"', the escaped value and a closing quote for each non-empty cell, then "}"),
    gathered from the columns with one ``take`` and joined with one ``binary_join``.
    """
    rows = len(frame)
    if not columns or rows == 0:
        return pd.Series("{}", index=frame.index, dtype=str)
    kind = pa.large_string()
    values = [_json_escaped(pc.utf8_trim_whitespace(arrow_text(frame[name]))) for name in columns]
    filled = np.stack([pc.not_equal(v, pa.scalar("", kind)).to_numpy(zero_copy_only=False) for v in values], axis=1)
    width = len(columns)
    keys = [json.dumps(name, ensure_ascii=False) + ':"' for name in columns]
    # The pool the pieces are taken from: [first keys | later keys | values | quote, "{", "}"]: each key
    # once (as the row's first, and with a comma in front), the values column by column, so the value
    # of (row r, column c) is at 2 * width + c * rows + r.
    values_at = 2 * width
    quote = values_at + width * rows
    opening, closing = quote + 1, quote + 2
    pool = pa.concat_arrays([pa.array(keys + ["," + key for key in keys], kind), *values,
                             pa.array(['"', "{", "}"], kind)])
    owner, column = np.nonzero(filled)  # row by row, columns in order
    first = np.ones(owner.size, dtype=bool)
    first[1:] = owner[1:] != owner[:-1]
    pieces = np.empty(owner.size * 3, dtype=np.int64)
    pieces[0::3] = np.where(first, column, width + column)
    pieces[1::3] = values_at + column * rows + owner
    pieces[2::3] = quote
    counts = filled.sum(axis=1) * 3 + 2
    ends = np.cumsum(counts)
    order = np.empty(int(ends[-1]), dtype=np.int64)
    starts = ends - counts
    order[starts] = opening
    order[ends - 1] = closing
    inner = np.ones(order.size, dtype=bool)
    inner[starts] = False
    inner[ends - 1] = False
    order[inner] = pieces
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), pool.take(pa.array(order)))
    return text_series(pc.binary_join(lists, pa.scalar("", kind)), frame.index)


def validate_chunk(
    frame: pd.DataFrame,
    mapping: dict[str, str],
    seen_skus: dict[str, int],
) -> ChunkResult:
    """Check one chunk; ``seen_skus`` (sku -> first row) carries uniqueness across chunks."""
    by_field = {f: c for c, f in mapping.items() if f}
    attribute_columns = [c for c, f in mapping.items() if not f and c in frame.columns]
    rows = frame[ROW]
    errors = _Errors(rows)
    clean = pd.DataFrame({ROW: rows}, index=frame.index)

    sku = _col(frame, by_field["sku"])
    errors.add(sku == "", by_field["sku"], "sku_required")
    dup_in_chunk = sku.duplicated(keep="first") & (sku != "")
    # A dict lookup per value: isin() would hash every SKU seen so far again for each chunk.
    dup_earlier = pd.Series([value in seen_skus for value in sku.tolist()], index=sku.index) & (sku != "")
    if dup_in_chunk.any() or dup_earlier.any():
        first_in_chunk = rows.groupby(sku).transform("first")
        first_row = first_in_chunk.mask(dup_earlier, sku.map(seen_skus))
        errors.add(dup_in_chunk | dup_earlier, by_field["sku"], "sku_duplicate", sku=sku, first_row=first_row.astype("int64"))
    fresh = (sku != "") & ~dup_in_chunk & ~dup_earlier
    seen_skus.update(zip(sku[fresh].tolist(), rows[fresh].tolist()))
    clean["sku"] = sku

    for name in ("title", "brand", "category", "description"):
        if name in by_field:
            value = _col(frame, by_field[name])
            if name == "title":
                value = value.str.replace(f"{_WS}+", " ", regex=True)
            clean[name] = value
    for name, limit in MAX_LENGTH.items():
        if name in clean:
            errors.add(clean[name].str.len() > limit, by_field[name], "too_long", max=limit)

    if "price" in by_field:
        raw = _col(frame, by_field["price"])
        price, code = parse_prices(raw)
        present = raw != ""
        for c in ("price_invalid", "price_ambiguous", "price_not_positive"):
            errors.add(present & (code == c), by_field["price"], c, raw)
        clean["price"] = price.where(present, "")
    if "currency" in by_field:
        raw = _col(frame, by_field["currency"]).str.upper()
        currency = raw.replace(CURRENCY_ALIASES)
        errors.add((currency != "") & ~currency.isin(CURRENCIES), by_field["currency"], "currency_invalid", raw)
        clean["currency"] = currency
    if "stock" in by_field:
        raw = _col(frame, by_field["stock"])
        stock, code = parse_stock(raw)
        errors.add(code != "", by_field["stock"], "stock_invalid", raw)
        clean["stock"] = stock
    if "gtin" in by_field:
        raw = _col(frame, by_field["gtin"])
        gtin, code, expected = parse_gtins(raw)
        for c in ("gtin_invalid", "gtin_mangled"):
            errors.add(code == c, by_field["gtin"], c, raw)
        errors.add(code == "gtin_check_digit", by_field["gtin"], "gtin_check_digit", raw, expected=expected)
        clean["gtin"] = gtin
    if "images" in by_field:
        images, bad = images_json(_col(frame, by_field["images"]))
        errors.add(bad != "", by_field["images"], "image_url_invalid", bad)
        clean["images"] = images
    clean["attributes"] = attributes_json(frame, attribute_columns)
    rejected = frame.index[errors.bad.to_numpy()]
    return ChunkResult(clean=clean.loc[~errors.bad], rejected=rejected, errors=errors.items)
