"""Believable catalogs for the demo marketplace and the benchmarks (Russian shop data, valid GTINs)."""
from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator

THEMES: dict[str, list[tuple[str, list[str], list[str]]]] = {
    "electronics": [
        ("Электроника > Смартфоны", ["Смартфон", "Телефон"], ["Samsung", "Xiaomi", "Apple", "realme"]),
        ("Электроника > Наушники", ["Наушники беспроводные", "Гарнитура"], ["JBL", "Sony", "Huawei"]),
        ("Электроника > Умные часы", ["Смарт-часы", "Фитнес-браслет"], ["Amazfit", "Huawei", "Xiaomi"]),
    ],
    "home": [
        ("Дом > Текстиль > Постельное бельё", ["Комплект постельного белья", "Пододеяльник"], ["Cleanelly", "Tango", "Мона Лиза"]),
        ("Дом > Посуда > Сковороды", ["Сковорода", "Сотейник"], ["Tefal", "Rondell", "Нева Металл"]),
        ("Дом > Хранение", ["Контейнер для хранения", "Корзина плетёная"], ["Idea", "Econova"]),
    ],
    "sport": [
        ("Спорт > Фитнес > Коврики", ["Коврик для йоги", "Коврик гимнастический"], ["Demix", "Torneo", "Starfit"]),
        ("Спорт > Велоспорт > Шлемы", ["Шлем велосипедный"], ["Stern", "Giant"]),
        ("Одежда > Спортивная одежда > Футболки", ["Футболка спортивная", "Лонгслив"], ["Demix", "Nike", "Adidas"]),
    ],
}
# Shops keep a clearance section whose products say nothing about what they are: it stays unmapped
# until the merchant picks a category for it.
CLEARANCE = ("Распродажа", ["Уценённый товар"], ["—"])
for _theme in THEMES.values():
    _theme.append(CLEARANCE)
SLUG_THEMES = {"technomir": "electronics", "uyut-home": "home", "sportlife": "sport"}
COLOURS = ["чёрный", "белый", "серый", "синий", "красный", "зелёный", "бежевый"]
SIZES = ["XS", "S", "M", "L", "XL", "XXL"]
MATERIALS = ["хлопок", "полиэстер", "алюминий", "пластик", "сталь", "бамбук"]
WORDS = ["удобный", "лёгкий", "прочный", "для дома", "для спорта", "новинка", "хит продаж", "подарок", "2026"]


def gtin13(rng: random.Random, prefix: str = "460") -> str:
    """A 13-digit barcode with a valid GS1 check digit (460–469: Russia)."""
    body = prefix + "".join(rng.choice("0123456789") for _ in range(12 - len(prefix)))
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def product_rows(slug: str, count: int, rng: random.Random, *, wide: bool = False) -> Iterator[dict[str, str]]:
    theme = THEMES[SLUG_THEMES.get(slug, rng.choice(sorted(THEMES)))]
    for n in range(1, count + 1):
        category, kinds, brands = theme[n % len(theme)]
        brand = rng.choice(brands)
        colour = rng.choice(COLOURS)
        row = {
            "Артикул": f"{slug[:3].upper()}-{n:06d}",
            "Наименование": f"{rng.choice(kinds)} № {n}" if category == CLEARANCE[0]
            else f"{rng.choice(kinds)} {brand} {rng.choice(WORDS)}, {colour}",
            "Цена": f"{rng.randint(3, 900) * 10 - 1},00",
            "Остаток": str(rng.choice([0, 1, 2, 5, 10, 25, 100])),
            "Штрихкод": gtin13(rng),
            "Бренд": brand,
            "Категория": category,
            "Описание": f"{rng.choice(kinds)} {brand}. " + " ".join(rng.sample(WORDS, 4)).capitalize() + ".",
            "Фото": " ".join(f"https://images.example/{slug}/{n}-{i}.jpg" for i in range(1, rng.randint(2, 4))),
            "Цвет": colour,
            "Размер": rng.choice(SIZES),
            "Материал": rng.choice(MATERIALS),
        }
        if wide:
            for extra in range(1, 19):
                row[f"Характеристика {extra}"] = f"значение {rng.randint(1, 50)}"
        yield row


def catalog_csv(slug: str, count: int, seed: int = 1, *, wide: bool = False) -> bytes:
    """A catalog file as merchants export it from 1C or Excel: UTF-8 with BOM, semicolons."""
    rng = random.Random(f"{slug}:{seed}")
    buffer = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    for row in product_rows(slug, count, rng, wide=wide):
        if writer is None:
            writer = csv.DictWriter(buffer, fieldnames=list(row), delimiter=";")
            writer.writeheader()
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8-sig")
