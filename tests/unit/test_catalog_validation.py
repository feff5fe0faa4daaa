"""Values as merchants write them: prices, stock, barcodes and image lists, checked a column at a time."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from portal.catalog.validation import attributes_json, images_json, parse_gtins, parse_prices, parse_stock


def series(*values: str) -> pd.Series:
    return pd.Series(list(values), dtype=str)


@pytest.mark.parametrize(("raw", "price", "code"), [
    ("1299", "1299.00", ""),
    ("1 299,50", "1299.50", ""),
    ("1\u00a0299,50 ₽", "1299.50", ""),
    ("1\u202f299 руб.", "1299.00", ""),
    ("1299\u2028", "1299.00", ""),
    ("1299 RUB", "1299.00", ""),
    ("$1,299.90", "1299.90", ""),
    ("12,5 usd", "12.50", ""),
    ("EUR 5", "5.00", ""),
    ("1.299.000", "1299000.00", ""),
    ("1,300", "", "price_ambiguous"),
    ("0,00", "0.00", "price_not_positive"),
    ("rubles 5", "", "price_invalid"),
    ("12.345", "", "price_invalid"),
    ("около 100", "", "price_invalid"),
])
def test_prices_are_read_as_merchants_write_them(raw, price, code):
    values, codes = parse_prices(series(raw))
    assert codes.iloc[0] == code
    if price:
        assert values.iloc[0] == price


def test_stock_takes_whole_numbers_with_spaces_and_a_zero_decimal_part():
    values, codes = parse_stock(series("15", "1\u00a0000", "3,0\u2028", "", "2.5", "много", "-1"))
    assert values.tolist()[:4] == [15, 1000, 3, 0]
    assert codes.tolist() == ["", "", "", "", "stock_invalid", "stock_invalid", "stock_invalid"]


def test_barcodes_keep_leading_zeros_and_recover_only_exact_spreadsheet_numbers():
    digits, codes, expected = parse_gtins(series("04601234567893", "4601234567893.0", "4.601234567893E+12",
                                                 "4.60123E+12", "4601234567890", "12345", ""))
    assert digits.tolist()[:3] == ["04601234567893", "4601234567893", "4601234567893"]
    assert codes.tolist() == ["", "", "", "gtin_mangled", "gtin_check_digit", "gtin_invalid", ""]
    assert expected.iloc[4] == "3"


def test_image_lists_become_json_arrays_and_the_first_bad_link_is_named():
    images, bad = images_json(series("https://a.example/1.jpg, https://a.example/2.jpg",
                                     "https://a.example/3.jpg;ftp://old/x.jpg  фото.jpg", "", " ; ",
                                     'https://a.example/"q".jpg'))
    assert [json.loads(v) for v in images] == [
        ["https://a.example/1.jpg", "https://a.example/2.jpg"],
        ["https://a.example/3.jpg", "ftp://old/x.jpg", "фото.jpg"], [], [], ['https://a.example/"q".jpg']]
    assert bad.tolist() == ["", "ftp://old/x.jpg", "", "", ""]


def test_attributes_are_a_json_object_of_the_filled_cells():
    frame = pd.DataFrame({"Цвет": ["синий", "", ' "красный"\\ '], "Размер": ["", "", "XL\n"]}, dtype=str)
    values = [json.loads(v) for v in attributes_json(frame, ["Цвет", "Размер"])]
    assert values == [{"Цвет": "синий"}, {}, {"Цвет": '"красный"\\', "Размер": "XL"}]
