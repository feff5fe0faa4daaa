"""Records of the PIM export built from a product row and its context, without a database."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from portal.pim_export import records


def context(names=None, values=None, active=True) -> records.Context:
    merchant = records.MerchantContext("shop", active, names or {}, values or {}, "d")
    return records.Context(
        merchants={7: merchant}, paths={212: "Apparel > Shirts"},
        names={"color": "color", "colour": "color", "цвет": "color", "size": "size", "размер": "size",
               "volume_l": "volume_l", "объем": "volume_l"},
        enums={"color": {"white": "white", "black": "black"}, "size": {"m": "M"}}, taxonomy_digest="t")


def row(**overrides):
    values = {"id": 1, "merchant_id": 7, "sku": "A-1", "title": "Футболка", "brand": "", "gtin": "4607740611174",
              "description": "", "price": Decimal("990.5"), "currency": "RUB", "stock": 5, "reserved": 2,
              "images": ["https://img.example/1.jpg"], "attributes": {"Цвет": "White", "Размер": "m", "Узор": "клетка"},
              "updated_at": datetime(2026, 11, 23, 2, 0, 1, 999, tzinfo=timezone.utc), "marketplace_category_id": 212}
    values.update(overrides)
    return values


def test_a_record_carries_the_spec_fields_in_the_marketplace_vocabulary():
    line, content_hash = records.build(row(), context())
    record = json.loads(line)
    assert record == {
        "merchant_id": 7, "merchant_slug": "shop", "sku": "A-1", "category_id": 212, "category_path": "Apparel > Shirts",
        "title": "Футболка", "brand": None, "gtin": "4607740611174", "description": None, "price": "990.50",
        "currency": "RUB", "available": 3, "images": ["https://img.example/1.jpg"],
        # Names matched to codes (ё/е, case), enum values in the marketplace's spelling; "Узор" maps to nothing.
        "attributes": {"color": "white", "size": "M"},
        "updated_at": "2026-11-23T02:00:01Z", "content_hash": content_hash,
    }


def test_the_content_hash_is_the_sha256_of_the_line_before_its_last_two_fields():
    line, content_hash = records.build(row(), context())
    body = {k: v for k, v in json.loads(line).items() if k not in ("updated_at", "content_hash")}
    assert content_hash == hashlib.sha256(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
    _, later = records.build(row(updated_at=datetime(2027, 1, 1, tzinfo=timezone.utc)), context())
    assert later == content_hash  # a new timestamp alone is not new content
    _, cheaper = records.build(row(price=Decimal("989.50")), context())
    assert cheaper != content_hash


def test_the_merchants_own_mappings_win_and_a_valid_enum_value_beats_an_invalid_one():
    ctx = context(names={"оттенок": "color"}, values={("color", "молочный"): "white"})
    _, _ = records.build(row(), ctx)
    attributes = ctx.attributes(ctx.merchants[7], {"Оттенок": "молочный", "Цвет": "бирюзовый", "Объём": " 1.7 "})
    assert attributes == {"color": "white", "volume_l": "1.7"}
    attributes = ctx.attributes(ctx.merchants[7], {"Цвет": "бирюзовый", "Colour": "Black", "Size": ""})
    assert attributes == {"color": "black"}
    assert ctx.attributes(ctx.merchants[7], {"Цвет": "бирюзовый"}) == {"color": "бирюзовый"}


def test_available_never_goes_below_zero_and_prices_keep_two_places():
    record = json.loads(records.build(row(stock=1, reserved=4, price=Decimal("7")), context())[0])
    assert (record["available"], record["price"]) == (0, "7.00")
    assert records.price_text("12.5") == "12.50"


def test_a_tombstone_names_the_product_and_nothing_else():
    assert json.loads(records.tombstone(7, "A-1")) == {"merchant_id": 7, "sku": "A-1", "deleted": True}


@pytest.mark.parametrize("change", ["slug", "names", "values", "active"])
def test_a_merchants_context_change_is_noticed_by_the_next_delta(change):
    before = context().fingerprints()
    ctx = context()
    merchant = ctx.merchants[7]
    fresh = {"slug": ("other", merchant.active, merchant.names, merchant.values),
             "names": (merchant.slug, merchant.active, {"x": "color"}, merchant.values),
             "values": (merchant.slug, merchant.active, merchant.names, {("color", "x"): "white"}),
             "active": (merchant.slug, False, merchant.names, merchant.values)}[change]
    ctx.merchants[7] = records.MerchantContext(*fresh, records.digest([fresh[0], fresh[1], sorted(fresh[2].items()),
                                                                      sorted(fresh[3].items())]))
    assert ctx.changed_since(before) == (False, {7})
    assert context().changed_since(before) == (False, set())
