"""The portal's product fields and the column names merchants use for them, in Russian and English."""
from __future__ import annotations

import re
from typing import Any

from flask_babel import lazy_gettext as _l

# Order matters: the first field whose synonym matches a column wins, and within a field the
# earlier synonym wins when several columns match (YML's vendorCode before the offer id).
FIELDS: dict[str, dict[str, Any]] = {
    "sku": {"label": _l("SKU"), "synonyms": ["sku", "артикул", "артикул продавца", "vendorcode", "vendor code", "offer id", "offer_id", "код товара", "id"]},
    "title": {"label": _l("Title"), "synonyms": ["title", "name", "наименование", "название", "название товара", "наименование товара", "product name"]},
    "price": {"label": _l("Price"), "synonyms": ["price", "цена", "цена продажи", "цена, руб", "цена руб", "стоимость"]},
    "currency": {"label": _l("Currency"), "synonyms": ["currency", "currencyid", "валюта"]},
    "stock": {"label": _l("Stock"), "synonyms": ["stock", "quantity", "qty", "count", "остаток", "количество", "остатки", "наличие, шт"]},
    "gtin": {"label": _l("Barcode (GTIN)"), "synonyms": ["gtin", "ean", "barcode", "штрихкод", "штрих-код", "штрих код", "ean-13", "ean13", "upc"]},
    "brand": {"label": _l("Brand"), "synonyms": ["brand", "vendor", "manufacturer", "бренд", "производитель", "торговая марка"]},
    "category": {"label": _l("Category"), "synonyms": ["category", "категория", "категория товара", "раздел", "product type"]},
    "description": {"label": _l("Description"), "synonyms": ["description", "описание", "описание товара"]},
    "images": {"label": _l("Images"), "synonyms": ["images", "image", "picture", "pictures", "photo", "photos", "фото", "изображения", "изображение", "картинки", "ссылки на фото"]},
}
FIELD_NAMES = tuple(FIELDS)
REQUIRED_FOR_NEW = ("title", "price")


def normalise(column: str) -> str:
    """How column names are compared: case, spaces, quotes and trailing colons do not matter."""
    text = column.replace("\ufeff", "").strip().lower().replace("ё", "е")
    text = re.sub(r"[\"'«»*:]", "", text)
    return re.sub(r"[\s_]+", " ", text).strip()


def suggest_mapping(columns: list[str], template: dict[str, str] | None = None) -> dict[str, str]:
    """Column -> field ("" = keep as a merchant attribute): the merchant's template first, then synonyms."""
    template = {normalise(k): v for k, v in (template or {}).items()}
    mapping: dict[str, str] = {c: "" for c in columns}
    taken: set[str] = set()
    for column in columns:
        field = template.get(normalise(column))
        if field is not None and (field == "" or (field in FIELDS and field not in taken)):
            mapping[column] = field
            if field:
                taken.add(field)
    untemplated = [c for c in columns if normalise(c) not in template]
    for field, spec in FIELDS.items():
        if field in taken:
            continue
        for synonym in spec["synonyms"]:
            match = next((c for c in untemplated if mapping[c] == "" and normalise(c) == synonym), None)
            if match is not None:
                mapping[match] = field
                taken.add(field)
                break
    return mapping


def check_mapping(mapping: dict[str, str]) -> list[str]:
    """Problems that make a mapping unusable; an empty list means it can be applied."""
    problems = []
    used = [f for f in mapping.values() if f]
    if "sku" not in used:
        problems.append("no_sku_column")
    for field in set(used):
        if field not in FIELDS:
            problems.append("unknown_field")
        elif used.count(field) > 1:
            problems.append("field_mapped_twice")
    return problems
