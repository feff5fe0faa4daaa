"""Readiness of one product: mapped, active, accepted, and every required attribute filled with a valid value."""
from __future__ import annotations

from portal.category_mapping.readiness import MerchantRules, Requirements, Rule, evaluate

COLOR = Rule("color", frozenset({"color", "colour", "цвет"}), frozenset({"black", "white"}))
SIZE = Rule("size", frozenset({"size", "размер"}), None)
BRAND = Rule("brand", frozenset({"brand", "бренд"}), None)
REQUIREMENTS = Requirements({212: (COLOR, SIZE), 751: (BRAND,)})


def product(**changes):
    base = {"category": "Футболки", "attributes": {"Цвет": "Чёрный", "Размер": "M"}, "status": "active",
            "last_error": None, "brand": "", "gtin": "", "description": "", "images": []}
    return {**base, **changes}


def rules(**changes):
    base = {"categories": {"Футболки": 212, "Чайники": 751}, "names": {}, "values": {}}
    return MerchantRules(**{**base, **changes})


def test_a_mapped_product_with_every_required_attribute_is_ready():
    outcome = evaluate(product(attributes={"Цвет": "black", "Размер": "M"}), REQUIREMENTS, rules())
    assert (outcome.readiness, outcome.category_id, outcome.required, outcome.filled, outcome.missing) == (
        "ready", 212, 2, 2, ())


def test_an_enum_value_outside_the_list_counts_as_missing_until_the_merchant_maps_it():
    outcome = evaluate(product(), REQUIREMENTS, rules())
    assert (outcome.readiness, outcome.missing, outcome.filled) == ("incomplete", ("color",), 1)
    mapped = rules(values={("color", "черный"): "black"})  # ё and case do not matter
    assert evaluate(product(), REQUIREMENTS, mapped).readiness == "ready"


def test_attribute_names_match_by_code_name_or_the_merchants_mapping():
    assert evaluate(product(attributes={"COLOUR": "white", "size": "L"}), REQUIREMENTS, rules()).readiness == "ready"
    odd = product(attributes={"Оттенок": "white", "Размер": "L"})
    assert evaluate(odd, REQUIREMENTS, rules()).missing == ("color",)
    assert evaluate(odd, REQUIREMENTS, rules(names={"оттенок": "color"})).readiness == "ready"


def test_blank_values_do_not_count():
    outcome = evaluate(product(attributes={"Цвет": "  ", "Размер": "M"}), REQUIREMENTS, rules())
    assert outcome.missing == ("color",)


def test_requirements_on_product_fields_read_the_field():
    kettle = product(category="Чайники", attributes={})
    assert evaluate(kettle, REQUIREMENTS, rules()).missing == ("brand",)
    assert evaluate({**kettle, "brand": "Bosch"}, REQUIREMENTS, rules()).readiness == "ready"


def test_unmapped_inactive_and_rejected_products_are_not_ready():
    assert evaluate(product(category="Разное"), REQUIREMENTS, rules()).readiness == "unmapped"
    assert evaluate(product(category=""), REQUIREMENTS, rules()).readiness == "unmapped"
    assert evaluate(product(status="inactive"), REQUIREMENTS, rules()).readiness == "inactive"
    assert evaluate(product(last_error="price_invalid"), REQUIREMENTS, rules()).readiness == "invalid"


def test_a_category_that_requires_nothing_makes_a_mapped_product_ready():
    outcome = evaluate(product(category="Сумки"), REQUIREMENTS, rules(categories={"Сумки": 100}))
    assert (outcome.readiness, outcome.required, outcome.filled) == ("ready", 0, 0)


def test_a_valid_value_under_another_name_for_the_same_code_is_enough():
    both = product(attributes={"Оттенок": "чёрный", "Цвет": "black", "Размер": "M"})
    assert evaluate(both, REQUIREMENTS, rules(names={"оттенок": "color"})).readiness == "ready"
